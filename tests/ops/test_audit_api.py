from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from app.timeutil import utcnow


def test_audit_lists_user_changes_with_filters(client: TestClient, role_headers: dict[str, dict[str, str]]) -> None:
    admin = role_headers["admin"]
    client.patch("/auth/users/viewer-user", json={"full_name": "Vera"}, headers=admin)
    everything = client.get("/audit", headers=admin)
    assert everything.status_code == 200
    actions = [(item["action"], item["entity_id"]) for item in everything.json()["items"]]
    assert actions[0] == ("user.update", "viewer-user")
    assert ("user.create", "admin-user") in actions

    by_entity = client.get("/audit", params={"entity_type": "user", "entity_id": "viewer-user"}, headers=admin).json()[
        "items"
    ]
    assert [item["action"] for item in by_entity] == ["user.update", "user.create"]
    by_actor = client.get("/audit", params={"actor": "admin-user"}, headers=admin).json()["items"]
    assert [item["entity_id"] for item in by_actor] == ["viewer-user"]
    assert by_actor[0]["after"] == {"full_name": "Vera"}

    # A window of any length, without entity or actor: no maximum to refuse (pages bound the work).
    long_ago = client.get("/audit", params={"since": "2016-01-01T00:00:00+00:00", "limit": 200}, headers=admin)
    assert long_ago.status_code == 200, long_ago.text
    future = (utcnow() + timedelta(hours=1)).isoformat()
    assert client.get("/audit", params={"since": future, "until": future}, headers=admin).json()["items"] == []


def test_audit_pages(client: TestClient, role_headers: dict[str, dict[str, str]]) -> None:
    first = client.get("/audit", params={"limit": 2}, headers=role_headers["admin"]).json()
    assert len(first["items"]) == 2
    second = client.get("/audit", params={"limit": 2, "cursor": first["next_cursor"]}, headers=role_headers["admin"])
    assert second.status_code == 200
    assert {item["id"] for item in second.json()["items"]}.isdisjoint(item["id"] for item in first["items"])


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"entity_id": "x"}, "query.entity_type"),
        ({"since": "2026-01-01T00:00:00"}, "query.since"),
        ({"until": "0.5"}, "query.until"),
        ({"until": "1700000000"}, "query.until"),
        ({"limit": 0}, "query.limit"),
        ({"limit": 201}, "query.limit"),
        ({"entity_type": "Not Valid"}, "query.entity_type"),
        ({"cursor": "abc.def"}, "query.cursor"),
    ],
)
def test_bad_audit_queries_name_the_field(
    client: TestClient, role_headers: dict[str, dict[str, str]], params: dict[str, object], field: str
) -> None:
    response = client.get("/audit", params=params, headers=role_headers["admin"])
    assert 400 <= response.status_code < 500
    assert field in [error["field"] for error in response.json()["errors"]]


def test_audit_is_admin_only(client: TestClient, role_headers: dict[str, dict[str, str]]) -> None:
    assert client.get("/audit", headers=role_headers["operator"]).status_code == 403
