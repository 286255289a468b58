"""Users created by the users import job: legacy bcrypt over 72 bytes, and no tokens of a deleted namesake."""

from __future__ import annotations

from typing import Any

import bcrypt
from fastapi.testclient import TestClient

from app.storage.base import Store
from tests.auth.test_password_rules import LONG_PASSWORD, assert_rehashed_with_argon2, legacy_bcrypt

MAPPING = {"columns": {"Login": "username", "Role": "role", "Hash": "password_hash"}}


def import_users(client: TestClient, admin: dict[str, str], *rows: str) -> dict[str, Any]:
    body = {"type": "import", "target": "users", "format": "csv", "mapping": MAPPING}
    created = client.post("/migration/jobs", json=body, headers=admin)
    assert created.status_code == 201, created.text
    job_id = created.json()["job"]["id"]
    content = ("\r\n".join(["Login;Role;Hash", *rows]) + "\r\n").encode()
    sent = client.put(f"/migration/jobs/{job_id}/input", content=content, headers={**admin, "content-type": "text/csv"})
    assert sent.status_code == 200, sent.text
    job = client.get(f"/migration/jobs/{job_id}", headers=admin).json()
    assert job["status"] == "COMPLETED", job
    return job  # type: ignore[no-any-return]


def test_imported_legacy_bcrypt_of_a_100_byte_password_logs_in(
    client: TestClient, role_headers: dict[str, dict[str, str]], store: Store
) -> None:
    import_users(client, role_headers["admin"], f"legacy;viewer;{legacy_bcrypt(LONG_PASSWORD)}")
    for _ in range(2):  # first against the bcrypt hash, then against its argon2 replacement
        response = client.post("/auth/login", json={"username": "legacy", "password": LONG_PASSWORD})
        assert response.status_code == 200, response.text
    assert_rehashed_with_argon2(store, "legacy")


def test_reimported_user_inherits_no_token_of_the_deleted_one(
    client: TestClient, role_headers: dict[str, dict[str, str]], store: Store
) -> None:
    admin = role_headers["admin"]
    legacy = bcrypt.hashpw(b"legacy-password-1", bcrypt.gensalt(rounds=4)).decode()
    import_users(client, admin, f"ann;operator;{legacy}")
    tokens = client.post("/auth/login", json={"username": "ann", "password": "legacy-password-1"}).json()
    assert client.delete("/auth/users/ann", headers=admin).status_code == 204

    import_users(client, admin, f"ann;operator;{legacy}")
    assert client.get("/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code == 401
    assert client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401
    assert client.post("/auth/login", json={"username": "ann", "password": "legacy-password-1"}).status_code == 200


def test_an_import_row_cannot_choose_the_user_id(
    client: TestClient, role_headers: dict[str, dict[str, str]], store: Store
) -> None:
    admin = role_headers["admin"]
    body = {
        "type": "import",
        "target": "users",
        "format": "csv",
        "mapping": {"columns": {**MAPPING["columns"], "Id": "user_id"}},
    }
    response = client.post("/migration/jobs", json=body, headers=admin)
    assert response.status_code == 422
    assert "body.mapping.columns.Id" in [error["field"] for error in response.json()["errors"]]
