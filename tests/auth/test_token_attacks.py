"""Every way an access token can be forged, stale or misused is refused with 401 (table-driven)."""

from __future__ import annotations

import base64
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from jose import jwt

from app.auth.deps import auth_service_of
from app.auth.schemas import UserCreate
from app.storage.base import Store
from app.storage.records import Role
from tests.support import TEST_SECRET

PASSWORD = "correct-horse-battery"


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "sub": "olga",
        "uid": OLGA_ID,
        "role": "operator",
        "jti": "j" * 32,
        "gen": 0,
        "iat": now,
        "exp": now + 600,
        "iss": "subscriber-portal",
        "aud": "subscriber-portal-api",
        "typ": "access",
        "sid": "s" * 32,
    }
    values.update(overrides)
    return {key: value for key, value in values.items() if value is not None}


def signed(secret: str = TEST_SECRET, algorithm: str = "HS256", **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), secret, algorithm=algorithm)


def unsigned_none(**overrides: Any) -> str:
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims(**overrides))}."


def tampered() -> str:
    header, _, signature = signed().split(".")
    return f"{header}.{_b64(claims(role='admin'))}.{signature}"


ATTACKS: dict[str, Callable[[], str]] = {
    "alg none": unsigned_none,
    "alg NONE uppercase": lambda: f"{_b64({'alg': 'NONE'})}.{_b64(claims())}.",
    "wrong secret": lambda: signed(secret="another-secret-that-is-long-enough-000000"),
    "HS512 not allowed": lambda: signed(algorithm="HS512"),
    "tampered payload": tampered,
    "wrong audience": lambda: signed(aud="someone-else"),
    "wrong issuer": lambda: signed(iss="evil"),
    "expired beyond leeway": lambda: signed(iat=int(time.time()) - 1000, exp=int(time.time()) - 31),
    "no exp": lambda: signed(exp=None),
    "no jti": lambda: signed(jti=None),
    "no aud": lambda: signed(aud=None),
    "refresh type": lambda: signed(typ="refresh"),
    "no type": lambda: signed(typ=None),
    "unknown role": lambda: signed(role="superuser"),
    "deleted user": lambda: signed(sub="ghost"),
    "another user of the same name": lambda: signed(uid="id-of-an-earlier-olga"),
    "no user id": lambda: signed(uid=None),
    "no session": lambda: signed(sid=None),
    "ended session": lambda: signed(sid=ENDED_SESSION),
    "old token generation": lambda: signed(gen=-1),
    "garbage": lambda: "not.a.jwt",
    "empty": lambda: "",
}


OLGA_ID = "set by the client fixture"
ENDED_SESSION = "e" * 32


@pytest.fixture
def client(app: FastAPI, client: TestClient, store: Store, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    user = auth_service_of(app.state.runtime).create_user(
        "test", UserCreate(username="olga", password=PASSWORD, role=Role.OPERATOR)
    )
    monkeypatch.setattr(sys.modules[__name__], "OLGA_ID", user.user_id)  # read when each token is made
    store.sessions.deny_session(ENDED_SESSION, datetime.now(UTC) + timedelta(minutes=20))
    return client


def test_a_well_formed_token_is_accepted(client: TestClient) -> None:
    # The baseline: the helper above produces tokens the API accepts, so each attack changes one thing only.
    assert client.get("/auth/me", headers={"Authorization": f"Bearer {signed()}"}).status_code == 200


@pytest.mark.parametrize("make_token", ATTACKS.values(), ids=ATTACKS.keys())
def test_attack_is_refused(client: TestClient, make_token: Callable[[], str]) -> None:
    response = client.get("/auth/me", headers={"Authorization": f"Bearer {make_token()}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"


def test_expired_within_leeway_is_accepted(client: TestClient) -> None:
    token = signed(iat=int(time.time()) - 700, exp=int(time.time()) - 5)
    assert client.get("/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_refresh_token_is_not_an_access_token(client: TestClient) -> None:
    tokens = client.post("/auth/login", json={"username": "olga", "password": PASSWORD}).json()
    response = client.get("/auth/me", headers={"Authorization": f"Bearer {tokens['refresh_token']}"})
    assert response.status_code == 401


def test_revoked_token(client: TestClient) -> None:
    tokens = client.post("/auth/login", json={"username": "olga", "password": PASSWORD}).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    client.post("/auth/logout", headers=headers)
    assert client.get("/auth/me", headers=headers).status_code == 401


def test_token_issued_before_password_change(client: TestClient) -> None:
    tokens = client.post("/auth/login", json={"username": "olga", "password": PASSWORD}).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    client.put(
        "/auth/me/password", json={"current_password": PASSWORD, "new_password": "another-long-pass"}, headers=headers
    )
    assert client.get("/auth/me", headers=headers).status_code == 401


def test_role_claim_is_not_trusted(client: TestClient) -> None:
    # A correctly signed token claiming admin: the role comes from the store (operator), so 403.
    response = client.get("/auth/users", headers={"Authorization": f"Bearer {signed(role='admin')}"})
    assert response.status_code == 403


def test_missing_or_non_bearer_authorization(client: TestClient) -> None:
    assert client.get("/auth/me").status_code == 401
    assert client.get("/auth/me", headers={"Authorization": f"Basic {signed()}"}).status_code == 401
