"""Password rules at every place a password is set, and legacy hashes verified the way they were made."""

from __future__ import annotations

import bcrypt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.auth.deps import auth_service_of
from app.auth.schemas import UserCreate
from app.storage.base import Store
from app.storage.records import Role
from tests.conftest import ROLE_PASSWORD

# Each is at least PASSWORD_MIN_LENGTH (12) characters long, but not once the padding is taken off.
BLANK_OR_PADDED = {
    "12 spaces": " " * 12,
    "tabs and newlines": "\t\n" * 8,
    "unicode spaces": "\u00a0\u2003" * 8,
    "padded short word": "      abc      ",
}


def _set_password(client: TestClient, headers: dict[str, dict[str, str]], place: str, password: str) -> object:
    if place == "create":
        body = {"username": "newcomer", "password": password, "role": "viewer"}
        return client.post("/auth/users", json=body, headers=headers["admin"])
    if place == "change":
        body = {"current_password": ROLE_PASSWORD, "new_password": password}
        return client.put("/auth/me/password", json=body, headers=headers["viewer"])
    body = {"new_password": password}
    return client.post("/auth/users/viewer-user/reset-password", json=body, headers=headers["admin"])


@pytest.mark.parametrize("password", BLANK_OR_PADDED.values(), ids=BLANK_OR_PADDED.keys())
@pytest.mark.parametrize("place", ["create", "change", "reset"])
def test_blank_or_padding_only_password_is_refused(
    client: TestClient, role_headers: dict[str, dict[str, str]], store: Store, place: str, password: str
) -> None:
    before = store.users.get("viewer-user")
    response = _set_password(client, role_headers, place, password)
    assert response.status_code == 422, response.text  # type: ignore[attr-defined]
    field = "body.password" if place == "create" else "body.new_password"
    message = "must be at least 12 characters, not counting spaces at either end"
    assert response.json()["errors"] == [{"field": field, "message": message, "code": "password_too_short"}]  # type: ignore[attr-defined]
    assert store.users.get("newcomer") is None
    assert store.users.get("viewer-user") == before


@pytest.mark.parametrize("place", ["create", "change", "reset"])
def test_inner_spaces_count_and_padding_is_kept(
    client: TestClient, role_headers: dict[str, dict[str, str]], place: str
) -> None:
    # A passphrase's own spaces count; padding is part of the secret as typed (never stripped before hashing).
    password = "  correct horse battery  "
    response = _set_password(client, role_headers, place, password)
    assert response.status_code in (200, 201), response.text  # type: ignore[attr-defined]
    username = "newcomer" if place == "create" else "viewer-user"
    assert client.post("/auth/login", json={"username": username, "password": password}).status_code == 200
    refused = client.post("/auth/login", json={"username": username, "password": password.strip()})
    assert refused.status_code == 401


def test_create_user_outside_http_refuses_a_blank_password(app: FastAPI) -> None:
    # The CLI's create-admin and the demo seed create users through the same service call.
    from app.errors import InvalidInput

    service = auth_service_of(app.state.runtime)
    with pytest.raises(InvalidInput):
        service.create_user("cli", UserCreate(username="blank-admin", password=" " * 12, role=Role.ADMIN))


# --- legacy bcrypt of passwords over 72 bytes -------------------------------------------------------

# 100 bytes in UTF-8; byte 72 falls inside the "ö", so the legacy hash covers half a character.
LONG_PASSWORD = "a legacy passphrase that is longer than bcrypt's 72-byte limit, so: ü-ö-ä-ß 0123456789 abcdefghi"
assert len(LONG_PASSWORD.encode()) == 100


def legacy_bcrypt(password: str) -> str:
    """What bcrypt < 5 (and PHP, Django) stored: the hash of the first 72 bytes."""
    return bcrypt.hashpw(password.encode()[:72], bcrypt.gensalt(rounds=4)).decode()


def assert_rehashed_with_argon2(store: Store, username: str) -> None:
    """The legacy hash gave way to an argon2 one at a login that counted no failure."""
    stored = store.users.get(username)
    assert stored is not None
    assert stored.password_hash.startswith("$argon2")
    assert stored.failed_logins == 0


def test_long_password_verifies_against_legacy_bcrypt_and_is_rehashed(
    app: FastAPI, client: TestClient, store: Store
) -> None:
    service = auth_service_of(app.state.runtime)
    service.create_user(
        "import",
        UserCreate(username="legacy", password="unused-placeholder", role=Role.VIEWER),
        password_hash=legacy_bcrypt(LONG_PASSWORD),
    )
    response = client.post("/auth/login", json={"username": "legacy", "password": LONG_PASSWORD})
    assert response.status_code == 200, response.text
    assert_rehashed_with_argon2(store, "legacy")
    # The argon2 hash is of the whole password: it still logs in, and the 72-byte prefix alone no longer does.
    assert client.post("/auth/login", json={"username": "legacy", "password": LONG_PASSWORD}).status_code == 200
    prefix = LONG_PASSWORD.encode()[:71].decode()
    assert client.post("/auth/login", json={"username": "legacy", "password": prefix}).status_code == 401


def test_right_long_password_never_counts_towards_lockout(app: FastAPI, client: TestClient, store: Store) -> None:
    service = auth_service_of(app.state.runtime)
    legacy = legacy_bcrypt(LONG_PASSWORD)
    service.create_user(
        "import", UserCreate(username="legacy", password="unused-placeholder", role=Role.VIEWER), password_hash=legacy
    )
    wrong = LONG_PASSWORD.replace("a legacy", "b legacy")
    assert client.post("/auth/login", json={"username": "legacy", "password": wrong}).status_code == 401
    assert store.users.get("legacy").failed_logins == 1  # type: ignore[union-attr]
    assert client.post("/auth/login", json={"username": "legacy", "password": LONG_PASSWORD}).status_code == 200
    assert store.users.get("legacy").failed_logins == 0  # type: ignore[union-attr]
