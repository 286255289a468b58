"""Auth endpoints end to end through the app, on both backends."""

from __future__ import annotations

import bcrypt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from passlib.hash import django_pbkdf2_sha256

from app.auth.deps import auth_service_of
from app.auth.schemas import UserCreate
from app.storage.base import Store
from app.storage.records import Role
from tests.support import make_settings

PASSWORD = "correct-horse-battery"


@pytest.fixture
def users(app: FastAPI) -> None:
    service = auth_service_of(app.state.runtime)
    service.create_user("test", UserCreate(username="root", password=PASSWORD, role=Role.ADMIN))
    service.create_user("test", UserCreate(username="olga", password=PASSWORD, role=Role.OPERATOR))


def login(client: TestClient, username: str = "olga", password: str = PASSWORD, ip: str | None = None) -> dict:  # type: ignore[type-arg]
    response = client.post("/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def bearer(tokens: dict) -> dict[str, str]:  # type: ignore[type-arg]
    return {"Authorization": f"Bearer {tokens['access_token']}"}


@pytest.mark.usefixtures("users")
class TestLogin:
    def test_form_login_as_swagger_does(self, client: TestClient) -> None:
        response = client.post("/auth/login", data={"grant_type": "password", "username": "olga", "password": PASSWORD})
        assert response.status_code == 200
        body = response.json()
        assert body["token_type"] == "bearer"
        assert body["expires_in"] == 15 * 60
        assert body["refresh_expires_in"] == 7 * 24 * 3600
        assert response.headers["cache-control"] == "no-store"

    def test_form_login_takes_the_fields_its_schema_names(self, client: TestClient) -> None:
        """The form is documented as `LoginForm`: other OAuth2 fields are ignored, another grant refused."""
        form = {"username": "olga", "password": PASSWORD, "scope": "", "client_id": "swagger"}
        assert client.post("/auth/login", data=form).status_code == 200
        refused = client.post("/auth/login", data={**form, "grant_type": "client_credentials"})
        assert refused.status_code == 422
        assert [error["field"] for error in refused.json()["errors"]] == ["body.grant_type"]

    def test_json_login_and_me(self, client: TestClient) -> None:
        me = client.get("/auth/me", headers=bearer(login(client)))
        assert me.status_code == 200
        assert me.json()["username"] == "olga"
        assert "password_hash" not in me.text

    def test_username_is_case_insensitive(self, client: TestClient) -> None:
        login(client, "OLGA")

    @pytest.mark.parametrize(("username", "password"), [("olga", "wrong-password-1"), ("nobody", PASSWORD)])
    def test_wrong_password_and_unknown_user_get_the_same_answer(
        self, client: TestClient, username: str, password: str
    ) -> None:
        response = client.post("/auth/login", json={"username": username, "password": password})
        assert response.status_code == 401
        assert response.json()["detail"] == "invalid username or password"

    def test_unknown_user_still_verifies_a_hash(self, app: FastAPI, client: TestClient) -> None:
        hasher = auth_service_of(app.state.runtime).hasher
        calls: list[str] = []
        original = hasher.verify

        def spy(password: str, password_hash: str) -> tuple[bool, str | None]:
            calls.append(password_hash)
            return original(password, password_hash)

        hasher.verify = spy  # type: ignore[method-assign]
        client.post("/auth/login", json={"username": "nobody", "password": PASSWORD})
        assert calls == [hasher.dummy_hash]

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"json": {"username": "olga"}}, "body.password"),
            ({"json": {"username": "olga", "password": "x", "extra": 1}}, "body.extra"),
            ({"json": {"username": "olga", "password": "x" * 1025}}, "body.password"),
            ({"data": {"username": "olga"}}, "body.password"),
        ],
    )
    def test_malformed_login_names_the_field(self, client: TestClient, kwargs: dict, field: str) -> None:  # type: ignore[type-arg]
        response = client.post("/auth/login", **kwargs)
        assert response.status_code == 422
        assert field in [error["field"] for error in response.json()["errors"]]

    def test_wrong_content_type_is_415(self, client: TestClient) -> None:
        response = client.post("/auth/login", content=b"olga", headers={"content-type": "text/plain"})
        assert response.status_code == 415

    def test_lockout_after_repeated_failures(self, client: TestClient) -> None:
        for _ in range(5):
            assert (
                client.post("/auth/login", json={"username": "olga", "password": "wrong-password-1"}).status_code == 401
            )
        # Locked: even the right password is refused, with the same message.
        response = client.post("/auth/login", json={"username": "olga", "password": PASSWORD})
        assert response.status_code == 401
        assert response.json()["detail"] == "invalid username or password"
        login(client, "root")  # other accounts are unaffected

    def test_disabled_user_cannot_log_in(self, client: TestClient) -> None:
        admin = bearer(login(client, "root"))
        assert client.patch("/auth/users/olga", json={"active": False}, headers=admin).status_code == 200
        assert client.post("/auth/login", json={"username": "olga", "password": PASSWORD}).status_code == 401


def test_login_rate_limit_per_address(store: Store) -> None:
    from app.main import create_app

    app = create_app(make_settings(login_rate_per_minute=3), store)
    with TestClient(app) as client:
        statuses = [client.post("/auth/login", json={"username": "x", "password": "y"}).status_code for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
        response = client.post("/auth/login", json={"username": "x", "password": "y"})
        assert response.status_code == 429
        assert 1 <= int(response.headers["retry-after"]) <= 60


@pytest.mark.usefixtures("users")
class TestTokens:
    def test_refresh_rotates_and_detects_reuse(self, client: TestClient) -> None:
        first = login(client)
        second = client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert second.status_code == 200
        rotated = second.json()
        assert rotated["refresh_token"] != first["refresh_token"]
        assert client.get("/auth/me", headers=bearer(rotated)).status_code == 200
        # Reusing the first refresh token: 401 and the whole family is revoked.
        assert client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]}).status_code == 401
        assert client.post("/auth/refresh", json={"refresh_token": rotated["refresh_token"]}).status_code == 401

    def test_unknown_refresh_token(self, client: TestClient) -> None:
        assert client.post("/auth/refresh", json={"refresh_token": "x" * 43}).status_code == 401

    def test_logout_revokes_access_and_refresh(self, client: TestClient) -> None:
        tokens = login(client)
        other_session = login(client)
        assert client.post("/auth/logout", headers=bearer(tokens)).status_code == 204
        assert client.get("/auth/me", headers=bearer(tokens)).status_code == 401
        assert client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401
        assert client.get("/auth/me", headers=bearer(other_session)).status_code == 200

    def test_change_password_ends_other_sessions(self, client: TestClient) -> None:
        mine, other = login(client), login(client)
        response = client.put(
            "/auth/me/password",
            json={"current_password": PASSWORD, "new_password": "a-new-long-password"},
            headers=bearer(mine),
        )
        assert response.status_code == 200
        fresh = response.json()
        assert client.get("/auth/me", headers=bearer(fresh)).status_code == 200
        for old in (mine, other):
            assert client.get("/auth/me", headers=bearer(old)).status_code == 401
            assert client.post("/auth/refresh", json={"refresh_token": old["refresh_token"]}).status_code == 401
        login(client, password="a-new-long-password")

    @pytest.mark.parametrize(
        ("body", "field", "code"),
        [
            (
                {"current_password": "wrong-password-1", "new_password": "a-new-long-password"},
                "body.current_password",
                "wrong_password",
            ),
            ({"current_password": PASSWORD, "new_password": "short"}, "body.new_password", "password_too_short"),
            ({"current_password": PASSWORD, "new_password": "OLGA"}, "body.new_password", "password_too_short"),
        ],
    )
    def test_change_password_rules(self, client: TestClient, body: dict, field: str, code: str) -> None:  # type: ignore[type-arg]
        response = client.put("/auth/me/password", json=body, headers=bearer(login(client)))
        assert response.status_code == 422
        assert response.json()["errors"][0] == {
            "field": field,
            "message": response.json()["errors"][0]["message"],
            "code": code,
        }


def test_password_equal_to_username_is_refused(app: FastAPI, client: TestClient, role_headers: dict) -> None:  # type: ignore[type-arg]
    response = client.post(
        "/auth/users",
        json={"username": "longusername12", "password": "LongUsername12", "role": "viewer"},
        headers=role_headers["admin"],
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "password_is_username"


class TestUserManagement:
    def test_crud(self, client: TestClient, role_headers: dict) -> None:  # type: ignore[type-arg]
        admin = role_headers["admin"]
        created = client.post(
            "/auth/users",
            json={"username": "New.User", "password": "a-long-password-1", "role": "operator", "email": "n@x.example"},
            headers=admin,
        )
        assert created.status_code == 201, created.text
        assert created.json()["username"] == "new.user"
        assert created.headers["location"].endswith("users/new.user")
        assert (
            client.post(
                "/auth/users", json={"username": "new.user", "password": "a-long-password-1"}, headers=admin
            ).status_code
            == 409
        )
        assert client.get("/auth/users/NEW.USER", headers=admin).json()["role"] == "operator"
        patched = client.patch("/auth/users/new.user", json={"role": "viewer", "full_name": "N U"}, headers=admin)
        assert patched.json()["role"] == "viewer"
        assert patched.json()["version"] == 2
        names = [u["username"] for u in client.get("/auth/users", headers=admin).json()["items"]]
        assert "new.user" in names
        assert client.delete("/auth/users/new.user", headers=admin).status_code == 204
        assert client.get("/auth/users/new.user", headers=admin).status_code == 404

    def test_user_list_paginates(self, client: TestClient, role_headers: dict) -> None:  # type: ignore[type-arg]
        page = client.get("/auth/users", params={"limit": 2}, headers=role_headers["admin"]).json()
        rest = client.get(
            "/auth/users", params={"limit": 2, "cursor": page["next_cursor"]}, headers=role_headers["admin"]
        ).json()
        assert [u["username"] for u in page["items"] + rest["items"]] == ["admin-user", "operator-user", "viewer-user"]
        for cursor, status in (("forged.cursor", 422), ("Zm9yZ2Vk.AAAAAAAAAAAAAAAAAAAAAA", 404)):
            bad = client.get("/auth/users", params={"cursor": cursor}, headers=role_headers["admin"])
            assert bad.status_code == status  # of another shape; well-formed but not issued (no such page)
            assert bad.json()["errors"][0]["field"] == "query.cursor"

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"username": "ab", "password": "a-long-password-1"}, "body.username"),
            ({"username": "has space", "password": "a-long-password-1"}, "body.username"),
            ({"username": "okname", "password": "a-long-password-1", "role": "root"}, "body.role"),
            ({"username": "okname", "password": "a-long-password-1", "email": "not-an-email"}, "body.email"),
            ({"username": "okname", "password": "a-long-password-1", "is_admin": True}, "body.is_admin"),
            ({"username": "okname", "password": "short"}, "body.password"),
        ],
    )
    def test_bad_user_input(self, store: Store, client: TestClient, role_headers: dict, body: dict, field: str) -> None:  # type: ignore[type-arg]
        before = store.users.list(limit=50).items
        response = client.post("/auth/users", json=body, headers=role_headers["admin"])
        assert response.status_code == 422
        assert field in [error["field"] for error in response.json()["errors"]]
        assert store.users.list(limit=50).items == before

    def test_null_role_is_refused(self, client: TestClient, role_headers: dict) -> None:  # type: ignore[type-arg]
        response = client.patch("/auth/users/viewer-user", json={"role": None}, headers=role_headers["admin"])
        assert response.status_code == 422

    def test_last_admin_is_protected(self, client: TestClient, role_headers: dict) -> None:  # type: ignore[type-arg]
        admin = role_headers["admin"]
        for request in (
            lambda: client.patch("/auth/users/admin-user", json={"role": "viewer"}, headers=admin),
            lambda: client.patch("/auth/users/admin-user", json={"active": False}, headers=admin),
            lambda: client.delete("/auth/users/admin-user", headers=admin),
        ):
            response = request()
            assert response.status_code == 403
            assert "no active admin" in response.json()["detail"]
        assert client.get("/auth/me", headers=admin).json()["role"] == "admin"

    def test_disabling_revokes_tokens_at_once(self, client: TestClient, role_headers: dict) -> None:  # type: ignore[type-arg]
        assert client.get("/auth/me", headers=role_headers["operator"]).status_code == 200
        client.patch("/auth/users/operator-user", json={"active": False}, headers=role_headers["admin"])
        assert client.get("/auth/me", headers=role_headers["operator"]).status_code == 401
        client.patch("/auth/users/operator-user", json={"active": True}, headers=role_headers["admin"])
        assert client.get("/auth/me", headers=role_headers["operator"]).status_code == 401  # still ended

    def test_demotion_applies_to_existing_tokens(self, client: TestClient, role_headers: dict) -> None:  # type: ignore[type-arg]
        assert client.get("/auth/users", headers=role_headers["admin"]).status_code == 200
        client.post(
            "/auth/users",
            json={"username": "admin2", "password": "a-long-password-1", "role": "admin"},
            headers=role_headers["admin"],
        )
        admin2 = bearer(login(client, "admin2", "a-long-password-1"))
        client.patch("/auth/users/admin-user", json={"role": "viewer"}, headers=admin2)
        assert client.get("/auth/users", headers=role_headers["admin"]).status_code == 403

    def test_reset_password_ends_sessions(self, client: TestClient, role_headers: dict) -> None:  # type: ignore[type-arg]
        response = client.post(
            "/auth/users/viewer-user/reset-password",
            json={"new_password": "reset-password-99"},
            headers=role_headers["admin"],
        )
        assert response.status_code == 200
        assert client.get("/auth/me", headers=role_headers["viewer"]).status_code == 401
        login(client, "viewer-user", "reset-password-99")

    def test_user_changes_are_audited(self, store: Store, client: TestClient, role_headers: dict) -> None:  # type: ignore[type-arg]
        client.patch("/auth/users/viewer-user", json={"full_name": "Vera"}, headers=role_headers["admin"])
        entries = store.audit.list_for_entity("user", "viewer-user", limit=10).items
        assert [entry.action for entry in entries] == ["user.update", "user.create"]
        assert entries[0].actor == "admin-user"
        assert entries[0].before == {"full_name": None}
        assert entries[0].after == {"full_name": "Vera"}
        assert entries[0].request_id
        assert "password_hash" not in str(entries[1].after)


@pytest.mark.parametrize(
    ("scheme", "make_hash"),
    [
        ("bcrypt", lambda password: bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()),
        ("django_pbkdf2_sha256", lambda password: django_pbkdf2_sha256.using(rounds=1000).hash(password)),
    ],
)
def test_legacy_hash_logs_in_and_is_upgraded_to_argon2(
    app: FastAPI, client: TestClient, store: Store, scheme: str, make_hash: object
) -> None:
    legacy = make_hash("legacy-password-1")  # type: ignore[operator]
    service = auth_service_of(app.state.runtime)
    service.create_user(
        "import", UserCreate(username="legacy", password="unused-placeholder", role=Role.VIEWER), password_hash=legacy
    )
    assert store.users.get("legacy").password_hash == legacy  # type: ignore[union-attr]
    login(client, "legacy", "legacy-password-1")
    upgraded = store.users.get("legacy").password_hash  # type: ignore[union-attr]
    assert upgraded.startswith("$argon2")
    login(client, "legacy", "legacy-password-1")


def test_unknown_hash_scheme_is_refused_on_import(app: FastAPI) -> None:
    from app.errors import InvalidInput

    service = auth_service_of(app.state.runtime)
    with pytest.raises(InvalidInput):
        service.create_user("import", UserCreate(username="legacy", password="x" * 12), password_hash="md5$abc")
