"""When a session or a user ends, every token of it ends: over HTTP, on both backends."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.auth.deps import auth_service_of
from app.auth.schemas import UserCreate
from app.storage.base import Store
from app.storage.records import Role

PASSWORD = "correct-horse-battery"


@pytest.fixture
def admin(app: FastAPI, client: TestClient) -> dict[str, str]:
    service = auth_service_of(app.state.runtime)
    service.create_user("test", UserCreate(username="root", password=PASSWORD, role=Role.ADMIN))
    service.create_user("test", UserCreate(username="olga", password=PASSWORD, role=Role.OPERATOR))
    return bearer(login(client, "root"))


def login(client: TestClient, username: str = "olga") -> dict[str, Any]:
    response = client.post("/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def refresh(client: TestClient, tokens: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def assert_ended(client: TestClient, *pairs: dict[str, Any]) -> None:
    for tokens in pairs:
        assert client.get("/auth/me", headers=bearer(tokens)).status_code == 401
        assert client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401


# --- item 4: a re-created user inherits nothing -------------------------------------------------------


def test_recreated_user_inherits_no_token_of_the_deleted_one(
    client: TestClient, admin: dict[str, str], store: Store
) -> None:
    first = login(client)
    rotated = refresh(client, first)
    unused = login(client)  # a second session, never refreshed
    assert client.delete("/auth/users/olga", headers=admin).status_code == 204
    assert_ended(client, rotated, unused)

    body = {"username": "olga", "password": PASSWORD, "role": "operator"}
    assert client.post("/auth/users", json=body, headers=admin).status_code == 201
    assert_ended(client, first, rotated, unused)
    fresh = login(client)
    assert client.get("/auth/me", headers=bearer(fresh)).status_code == 200


def test_deleting_a_user_deletes_their_refresh_sessions(
    client: TestClient, admin: dict[str, str], store: Store
) -> None:
    from app.auth.security import hash_refresh_token

    mine = login(client)
    root_session = login(client, "root")
    assert client.delete("/auth/users/olga", headers=admin).status_code == 204
    assert store.sessions.find_token(hash_refresh_token(mine["refresh_token"])) is None
    kept = store.sessions.find_token(hash_refresh_token(root_session["refresh_token"]))
    assert kept is not None
    assert store.sessions.get_family(kept.family_id) is not None


# --- item 10: logout and reuse detection end every token of the session -----------------------------


@pytest.mark.usefixtures("admin")
def test_logout_ends_access_tokens_issued_before_a_refresh(client: TestClient) -> None:
    first = login(client)
    second = refresh(client, first)
    other_session = login(client)
    assert client.post("/auth/logout", headers=bearer(second)).status_code == 204
    assert client.get("/auth/me", headers=bearer(first)).status_code == 401
    assert client.get("/auth/me", headers=bearer(second)).status_code == 401
    assert client.post("/auth/refresh", json={"refresh_token": second["refresh_token"]}).status_code == 401
    assert client.get("/auth/me", headers=bearer(other_session)).status_code == 200


@pytest.mark.usefixtures("admin")
def test_refresh_reuse_ends_the_access_tokens_of_the_session(client: TestClient) -> None:
    first = login(client)
    second = refresh(client, first)
    other_session = login(client)
    # The first refresh token is presented again (stolen and replayed, or replayed by the thief's victim).
    assert client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]}).status_code == 401
    assert_ended(client, first, second)
    assert client.get("/auth/me", headers=bearer(other_session)).status_code == 200


@pytest.mark.usefixtures("admin")
def test_logout_with_another_sessions_refresh_token_ends_that_session_too(client: TestClient) -> None:
    here, there = login(client), login(client)
    response = client.post("/auth/logout", json={"refresh_token": there["refresh_token"]}, headers=bearer(here))
    assert response.status_code == 204
    assert_ended(client, here, there)


def test_a_session_started_for_the_deleted_user_is_refused_for_the_new_one(
    app: FastAPI, client: TestClient, admin: dict[str, str], store: Store
) -> None:
    # A login of the old user that finishes after the delete writes its session after the sessions
    # were deleted; the new user of the same name must not be able to use it.
    from datetime import timedelta

    from app.auth.security import new_refresh_token
    from app.storage.records import RefreshTokenRecord, TokenFamilyRecord
    from app.timeutil import utcnow

    old = store.users.get("olga")
    assert old is not None
    assert client.delete("/auth/users/olga", headers=admin).status_code == 204
    body = {"username": "olga", "password": PASSWORD, "role": "operator"}
    assert client.post("/auth/users", json=body, headers=admin).status_code == 201
    now = utcnow()
    refresh_token, token_hash = new_refresh_token()
    family = TokenFamilyRecord(
        family_id="late-login",
        username="olga",
        user_id=old.user_id,
        token_generation=old.token_generation,
        created_at=now,
        expires_at=now + timedelta(days=1),
    )
    token = RefreshTokenRecord(
        token_hash=token_hash, family_id="late-login", username="olga", issued_at=now, expires_at=family.expires_at
    )
    store.sessions.start(family, token)
    assert client.post("/auth/refresh", json={"refresh_token": refresh_token}).status_code == 401
    assert store.sessions.get_family("late-login").revoked is True  # type: ignore[union-attr]
