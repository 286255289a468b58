"""Bulk delete and rollback delete through the subscribers service, on every backend: the API's
refusal of a subscriber with future confirmed bookings (a row error here) and its history order."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.migration import kinds
from app.storage.base import Store
from app.subscribers import service as subscriber_service
from tests.bookings.test_bookings_api import at, resource_body
from tests.migration.test_subscriber_jobs import counts, csv_file, errors_of, row, run_job

Headers = dict[str, dict[str, str]]


def book(client: TestClient, headers: dict[str, str], uid: str) -> str:
    """A confirmed booking of `uid` three days ahead, at a resource of its own."""
    resource = client.post("/bookings/resources", json=resource_body(), headers=headers)
    assert resource.status_code == 201, resource.text
    booking = client.post(
        "/bookings",
        json={"resource_id": resource.json()["id"], "subscriber_uid": uid, "start": at(10)},
        headers=headers,
    )
    assert booking.status_code == 201, booking.text
    return str(booking.json()["id"])


def delete_file(*uids: str) -> bytes:
    return "".join(f'{{"uid": "{uid}"}}\n' for uid in uids).encode()


def history(client: TestClient, headers: dict[str, str], uid: str) -> list[dict[str, Any]]:
    response = client.get(f"/subscribers/{uid}/history", headers=headers)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def assert_deleted_after_creation(entry: dict[str, Any]) -> None:
    """The subscriber was never changed since it was created: creation was its last change."""
    assert entry["action"] == "subscriber.delete"
    assert datetime.fromisoformat(entry["at"]) > datetime.fromisoformat(entry["before"]["created_at"])


def test_bulk_delete_refuses_a_subscriber_with_future_confirmed_bookings(
    client: TestClient, role_headers: Headers, store: Store
) -> None:
    """As the API's 409: the row is refused (`has_bookings`) and the subscriber stays; once the
    booking is cancelled the same file deletes it."""
    admin = role_headers["admin"]
    run_job(client, admin, csv_file(row(1), row(2)))
    booking_id = book(client, admin, "s0001")
    job = run_job(client, admin, delete_file("s0001", "s0002"), type="delete", format="ndjson")
    assert counts(job) == (2, 0, 0, 0, 1, 1)
    assert errors_of(client, admin, job["id"]) == [(1, "uid", "has_bookings")]
    assert store.subscribers.get("s0001") is not None
    assert store.subscribers.get("s0002") is None

    cancelled = client.post(f"/bookings/{booking_id}/cancel", json={"reason": "leaving"}, headers=admin)
    assert cancelled.status_code == 200, cancelled.text
    again = run_job(client, admin, delete_file("s0001"), type="delete", format="ndjson")
    assert counts(again) == (1, 0, 0, 0, 1, 0)
    assert store.subscribers.get("s0001") is None


def test_rollback_skips_a_subscriber_with_future_confirmed_bookings(
    client: TestClient, role_headers: Headers, store: Store
) -> None:
    admin = role_headers["admin"]
    imported = run_job(client, admin, csv_file(row(1), row(2)))
    book(client, admin, "s0002")
    response = client.post(f"/migration/jobs/{imported['id']}/rollback", headers=admin)
    assert response.status_code in (200, 201, 202), response.text
    rollback = client.get(f"/migration/jobs/{response.json()['id']}", headers=admin).json()
    assert counts(rollback) == (2, 0, 0, 1, 1, 0)
    assert errors_of(client, admin, rollback["id"]) == [(2, "uid", "has_bookings")]
    assert store.subscribers.get("s0002") is not None


def clock_ahead(monkeypatch: pytest.MonkeyPatch, module: Any) -> None:
    """`module` stamps its writes an hour ahead of the other clocks (a clock that stepped back since)."""
    real = module.utcnow
    monkeypatch.setattr(module, "utcnow", lambda: real() + timedelta(hours=1))


def test_bulk_delete_history_entry_comes_after_the_last_change(
    client: TestClient, role_headers: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API's ordering rule holds for a job's delete: history is ordered by time, so the delete's
    entry is stamped after the subscriber's last change even when the clock is behind it."""
    admin = role_headers["admin"]
    with monkeypatch.context() as ahead:
        clock_ahead(ahead, subscriber_service)
        created = client.post(
            "/subscribers",
            json={
                "uid": "s0001",
                "msisdn": "+447911100001",
                "imsi": "234150000000001",
                "first_name": "Ada",
                "last_name": "Lovelace",
                "status": "ACTIVE",
                "plan": "GOLD",
            },
            headers=admin,
        )
        assert created.status_code == 201, created.text
    job = run_job(client, admin, delete_file("s0001"), type="delete", format="ndjson")
    assert counts(job) == (1, 0, 0, 0, 1, 0)
    entries = history(client, admin, "s0001")
    assert [entry["action"] for entry in entries] == ["subscriber.delete", "subscriber.create"]
    assert_deleted_after_creation(entries[0])


def test_rollback_history_entry_comes_after_the_import(
    client: TestClient, role_headers: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = role_headers["admin"]
    with monkeypatch.context() as ahead:
        clock_ahead(ahead, kinds)
        imported = run_job(client, admin, csv_file(row(1)))
    response = client.post(f"/migration/jobs/{imported['id']}/rollback", headers=admin)
    assert response.status_code in (200, 201, 202), response.text
    rollback = client.get(f"/migration/jobs/{response.json()['id']}", headers=admin).json()
    assert counts(rollback) == (1, 0, 0, 0, 1, 0)
    (entry,) = history(client, admin, "s0001")  # an import writes no history entry per row
    assert_deleted_after_creation(entry)
