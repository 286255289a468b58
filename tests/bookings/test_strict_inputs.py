"""Inputs that pydantic would coerce but the schema does not allow are refused (found by the fuzz run)."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_daily_counts_needs_an_iso_day(client: TestClient, role_headers: dict[str, dict[str, str]]) -> None:
    headers = role_headers["admin"]
    refused = client.get("/bookings/daily-counts", params={"from": "0"}, headers=headers)
    assert refused.status_code == 422
    assert "query.from" in [error["field"] for error in refused.json()["errors"]]
    assert client.get("/bookings/daily-counts", params={"from": "2026-01-05"}, headers=headers).status_code == 200


def test_daily_counts_takes_only_an_id_a_resource_can_have(
    client: TestClient, role_headers: dict[str, dict[str, str]]
) -> None:
    # The answer echoes `resource_id`, and the document links it to the resource's routes, whose
    # path refuses anything else: the filter states the same rule.
    headers = role_headers["admin"]
    for bad in ("a.b", ""):
        refused = client.get(
            "/bookings/daily-counts", params={"from": "2026-01-05", "resource_id": bad}, headers=headers
        )
        assert refused.status_code == 422
        assert [error["field"] for error in refused.json()["errors"]] == ["query.resource_id"]
    ok = client.get("/bookings/daily-counts", params={"from": "2026-01-05", "resource_id": "store-1"}, headers=headers)
    assert ok.status_code == 200


def test_resource_active_must_be_a_boolean(client: TestClient, role_headers: dict[str, dict[str, str]]) -> None:
    body = {
        "name": "Shop",
        "kind": "store",
        "timezone": "Europe/London",
        "slot_minutes": 30,
        "capacity": 1,
        "weekly_schedule": {"mon": [{"open": "09:00", "close": "17:00"}]},
        "active": 0,
    }
    response = client.post("/bookings/resources", json=body, headers=role_headers["admin"])
    assert response.status_code == 422
    assert "body.active" in [error["field"] for error in response.json()["errors"]]
