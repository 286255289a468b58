"""Bookings and resources through the API, on every backend: rules, errors, roles and races."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.bookings.schemas import BookingCreate
from app.bookings.service import BookingService
from app.storage.base import Store
from app.storage.records import BookingStatus
from app.subscribers.service import SubscriberService
from tests.bookings.conftest import add_subscriber
from tests.support import race

EVERY_DAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAY = (datetime.now(UTC) + timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
Headers = dict[str, dict[str, str]]


def at(hour: float) -> str:
    return (DAY + timedelta(hours=hour)).isoformat()


def resource_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Main street store",
        "kind": "store",
        "timezone": "Etc/UTC",
        "slot_minutes": 30,
        "capacity": 2,
        "weekly_schedule": {day: [{"open": "08:00", "close": "18:00"}] for day in EVERY_DAY},
    }
    body.update(overrides)
    return body


@pytest.fixture
def resource_id(client: TestClient, role_headers: Headers, app: FastAPI) -> str:
    for uid, status in (("sub-1", "ACTIVE"), ("sub-2", "ACTIVE"), ("sub-3", "ACTIVE"), ("sub-s", "SUSPENDED")):
        add_subscriber(app, uid, status)
    response = client.post("/bookings/resources", json=resource_body(), headers=role_headers["operator"])
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def book(client: TestClient, headers: dict[str, str], resource: str, **overrides: Any) -> Any:
    body = {"resource_id": resource, "subscriber_uid": "sub-1", "start": at(10), **overrides}
    return client.post("/bookings", json=body, headers=headers)


def remaining(client: TestClient, headers: dict[str, str], resource_id: str, start: str) -> int:
    response = client.get(
        f"/bookings/resources/{resource_id}/availability", params={"from": at(0), "days": 1}, headers=headers
    )
    assert response.status_code == 200, response.text
    slot = next(
        s for s in response.json()["slots"] if datetime.fromisoformat(s["start"]) == datetime.fromisoformat(start)
    )
    return int(slot["remaining"])


def assert_problem(response: Any, status: int, field: str, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    errors = response.json().get("errors") or []
    assert field in [error["field"] for error in errors], errors
    if code:
        assert code in [error["code"] for error in errors], errors


def bookings_of(client: TestClient, headers: dict[str, str], resource_id: str) -> list[dict[str, Any]]:
    response = client.get("/bookings", params={"resource_id": resource_id}, headers=headers)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


# --- resources -------------------------------------------------------------------------------------


def test_resource_crud_roles_and_etag(client: TestClient, role_headers: Headers, resource_id: str) -> None:
    viewer, operator = role_headers["viewer"], role_headers["operator"]
    assert client.post("/bookings/resources", json=resource_body(), headers=viewer).status_code == 403
    got = client.get(f"/bookings/resources/{resource_id}", headers=viewer)
    assert got.status_code == 200
    assert got.headers["ETag"] == '"1"'
    assert got.json()["weekly_schedule"]["mon"] == [{"open": "08:00", "close": "18:00"}]
    assert client.get("/bookings/resources", headers=viewer).json()["items"][0]["id"] == resource_id
    assert client.patch(f"/bookings/resources/{resource_id}", json={"name": "x"}, headers=viewer).status_code == 403
    changed = client.patch(
        f"/bookings/resources/{resource_id}", json={"name": "Renamed"}, headers={**operator, "If-Match": '"1"'}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["resource"]["version"] == 2
    assert changed.headers["ETag"] == '"2"'
    stale = client.patch(
        f"/bookings/resources/{resource_id}", json={"name": "Again"}, headers={**operator, "If-Match": '"1"'}
    )
    assert stale.status_code == 412
    assert client.get("/bookings/resources/unknown", headers=viewer).status_code == 404
    assert client.delete(f"/bookings/resources/{resource_id}", headers=operator).status_code == 204
    assert client.get(f"/bookings/resources/{resource_id}", headers=viewer).status_code == 404


def test_opening_hours_are_the_union_of_the_intervals_given(client: TestClient, role_headers: Headers) -> None:
    """Overlapping intervals of one day mean the time any of them covers; `00:00` as a closing time is
    the midnight that ends the day (as `24:00`). The schema states every rule left: nothing to refuse.
    The hours are answered as given; availability offers their union."""
    mon = [
        {"open": "11:00", "close": "13:00"},
        {"open": "09:00", "close": "12:00"},
        {"open": "12:30", "close": "12:45"},
        {"open": "20:00", "close": "00:00"},
    ]
    as_given = [*mon[:3], {"open": "20:00", "close": "24:00"}]
    body = resource_body(
        timezone="Etc/UTC", weekly_schedule={"mon": mon}, exceptions=[{"date": "2026-12-24", "hours": mon}]
    )
    created = client.post("/bookings/resources", json=body, headers=role_headers["operator"])
    assert created.status_code == 201, created.text
    assert created.json()["weekly_schedule"]["mon"] == as_given
    assert created.json()["exceptions"][0]["hours"] == as_given
    monday = DAY + timedelta(days=(7 - DAY.weekday()) % 7)
    slots = client.get(
        f"/bookings/resources/{created.json()['id']}/availability",
        params={"from": monday.isoformat(), "days": 1},
        headers=role_headers["viewer"],
    ).json()["slots"]
    hours = [datetime.fromisoformat(slot["start"]).strftime("%H:%M") for slot in slots]
    assert hours == [f"{hour:02d}:{minute:02d}" for hour in (9, 10, 11, 12, 20, 21, 22, 23) for minute in (0, 30)]


def test_overnight_hours_are_offered_and_booked_after_midnight(
    client: TestClient, role_headers: Headers, app: FastAPI
) -> None:
    """A close at or before open runs past midnight: the night's slots go on into the next date."""
    add_subscriber(app, "night-owl")
    operator = role_headers["operator"]
    body = resource_body(weekly_schedule={day: [{"open": "22:00", "close": "02:00"}] for day in EVERY_DAY})
    created = client.post("/bookings/resources", json=body, headers=operator)
    assert created.status_code == 201, created.text
    resource = created.json()["id"]
    assert created.json()["weekly_schedule"]["mon"] == [{"open": "22:00", "close": "02:00"}]
    slots = client.get(
        f"/bookings/resources/{resource}/availability", params={"from": at(0), "days": 1}, headers=operator
    ).json()["slots"]
    assert [datetime.fromisoformat(slot["start"]) for slot in slots] == [
        DAY + timedelta(hours=hour) for hour in (0, 0.5, 1, 1.5, 22, 22.5, 23, 23.5)
    ]
    booked = book(client, operator, resource, subscriber_uid="night-owl", start=at(25))
    assert booked.status_code == 201, booked.text
    assert booked.json()["local_date"] == (DAY + timedelta(days=1)).date().isoformat()
    for start, code in ((at(26), "outside_schedule"), (at(25.25), "misaligned_start")):
        refused = book(client, operator, resource, subscriber_uid="night-owl", start=start)
        assert_problem(refused, 409, "body.start", code)
    # Moving the night's close earlier leaves the booking outside it: refused unless forced.
    shorter = {"weekly_schedule": {day: [{"open": "22:00", "close": "00:30"}] for day in EVERY_DAY}}
    refused = client.patch(f"/bookings/resources/{resource}", json=shorter, headers={**operator, "If-Match": '"1"'})
    assert refused.status_code == 409, refused.text
    assert [item["id"] for item in refused.json()["bookings_outside_schedule"]] == [booked.json()["id"]]


def test_entries_for_one_exception_date_add_up(client: TestClient, role_headers: Headers) -> None:
    exceptions = [
        {"date": "2026-12-24", "closed": True},
        {"date": "2026-12-31", "hours": [{"open": "09:00", "close": "12:00"}]},
        {"date": "2026-12-24", "hours": [{"open": "10:00", "close": "11:00"}]},
        {"date": "2026-12-31", "hours": [{"open": "20:00", "close": "01:00"}]},
        {"date": "2026-12-25", "closed": True},
        {"date": "2026-12-25", "closed": True},
    ]
    created = client.post(
        "/bookings/resources", json=resource_body(exceptions=exceptions), headers=role_headers["operator"]
    )
    assert created.status_code == 201, created.text
    assert created.json()["exceptions"] == [
        {"date": "2026-12-24", "closed": False, "hours": [{"open": "10:00", "close": "11:00"}]},
        {"date": "2026-12-25", "closed": True, "hours": []},
        {
            "date": "2026-12-31",
            "closed": False,
            "hours": [{"open": "09:00", "close": "12:00"}, {"open": "20:00", "close": "01:00"}],
        },
    ]


def test_the_document_states_the_five_minute_grid_of_opening_hours() -> None:
    from app.main import create_app

    hours = create_app().openapi()["components"]["schemas"]["OpeningHoursIn"]["properties"]
    for name in ("open", "close"):
        pattern = re.compile(hours[name]["pattern"])
        assert all(pattern.search(value) for value in ("00:00", "09:05", "23:55"))
        assert not any(pattern.search(value) for value in ("09:03", "24:05", "25:00"))
    # The midnight that ends a day closes an interval; none opens then (it is the next day's 00:00).
    assert re.search(hours["close"]["pattern"], "24:00")
    assert not re.search(hours["open"]["pattern"], "24:00")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "body.timezone"),
        ({"weekly_schedule": {"mon": [{"open": "24:00", "close": "09:00"}]}}, "body.weekly_schedule.mon.0.open"),
        ({"weekly_schedule": {"monday": [{"open": "09:00", "close": "12:00"}]}}, "body.weekly_schedule.monday.[key]"),
        ({"weekly_schedule": {"mon": [{"open": "09:03", "close": "12:00"}]}}, "body.weekly_schedule.mon.0.open"),
        ({"weekly_schedule": {"mon": [{"open": "25:00", "close": "26:00"}]}}, "body.weekly_schedule.mon.0.open"),
        ({"slot_minutes": 241}, "body.slot_minutes"),
        ({"slot_minutes": 7}, "body.slot_minutes"),
        ({"capacity": 0}, "body.capacity"),
        ({"capacity": 1001}, "body.capacity"),
        ({"kind": "spaceship"}, "body.kind"),
        ({"colour": "blue"}, "body.colour"),
        ({"exceptions": [{"date": "2026-12-25"}]}, "body.exceptions.0"),
        (
            {"exceptions": [{"date": "2026-12-25", "closed": True, "hours": [{"open": "09:00", "close": "10:00"}]}]},
            "body.exceptions.0",
        ),
    ],
)
def test_bad_resources_are_refused_naming_the_field(
    client: TestClient, role_headers: Headers, overrides: dict[str, Any], field: str
) -> None:
    response = client.post("/bookings/resources", json=resource_body(**overrides), headers=role_headers["admin"])
    assert_problem(response, 422, field)
    assert client.get("/bookings/resources", headers=role_headers["admin"]).json()["items"] == []


# --- availability ------------------------------------------------------------------------------------


def test_availability_window_rules(client: TestClient, role_headers: Headers, resource_id: str) -> None:
    viewer = role_headers["viewer"]
    url = f"/bookings/resources/{resource_id}/availability"
    day = client.get(url, params={"from": at(0), "days": 1}, headers=viewer)
    assert day.status_code == 200
    assert datetime.fromisoformat(day.json()["to"]) == DAY + timedelta(days=1)
    slots = day.json()["slots"]
    assert len(slots) == 20
    assert slots[0]["start"].startswith(DAY.date().isoformat() + "T08:00:00")
    assert datetime.fromisoformat(slots[0]["local_start"]).utcoffset() == timedelta(0)
    assert {s["remaining"] for s in slots} == {2}
    month = client.get(url, params={"from": at(0), "days": 31}, headers=viewer)
    assert (month.status_code, len(month.json()["slots"])) == (200, 31 * 20)
    # The window's length is a parameter with a range the document states, not a rule between two times.
    for days in (0, 32):
        assert_problem(client.get(url, params={"from": at(0), "days": days}, headers=viewer), 422, "query.days")
    assert_problem(client.get(url, params={"from": at(0), "to": at(24)}, headers=viewer), 422, "query.days")
    assert_problem(
        client.get(url, params={"from": "2026-01-01T00:00:00", "days": 1}, headers=viewer), 422, "query.from"
    )
    assert (
        client.get(
            "/bookings/resources/nope/availability", params={"from": at(0), "days": 1}, headers=viewer
        ).status_code
        == 404
    )


@pytest.mark.parametrize("timezone", ["Etc/UTC", "Pacific/Kiritimati", "Etc/GMT+12"])
def test_availability_at_the_ends_of_the_calendar_is_answered(
    client: TestClient, role_headers: Headers, timezone: str
) -> None:
    """Schema-valid windows, so never a 500: a window reaching past the calendar Python can count
    ends where the calendar does (no slot starts beyond it), in the time zones furthest from UTC."""
    created = client.post(
        "/bookings/resources", json=resource_body(timezone=timezone), headers=role_headers["operator"]
    )
    assert created.status_code == 201, created.text
    url = f"/bookings/resources/{created.json()['id']}/availability"
    for start in ("9999-12-30T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "9999-12-01T00:00:00Z"):
        response = client.get(url, params={"from": start, "days": 31}, headers=role_headers["viewer"])
        assert response.status_code == 200, response.text
        window = response.json()
        window_from, window_to = datetime.fromisoformat(window["from"]), datetime.fromisoformat(window["to"])
        assert window_to >= window_from
        assert all(window_from <= datetime.fromisoformat(slot["start"]) < window_to for slot in window["slots"])


def test_status_windows_at_the_ends_of_the_calendar_are_answered(client: TestClient, role_headers: Headers) -> None:
    """Schema-valid times, so never a 500 (the month after 9999-12 is not a month of the window)."""
    for window in (("0001-01-01T00:00:00Z", "0001-03-01T00:00:00Z"), ("9999-11-01T00:00:00Z", "9999-12-31T23:59:59Z")):
        params = {"status": "CONFIRMED", "from": window[0], "to": window[1]}
        listed = client.get("/bookings", params=params, headers=role_headers["viewer"])
        assert (listed.status_code, listed.json()) == (200, {"items": [], "next_cursor": None}), listed.text
    # Found by the fuzz run: a window from before the year 1000 (sort keys must stay fixed-width).
    params = {"status": "NO_SHOW", "from": "0139-12-04T22:29:27.666795-03:35", "to": "1238-03-15T08:25:37+00:50"}
    early = client.get("/bookings", params=params, headers=role_headers["viewer"])
    assert (early.status_code, early.json()["items"]) == (200, []), early.text


# --- create -------------------------------------------------------------------------------------------


def test_create_get_and_seat_accounting(client: TestClient, role_headers: Headers, resource_id: str) -> None:
    operator, viewer = role_headers["operator"], role_headers["viewer"]
    assert book(client, viewer, resource_id).status_code == 403
    created = book(client, operator, resource_id, notes="bring ID")
    assert created.status_code == 201, created.text
    booking = created.json()
    assert booking["status"] == "CONFIRMED"
    assert datetime.fromisoformat(booking["end"]) - datetime.fromisoformat(booking["start"]) == timedelta(minutes=30)
    assert booking["created_by"] == "operator-user"
    assert client.get(f"/bookings/{booking['id']}", headers=viewer).json() == booking
    assert remaining(client, viewer, resource_id, at(10)) == 1
    counts = client.get("/bookings/daily-counts", params={"from": DAY.date().isoformat()}, headers=viewer).json()
    assert counts["days"][0] == {"date": DAY.date().isoformat(), "bookings": 1}
    assert len(counts["days"]) == 8
    assert client.get("/bookings/missing", headers=viewer).status_code == 404


@pytest.mark.parametrize(
    ("overrides", "status", "field", "code"),
    [
        # The request's shape is fine; the clock, the schedule or another record refuses it: 409.
        ({"end": at(9.5)}, 409, "body.end", "end_mismatch"),
        ({"end": at(11)}, 409, "body.end", "end_mismatch"),
        ({"start": at(10.25)}, 409, "body.start", "misaligned_start"),
        ({"start": at(20)}, 409, "body.start", "outside_schedule"),
        ({"start": at(-24 * 4 + 10)}, 409, "body.start", "in_past"),
        ({"start": "2030-01-01T10:00:00"}, 422, "body.start", None),
        ({"resource_id": "nope"}, 409, "body.resource_id", "unknown_resource"),
        ({"subscriber_uid": "ghost"}, 409, "body.subscriber_uid", "unknown_subscriber"),
        ({"subscriber_uid": "sub-s"}, 409, "body.subscriber_uid", "subscriber_not_active"),
        ({"notes": "x" * 501}, 422, "body.notes", None),
        ({"room": "3"}, 422, "body.room", None),
    ],
)
def test_bad_bookings_are_refused_and_write_nothing(
    client: TestClient,
    role_headers: Headers,
    resource_id: str,
    overrides: dict[str, Any],
    status: int,
    field: str,
    code: str | None,
) -> None:
    operator = role_headers["operator"]
    assert_problem(book(client, operator, resource_id, **overrides), status, field, code)
    assert bookings_of(client, operator, resource_id) == []
    assert remaining(client, operator, resource_id, at(10)) == 2
    counts = client.get("/bookings/daily-counts", params={"from": DAY.date().isoformat(), "days": 1}, headers=operator)
    assert counts.json()["days"][0]["bookings"] == 0


def test_full_slot_and_overlap_are_409(client: TestClient, role_headers: Headers, resource_id: str) -> None:
    operator = role_headers["operator"]
    assert book(client, operator, resource_id, subscriber_uid="sub-1").status_code == 201
    assert book(client, operator, resource_id, subscriber_uid="sub-2").status_code == 201
    assert_problem(book(client, operator, resource_id, subscriber_uid="sub-3"), 409, "body.start", "slot_full")
    again = book(client, operator, resource_id, subscriber_uid="sub-1", start=at(10))
    assert_problem(again, 409, "body.subscriber_uid", "overlapping_booking")
    other = client.post("/bookings/resources", json=resource_body(), headers=operator).json()["id"]
    assert_problem(
        book(client, operator, other, subscriber_uid="sub-1"), 409, "body.subscriber_uid", "overlapping_booking"
    )


# --- idempotency -------------------------------------------------------------------------------------


def test_idempotent_retry_returns_the_same_booking(client: TestClient, role_headers: Headers, resource_id: str) -> None:
    operator = {**role_headers["operator"], "Idempotency-Key": "retry-me-1"}
    first = book(client, operator, resource_id)
    second = book(client, operator, resource_id)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(bookings_of(client, operator, resource_id)) == 1
    assert remaining(client, operator, resource_id, at(10)) == 1
    reused = book(client, operator, resource_id, start=at(11))
    assert_problem(reused, 422, "header.idempotency-key", "idempotency_key_reused")
    # Keys belong to their user: the admin's "retry-me-1" is another key.
    admin = {**role_headers["admin"], "Idempotency-Key": "retry-me-1"}
    assert book(client, admin, resource_id, subscriber_uid="sub-2").json()["id"] != first.json()["id"]
    assert_problem(book(client, {**operator, "Idempotency-Key": "bad key"}, resource_id), 422, "header.idempotency-key")


def test_concurrent_retries_with_one_key_make_one_booking(
    client: TestClient, role_headers: Headers, resource_id: str
) -> None:
    headers = {**role_headers["operator"], "Idempotency-Key": "burst-1"}
    responses = race(20, lambda _: book(client, headers, resource_id))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {201, 409}
    assert len({r.json()["id"] for r in responses if r.status_code == 201}) == 1
    assert len(bookings_of(client, headers, resource_id)) == 1


# --- the last seat, through the API ------------------------------------------------------------------


def test_twenty_requests_for_the_last_seat(
    client: TestClient, role_headers: Headers, resource_id: str, app: FastAPI
) -> None:
    operator = role_headers["operator"]
    assert book(client, operator, resource_id, subscriber_uid="sub-1").status_code == 201
    for index in range(20):
        add_subscriber(app, f"racer-{index}")
    responses = race(20, lambda i: book(client, operator, resource_id, subscriber_uid=f"racer-{i}"))
    assert sorted(r.status_code for r in responses) == [201] + [409] * 19
    assert remaining(client, operator, resource_id, at(10)) == 0
    assert len(bookings_of(client, operator, resource_id)) == 2


# --- cancel, reschedule, outcomes -------------------------------------------------------------------


def test_cancel_frees_the_seat_once(client: TestClient, role_headers: Headers, resource_id: str) -> None:
    operator, viewer = role_headers["operator"], role_headers["viewer"]
    booking = book(client, operator, resource_id).json()
    assert client.post(f"/bookings/{booking['id']}/cancel", headers=viewer).status_code == 403
    cancelled = client.post(f"/bookings/{booking['id']}/cancel", json={"reason": "called"}, headers=operator)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "CANCELLED"
    assert cancelled.json()["cancel_reason"] == "called"
    assert cancelled.json()["cancelled_at"]
    assert remaining(client, viewer, resource_id, at(10)) == 2
    again = client.post(f"/bookings/{booking['id']}/cancel", headers=operator)
    assert_problem(again, 409, "status", "invalid_transition")
    assert remaining(client, viewer, resource_id, at(10)) == 2
    assert client.post("/bookings/nope/cancel", headers=operator).status_code == 404


def test_reschedule_is_all_or_nothing(client: TestClient, role_headers: Headers, resource_id: str) -> None:
    operator = role_headers["operator"]
    booking = book(client, operator, resource_id).json()
    moved = client.post(f"/bookings/{booking['id']}/reschedule", json={"start": at(12)}, headers=operator)
    assert moved.status_code == 200, moved.text
    assert datetime.fromisoformat(moved.json()["start"]) == datetime.fromisoformat(at(12))
    assert moved.json()["version"] == 2
    assert remaining(client, operator, resource_id, at(10)) == 2
    assert remaining(client, operator, resource_id, at(12)) == 1
    for uid in ("sub-2", "sub-3"):
        assert book(client, operator, resource_id, subscriber_uid=uid, start=at(14)).status_code == 201
    full = client.post(f"/bookings/{booking['id']}/reschedule", json={"start": at(14)}, headers=operator)
    assert_problem(full, 409, "body.start", "slot_full")
    misaligned = client.post(f"/bookings/{booking['id']}/reschedule", json={"start": at(12.1)}, headers=operator)
    assert_problem(misaligned, 409, "body.start", "misaligned_start")
    unchanged = client.get(f"/bookings/{booking['id']}", headers=operator).json()
    assert unchanged == moved.json()
    assert remaining(client, operator, resource_id, at(12)) == 1


def test_outcomes_only_after_the_slot_started(client: TestClient, role_headers: Headers, resource_id: str) -> None:
    operator = role_headers["operator"]
    booking = book(client, operator, resource_id).json()
    for path in ("complete", "no-show"):
        assert_problem(client.post(f"/bookings/{booking['id']}/{path}", headers=operator), 409, "status", "not_started")


def test_outcome_transitions_with_a_later_clock(store: Store, settings: Any) -> None:
    """COMPLETED / NO_SHOW need a started slot, so the service runs here with a clock moved past it."""
    from app.bookings.schemas import ResourceCreate
    from app.bookings.service import BookingService as Service

    now = datetime.now(UTC)
    service = Service(store, settings, {"sub-1": "ACTIVE"}.get, clock=lambda: now)
    resource = service.create_resource("op", ResourceCreate.model_validate(resource_body()))
    created, _ = service.create_booking(
        "op", BookingCreate(resource_id=resource.id, subscriber_uid="sub-1", start=datetime.fromisoformat(at(10))), None
    )
    later = Service(store, settings, {"sub-1": "ACTIVE"}.get, clock=lambda: DAY + timedelta(hours=10, minutes=5))
    done = later.mark("op", created.id, BookingStatus.COMPLETED)
    assert done.status is BookingStatus.COMPLETED
    with pytest.raises(Exception, match="only a CONFIRMED booking"):
        later.mark("op", created.id, BookingStatus.NO_SHOW)
    with pytest.raises(Exception, match="only a CONFIRMED booking"):
        later.cancel("op", created.id, None)
    history = [e.action for e in store.audit.list_for_entity("booking", created.id, limit=5).items]
    assert history == ["booking.completed", "booking.create"]


# --- schedule changes never drop bookings silently ----------------------------------------------------


def test_schedule_change_refused_then_forced(client: TestClient, role_headers: Headers, resource_id: str) -> None:
    operator = role_headers["operator"]
    booking = book(client, operator, resource_id, start=at(17)).json()
    url = f"/bookings/resources/{resource_id}"
    shorter = {"weekly_schedule": {day: [{"open": "08:00", "close": "16:00"}] for day in EVERY_DAY}}
    refused = client.patch(url, json=shorter, headers=operator)
    assert refused.status_code == 409, refused.text
    assert [b["id"] for b in refused.json()["bookings_outside_schedule"]] == [booking["id"]]
    assert client.get(url, headers=operator).json()["version"] == 1
    forced = client.patch(url, json=shorter, params={"force": "true"}, headers=operator)
    assert forced.status_code == 200
    assert [b["id"] for b in forced.json()["bookings_outside_schedule"]] == [booking["id"]]
    assert client.get(f"/bookings/{booking['id']}", headers=operator).json()["status"] == "CONFIRMED"
    # Changes that leave every booking inside the schedule go through without force.
    assert client.patch(url, json={"slot_minutes": 30, "name": "n"}, headers=operator).status_code == 200


def test_capacity_decrease_below_bookings_is_refused(
    client: TestClient, role_headers: Headers, resource_id: str
) -> None:
    operator = role_headers["operator"]
    ids = [book(client, operator, resource_id, subscriber_uid=uid).json()["id"] for uid in ("sub-1", "sub-2")]
    url = f"/bookings/resources/{resource_id}"
    refused = client.patch(url, json={"capacity": 1}, headers=operator)
    assert refused.status_code == 409
    assert sorted(b["id"] for b in refused.json()["bookings_over_capacity"]) == sorted(ids)
    forced = client.patch(url, json={"capacity": 1}, params={"force": "true"}, headers=operator)
    assert sorted(b["id"] for b in forced.json()["bookings_over_capacity"]) == sorted(ids)
    assert remaining(client, operator, resource_id, at(10)) == 0
    assert client.patch(url, json={"capacity": 5}, headers=operator).status_code == 200
    assert client.delete(url, headers=operator).status_code == 409


# --- lists -------------------------------------------------------------------------------------------


def test_lists_and_their_filters(client: TestClient, role_headers: Headers, resource_id: str) -> None:
    viewer, operator = role_headers["viewer"], role_headers["operator"]
    made = [book(client, operator, resource_id, subscriber_uid="sub-1", start=at(h)).json()["id"] for h in (9, 10, 11)]
    book(client, operator, resource_id, subscriber_uid="sub-2", start=at(9))
    first = client.get("/bookings", params={"subscriber_uid": "sub-1", "limit": 2}, headers=viewer).json()
    second = client.get(
        "/bookings", params={"subscriber_uid": "sub-1", "limit": 2, "cursor": first["next_cursor"]}, headers=viewer
    ).json()
    assert [b["id"] for b in first["items"] + second["items"]] == made
    window = client.get(
        "/bookings", params={"resource_id": resource_id, "from": at(9.5), "to": at(11)}, headers=viewer
    ).json()
    assert [b["id"] for b in window["items"]] == [made[1]]
    by_status = client.get(
        "/bookings", params={"status": "CONFIRMED", "from": at(0), "to": at(24)}, headers=viewer
    ).json()
    assert len(by_status["items"]) == 4
    # No maximum length: a long window costs more pages (each bounded), not a 422.
    decade, cursor, pages = [], None, 0
    while pages == 0 or cursor:
        page = client.get(
            "/bookings",
            params={
                "status": "CONFIRMED",
                "from": at(-24 * 3650),
                "to": at(24 * 3650),
                **({"cursor": cursor} if cursor else {}),
            },
            headers=viewer,
        )
        assert page.status_code == 200, page.text
        decade.extend(page.json()["items"])
        cursor, pages = page.json()["next_cursor"], pages + 1
    assert len(decade) == 4
    assert_problem(client.get("/bookings", headers=viewer), 422, "query.resource_id", "exactly_one_required")
    assert_problem(
        client.get("/bookings", params={"resource_id": resource_id, "status": "CONFIRMED"}, headers=viewer),
        422,
        "query.status",
    )
    assert_problem(client.get("/bookings", params={"status": "CONFIRMED"}, headers=viewer), 422, "query.from")
    assert_problem(client.get("/bookings", params={"status": "LOST"}, headers=viewer), 422, "query.status")
    bad_cursor = client.get(
        "/bookings", params={"subscriber_uid": "sub-2", "cursor": first["next_cursor"]}, headers=viewer
    )
    assert_problem(bad_cursor, 404, "query.cursor")


def test_subscriber_delete_guard_is_exposed(store: Store, settings: Any) -> None:
    service = BookingService(store, settings, {"sub-1": "ACTIVE"}.get)
    assert service.has_future_confirmed("sub-1") is False


def test_subscriber_with_future_bookings_cannot_be_deleted(
    client: TestClient, role_headers: Headers, resource_id: str
) -> None:
    """The rule between the two domains: cancel a subscriber's future bookings before deleting them."""
    operator = role_headers["operator"]
    booking = book(client, operator, resource_id)
    assert booking.status_code == 201, booking.text
    refused = client.delete("/subscribers/sub-1", headers=operator)
    assert refused.status_code == 409
    assert refused.json()["errors"][0]["code"] == "has_bookings"
    assert client.get("/subscribers/sub-1", headers=operator).status_code == 200
    cancelled = client.post(f"/bookings/{booking.json()['id']}/cancel", json={"reason": "moving"}, headers=operator)
    assert cancelled.status_code == 200, cancelled.text
    assert client.delete("/subscribers/sub-1", headers=operator).status_code == 204


def test_subscriber_delete_asks_the_bookings_service(
    client: TestClient, role_headers: Headers, resource_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The subscribers domain asks the bookings domain's service, not the bookings repository."""
    operator = role_headers["operator"]
    monkeypatch.setattr(BookingService, "has_future_confirmed", lambda self, uid: uid == "sub-2")
    assert_problem(client.delete("/subscribers/sub-2", headers=operator), 409, "path.uid", "has_bookings")
    assert client.delete("/subscribers/sub-3", headers=operator).status_code == 204


def test_booking_asks_the_subscribers_service_for_the_status(
    client: TestClient, role_headers: Headers, resource_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bookings domain asks the subscribers domain's service, not the subscribers repository."""
    monkeypatch.setattr(SubscriberService, "status_of", lambda self, uid: "SUSPENDED")
    refused = book(client, role_headers["operator"], resource_id)
    assert_problem(refused, 409, "body.subscriber_uid", "subscriber_not_active")


def test_booking_uses_the_real_subscriber_status(client: TestClient, role_headers: Headers, resource_id: str) -> None:
    operator = role_headers["operator"]
    assert_problem(book(client, operator, resource_id, subscriber_uid="sub-s"), 409, "body.subscriber_uid")
    assert_problem(book(client, operator, resource_id, subscriber_uid="nobody"), 409, "body.subscriber_uid")
