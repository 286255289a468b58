"""Through the API, on both stores: every change a consumer is promised publishes its events, once,
in order per subject, right after the request that committed it; a refused request publishes none.

A recording consumer is registered beside the product's own (webhooks, notifications), so what it
sees is what every consumer sees.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.bookings.deps import get_booking_service
from app.bookings.service import BookingService
from app.changefeed import relay
from app.changefeed.drain import drain
from app.changefeed.envelope import envelope
from app.runtime import Runtime
from app.storage.records import DomainEvent, Role
from app.timeutil import utcnow
from tests.bookings.conftest import add_subscriber
from tests.bookings.test_bookings_api import at, resource_body
from tests.subscribers.support import body

Headers = dict[str, dict[str, str]]


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[DomainEvent]:
    events: list[DomainEvent] = []

    def record(event: DomainEvent, runtime: Runtime) -> None:
        events.append(event)

    monkeypatch.setitem(relay.event_consumers, "test-recorder", record)
    return events


def of(events: list[DomainEvent], subject: str) -> list[str]:
    return [event.type for event in events if event.subject == subject]


def changed(client: TestClient, path: str, headers: dict[str, str], patch: dict[str, Any]) -> dict[str, Any]:
    etag = client.get(path, headers=headers).headers["etag"]
    response = client.patch(path, json=patch, headers={**headers, "If-Match": etag})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_subscriber_changes_publish_created_updated_status_changed_deleted(
    client: TestClient, role_headers: Headers, seen: list[DomainEvent]
) -> None:
    admin = role_headers["admin"]
    assert client.post("/subscribers", json=body(1), headers=admin).status_code == 201
    assert of(seen, "subscriber/sub-0001") == ["subscriber.created"]  # relayed before the response returned
    changed(client, "/subscribers/sub-0001", admin, {"plan": "GOLD-PLUS"})
    changed(client, "/subscribers/sub-0001", admin, {"status": "SUSPENDED"})
    changed(client, "/subscribers/sub-0001", admin, {"status": "ACTIVE", "first_name": "Ada"})
    etag = client.get("/subscribers/sub-0001", headers=admin).headers["etag"]
    assert client.delete("/subscribers/sub-0001", headers={**admin, "If-Match": etag}).status_code == 204

    assert of(seen, "subscriber/sub-0001") == [
        "subscriber.created",
        "subscriber.updated",
        "subscriber.status_changed",
        "subscriber.updated",
        "subscriber.status_changed",
        "subscriber.deleted",
    ]
    updates = [event.data for event in seen if event.type == "subscriber.updated"]
    assert [data["changed"] for data in updates] == [["plan"], ["first_name"]]
    status = [(e.data["from_status"], e.data["to_status"]) for e in seen if e.type == "subscriber.status_changed"]
    assert status == [("ACTIVE", "SUSPENDED"), ("SUSPENDED", "ACTIVE")]
    assert len({event.id for event in seen}) == len(seen)  # each once


def test_every_event_names_its_actor_request_and_time(
    client: TestClient, role_headers: Headers, seen: list[DomainEvent]
) -> None:
    before = utcnow()
    response = client.post("/subscribers", json=body(1), headers={**role_headers["operator"], "X-Request-ID": "req-42"})
    assert response.status_code == 201
    (event,) = seen
    assert (event.actor, event.request_id, event.subject, event.data_version) == (
        "operator-user",
        "req-42",
        "subscriber/sub-0001",
        1,
    )
    assert before <= event.at <= utcnow()


def test_a_refused_request_publishes_nothing(
    client: TestClient, role_headers: Headers, seen: list[DomainEvent]
) -> None:
    admin = role_headers["admin"]
    assert client.post("/subscribers", json=body(1), headers=admin).status_code == 201
    seen.clear()
    assert client.post("/subscribers", json=body(1), headers=admin).status_code == 409  # uid taken
    assert client.post("/subscribers", json=body(2, msisdn="12"), headers=admin).status_code == 422
    assert client.post("/subscribers", json=body(3), headers=role_headers["viewer"]).status_code == 403
    stale = {**admin, "If-Match": '"999"'}
    assert client.patch("/subscribers/sub-0001", json={"plan": "X"}, headers=stale).status_code == 412
    assert seen == []


def test_booking_lifecycle_publishes_confirmed_rescheduled_cancelled_completed_no_show(
    app: FastAPI, client: TestClient, role_headers: Headers, seen: list[DomainEvent]
) -> None:
    operator = role_headers["operator"]
    add_subscriber(app, "sub-1")
    resource = client.post("/bookings/resources", json=resource_body(), headers=operator).json()["id"]
    made = client.post(
        "/bookings", json={"resource_id": resource, "subscriber_uid": "sub-1", "start": at(10)}, headers=operator
    )
    assert made.status_code == 201, made.text
    booking = made.json()["id"]
    assert client.post(f"/bookings/{booking}/reschedule", json={"start": at(12)}, headers=operator).status_code == 200
    misaligned = client.post(f"/bookings/{booking}/reschedule", json={"start": at(12.1)}, headers=operator)
    assert misaligned.status_code in (409, 422)  # refused: no event
    assert client.post(f"/bookings/{booking}/cancel", json={"reason": "called"}, headers=operator).status_code == 200
    assert of(seen, f"booking/{booking}") == ["booking.confirmed", "booking.rescheduled", "booking.cancelled"]
    moved = next(event for event in seen if event.type == "booking.rescheduled")
    assert moved.data["previous_start"] < moved.data["booking"]["start"]

    # Outcomes need a started slot: the service's clock is moved past the slots.
    runtime = app.state.runtime
    later = utcnow() + timedelta(days=10)
    for start, path, kind in ((at(14), "complete", "booking.completed"), (at(15), "no-show", "booking.no_show")):
        body_ = {"resource_id": resource, "subscriber_uid": "sub-1", "start": start}
        other = client.post("/bookings", json=body_, headers=operator).json()["id"]
        app.dependency_overrides[get_booking_service] = lambda: BookingService(
            runtime.store, runtime.settings, lambda uid: "ACTIVE", clock=lambda: later
        )
        assert client.post(f"/bookings/{other}/{path}", headers=operator).status_code == 200
        app.dependency_overrides.clear()
        assert of(seen, f"booking/{other}") == ["booking.confirmed", kind]


def test_user_disabled_and_locked(client: TestClient, role_headers: Headers, seen: list[DomainEvent]) -> None:
    admin = role_headers["admin"]
    assert client.patch("/auth/users/viewer-user", json={"active": False}, headers=admin).status_code == 200
    assert of(seen, "user/viewer-user") == ["user.disabled"]
    wrong = {"username": "operator-user", "password": "wrong-0123"}
    for _ in range(5):
        assert client.post("/auth/login", json=wrong).status_code == 401
    locked = [event for event in seen if event.subject == "user/operator-user"]
    assert [event.type for event in locked] == ["user.locked"]
    assert locked[0].data["locked_until"] > utcnow().isoformat()
    client.post("/auth/login", json=wrong)  # refused while locked: no second event
    assert of(seen, "user/operator-user") == ["user.locked"]


def test_a_failing_consumer_holds_its_subject_back_and_gets_it_again_in_order(
    app: FastAPI, client: TestClient, role_headers: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = role_headers["admin"]
    delivered: list[tuple[str, str]] = []
    down = {"sub-0001"}

    def flaky(event: DomainEvent, runtime: Runtime) -> None:
        if event.data.get("uid") in down:
            raise ConnectionError("consumer down")
        delivered.append((event.subject, event.type))

    monkeypatch.setitem(relay.event_consumers, "test-flaky", flaky)
    assert client.post("/subscribers", json=body(1), headers=admin).status_code == 201  # committed all the same
    changed(client, "/subscribers/sub-0001", admin, {"plan": "GOLD-PLUS"})
    assert client.post("/subscribers", json=body(2), headers=admin).status_code == 201
    assert delivered == [("subscriber/sub-0002", "subscriber.created")]  # other subjects go on

    down.clear()
    assert drain(app.state.runtime) == {"relayed": 2, "held": 0}  # the scheduled drain's turn
    assert delivered[1:] == [
        ("subscriber/sub-0001", "subscriber.created"),
        ("subscriber/sub-0001", "subscriber.updated"),
    ]
    assert app.state.runtime.store.events.pending(limit=10) == []


def test_the_envelope_masks_subscriber_values_for_the_consumers_role(
    client: TestClient, role_headers: Headers, seen: list[DomainEvent]
) -> None:
    assert (
        client.post("/subscribers", json=body(1, email="ada@example.com"), headers=role_headers["admin"]).status_code
        == 201
    )
    (event,) = seen
    viewer, admin = envelope(event, Role.VIEWER), envelope(event, Role.ADMIN)
    assert admin["data"]["subscriber"]["imsi"] == event.data["subscriber"]["imsi"]
    assert viewer["data"]["subscriber"]["imsi"] != event.data["subscriber"]["imsi"]
    assert "*" in viewer["data"]["subscriber"]["imsi"]
    assert "*" in viewer["data"]["subscriber"]["email"]
    assert set(viewer) == {"id", "type", "timestamp", "subject", "actor", "request_id", "data_version", "data"}
