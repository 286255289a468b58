"""Contract tests for resources and bookings, on every backend: the same calls, the same outcomes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.audit import audit_entry
from app.storage.base import (
    BookingsChanged,
    CursorRejected,
    IdempotencyKey,
    IdempotencyKeyTaken,
    OverlappingBooking,
    RecordMissing,
    ResourceChanged,
    SlotFull,
    StaleVersion,
    Store,
    ValueTaken,
)
from app.storage.dynamodb.bookings import STATUS_MONTHS_PER_PAGE
from app.storage.records import AuditEntry, BookingRecord, BookingStatus, OpeningHours, ResourceRecord
from app.timeutil import utcnow
from tests.support import race

# Slots are whole hours on a fixed future grid; the contract does not depend on schedules.
BASE = (utcnow() + timedelta(days=30)).replace(hour=0, minute=0, second=0, microsecond=0)


def at(hours: float) -> datetime:
    return BASE + timedelta(hours=hours)


def audit(entity_type: str, entity_id: str, action: str) -> AuditEntry:
    return audit_entry(
        actor="tester", action=action, entity_type=entity_type, entity_id=entity_id, at=utcnow(), retention_days=30
    )


def make_resource(resource_id: str = "res1", capacity: int = 2, **overrides: object) -> ResourceRecord:
    now = utcnow()
    values: dict[str, object] = {
        "id": resource_id,
        "name": "Store",
        "kind": "store",
        "timezone": "Europe/London",
        "slot_minutes": 60,
        "capacity": capacity,
        "weekly_schedule": {"mon": [OpeningHours(open="09:00", close="17:00")]},
        "created_by": "tester",
        "created_at": now,
        "updated_at": now,
    }
    values.update(overrides)
    return ResourceRecord.model_validate(values)


def make_booking(
    booking_id: str, start: datetime, subscriber: str = "sub1", resource_id: str = "res1", minutes: int = 60
) -> BookingRecord:
    now = utcnow()
    return BookingRecord(
        id=booking_id,
        resource_id=resource_id,
        subscriber_uid=subscriber,
        start=start,
        end=start + timedelta(minutes=minutes),
        local_date=start.date().isoformat(),
        created_by="tester",
        created_at=now,
        updated_at=now,
    )


def add_resource(store: Store, **overrides: object) -> ResourceRecord:
    resource = make_resource(**overrides)  # type: ignore[arg-type]
    store.resources.create(resource, audit("resource", resource.id, "resource.create"))
    stored = store.resources.get(resource.id)
    assert stored is not None
    return stored


def book(store: Store, booking: BookingRecord, idempotency: IdempotencyKey | None = None) -> None:
    resource = store.resources.get(booking.resource_id)
    assert resource is not None
    store.bookings.create(
        booking, audit("booking", booking.id, "booking.create"), resource=resource, idempotency=idempotency
    )


def seats(store: Store, resource_id: str = "res1") -> dict[datetime, int]:
    return store.resources.seats_taken(resource_id, at(-24), at(24 * 40))


# --- resources -----------------------------------------------------------------------------------------


def test_resource_round_trip_list_and_duplicate(store: Store) -> None:
    resource = add_resource(store)
    assert resource == make_resource().model_copy(
        update={"created_at": resource.created_at, "updated_at": resource.updated_at}
    )
    assert store.resources.get("missing") is None
    with pytest.raises(ValueTaken) as caught:
        store.resources.create(make_resource(), audit("resource", "res1", "resource.create"))
    assert caught.value.attribute == "id"
    for name in ("res3", "res0", "res2"):
        add_resource(store, resource_id=name)
    first = store.resources.list(limit=3)
    second = store.resources.list(limit=3, cursor=first.next_cursor)
    assert [r.id for r in first.items + second.items] == ["res0", "res1", "res2", "res3"]
    assert second.next_cursor is None


def test_resource_replace_and_delete_are_guarded_by_version_and_bookings(store: Store) -> None:
    resource = add_resource(store)
    renamed = resource.model_copy(update={"name": "Renamed"})
    store.resources.replace(resource, renamed, audit("resource", "res1", "resource.update"))
    stored = store.resources.get("res1")
    assert stored is not None
    assert (stored.name, stored.version) == ("Renamed", 2)
    with pytest.raises(StaleVersion):
        store.resources.replace(resource, resource.model_copy(), audit("resource", "res1", "resource.update"))
    book(store, make_booking("b1", at(10)))
    # A booking made after `stored` was read bumps bookings_revision: the check must be redone.
    with pytest.raises(BookingsChanged):
        store.resources.replace(stored, stored.model_copy(update={"capacity": 1}), audit("resource", "res1", "x"))
    with pytest.raises(BookingsChanged):
        store.resources.delete(stored, audit("resource", "res1", "resource.delete"))
    fresh = store.resources.get("res1")
    assert fresh is not None
    assert fresh.capacity == 2
    store.resources.delete(fresh, audit("resource", "res1", "resource.delete"))
    assert store.resources.get("res1") is None
    with pytest.raises(RecordMissing):
        store.resources.delete(fresh, audit("resource", "res1", "resource.delete"))
    actions = [entry.action for entry in store.audit.list_for_entity("resource", "res1", limit=10).items]
    assert actions == ["resource.delete", "resource.update", "resource.create"]


# --- create, capacity, overlap ----------------------------------------------------------------------


def test_create_takes_a_seat_counts_and_audits(store: Store) -> None:
    add_resource(store)
    booking = make_booking("b1", at(10))
    book(store, booking)
    assert store.bookings.get("b1") == booking
    assert store.bookings.get("nope") is None
    assert seats(store) == {at(10): 1}
    assert store.counters.get_keys("bookings.day", [booking.local_date, "2000-01-01"]) == {
        booking.local_date: 1,
        "2000-01-01": 0,
    }
    assert store.counters.get_keys("bookings.resource", [f"res1:{booking.local_date}"]) == {
        f"res1:{booking.local_date}": 1
    }
    assert [e.action for e in store.audit.list_for_entity("booking", "b1", limit=5).items] == ["booking.create"]


def test_full_slot_and_overlap_are_refused_and_write_nothing(store: Store) -> None:
    add_resource(store, capacity=1)
    book(store, make_booking("b1", at(10), subscriber="s1"))
    with pytest.raises(SlotFull) as full:
        book(store, make_booking("b2", at(10), subscriber="s2"))
    assert str(full.value) == "no seat left in this slot"  # the detail of the API's 409
    add_resource(store, resource_id="res2", capacity=5)
    # Same subscriber, another resource, overlapping by 30 minutes.
    with pytest.raises(OverlappingBooking) as overlap:
        book(store, make_booking("b3", at(10.5), subscriber="s1", resource_id="res2"))
    assert str(overlap.value) == "subscriber 's1' already holds a confirmed booking overlapping this time"
    for refused in ("b2", "b3"):
        assert store.bookings.get(refused) is None
        assert store.audit.list_for_entity("booking", refused, limit=5).items == []
    assert seats(store, "res2") == {}
    assert seats(store) == {at(10): 1}
    day = at(10).date().isoformat()
    assert store.counters.get_keys("bookings.day", [day]) == {day: 1}
    # Back to back is not an overlap.
    book(store, make_booking("b4", at(11), subscriber="s1", resource_id="res2"))


def test_overlap_across_midnight_utc_is_detected(store: Store) -> None:
    add_resource(store, capacity=5)
    book(store, make_booking("late", at(23.5), minutes=60))  # 23:30 - 00:30 next day
    with pytest.raises(OverlappingBooking):
        book(store, make_booking("early", at(24.25), minutes=30))
    book(store, make_booking("after", at(24.5), minutes=30))


def test_inactive_or_changed_resource_refuses_bookings(store: Store) -> None:
    resource = add_resource(store)
    stale = resource.model_copy()
    store.resources.replace(resource, resource.model_copy(update={"name": "x"}), audit("resource", "res1", "u"))
    with pytest.raises(ResourceChanged):
        store.bookings.create(make_booking("b1", at(10)), audit("booking", "b1", "c"), resource=stale)
    current = store.resources.get("res1")
    assert current is not None
    store.resources.replace(current, current.model_copy(update={"active": False}), audit("resource", "res1", "u"))
    inactive = store.resources.get("res1")
    assert inactive is not None
    with pytest.raises(ResourceChanged):
        store.bookings.create(make_booking("b1", at(10)), audit("booking", "b1", "c"), resource=inactive)
    assert store.bookings.get("b1") is None
    assert seats(store) == {}


# --- idempotency -----------------------------------------------------------------------------------


def test_idempotency_key_is_stored_with_the_booking_and_expires(store: Store) -> None:
    add_resource(store, capacity=5)
    now = utcnow()
    key = IdempotencyKey(key="alice:k1", request_hash="h1", expires_at=now + timedelta(hours=24))
    book(store, make_booking("b1", at(10)), key)
    stored = store.bookings.find_idempotency("alice:k1", now)
    assert stored is not None
    assert (stored.request_hash, stored.booking_id) == ("h1", "b1")
    assert store.bookings.find_idempotency("alice:k2", now) is None
    assert store.bookings.find_idempotency("alice:k1", now + timedelta(hours=25)) is None
    with pytest.raises(IdempotencyKeyTaken):
        book(store, make_booking("b2", at(12), subscriber="s2"), key)
    assert store.bookings.get("b2") is None
    assert seats(store) == {at(10): 1}


def test_expired_idempotency_key_can_be_used_again(store: Store) -> None:
    add_resource(store, capacity=5)
    past = utcnow() - timedelta(hours=1)
    book(store, make_booking("b1", at(10)), IdempotencyKey(key="k", request_hash="h1", expires_at=past))
    fresh = IdempotencyKey(key="k", request_hash="h2", expires_at=utcnow() + timedelta(hours=24))
    book(store, make_booking("b2", at(12)), fresh)
    stored = store.bookings.find_idempotency("k", utcnow())
    assert stored is not None
    assert (stored.request_hash, stored.booking_id) == ("h2", "b2")
    assert store.bookings.get("b1") is not None


# --- status changes and reschedule -----------------------------------------------------------------


def test_cancel_frees_the_seat_and_the_time(store: Store) -> None:
    add_resource(store, capacity=1)
    booking = make_booking("b1", at(10))
    book(store, booking)
    now = utcnow()
    cancelled = booking.model_copy(
        update={"status": BookingStatus.CANCELLED, "cancelled_at": now, "cancel_reason": "asked", "updated_at": now}
    )
    store.bookings.change_status(booking, cancelled, audit("booking", "b1", "booking.cancel"))
    stored = store.bookings.get("b1")
    assert stored == cancelled
    assert stored is not None
    assert stored.version == 2
    assert seats(store) == {}
    day = booking.local_date
    assert store.counters.get_keys("bookings.day", [day]) == {day: 0}
    with pytest.raises(StaleVersion):  # stale version
        store.bookings.change_status(booking, cancelled, audit("booking", "b1", "booking.cancel"))
    book(store, make_booking("b2", at(10)))  # the seat and the subscriber's time are free again
    assert seats(store) == {at(10): 1}
    missing = make_booking("ghost", at(10))
    with pytest.raises(RecordMissing):
        store.bookings.change_status(missing, missing.model_copy(), audit("booking", "ghost", "x"))


def test_complete_keeps_the_seat_and_releases_the_time(store: Store) -> None:
    add_resource(store, capacity=2)
    booking = make_booking("b1", at(10))
    book(store, booking)
    done = booking.model_copy(update={"status": BookingStatus.COMPLETED})
    store.bookings.change_status(booking, done, audit("booking", "b1", "booking.completed"))
    assert seats(store) == {at(10): 1}
    assert store.counters.get_keys("bookings.day", [booking.local_date]) == {booking.local_date: 1}
    book(store, make_booking("b2", at(10)))  # same subscriber, same time: no longer held


def test_reschedule_moves_seat_time_and_counters_atomically(store: Store) -> None:
    add_resource(store, capacity=1)
    booking = make_booking("b1", at(10))
    book(store, booking)
    resource = store.resources.get("res1")
    assert resource is not None
    moved = booking.model_copy(update={"start": at(34), "end": at(35), "local_date": at(34).date().isoformat()})
    store.bookings.reschedule(booking, moved, audit("booking", "b1", "booking.reschedule"), resource=resource)
    stored = store.bookings.get("b1")
    assert stored is not None
    assert (stored.start, stored.version) == (at(34), 2)
    assert seats(store) == {at(34): 1}
    days = [booking.local_date, moved.local_date]
    assert store.counters.get_keys("bookings.day", days) == {days[0]: 0, days[1]: 1}
    book(store, make_booking("b2", at(10), subscriber="s2"))  # old seat free
    book(store, make_booking("b3", at(10.5), subscriber="sub1", minutes=30))  # old time free for the subscriber


def test_refused_reschedule_changes_nothing(store: Store) -> None:
    add_resource(store, capacity=1)
    booking = make_booking("b1", at(10))
    book(store, booking)
    book(store, make_booking("other", at(12), subscriber="s2"))
    book(store, make_booking("mine", at(14), subscriber="sub1"))
    resource = store.resources.get("res1")
    assert resource is not None

    def move_to(hours: float) -> None:
        target = booking.model_copy(update={"start": at(hours), "end": at(hours + 1)})
        store.bookings.reschedule(booking, target, audit("booking", "b1", "r"), resource=resource)

    with pytest.raises(SlotFull):
        move_to(12)
    add_resource(store, resource_id="res2", capacity=3)
    book(store, make_booking("x", at(20), subscriber="sub1", resource_id="res2"))
    with pytest.raises(OverlappingBooking):
        move_to(20)
    assert store.bookings.get("b1") == booking
    assert seats(store) == {at(10): 1, at(12): 1, at(14): 1}
    assert seats(store, "res2") == {at(20): 1}
    assert [e.action for e in store.audit.list_for_entity("booking", "b1", limit=5).items] == ["booking.create"]


# --- lists and guards --------------------------------------------------------------------------------


def _collect(fetch: Callable[[str | None], tuple[list[BookingRecord], str | None]]) -> list[str]:
    ids, cursor = [], None
    while True:
        items, cursor = fetch(cursor)
        ids.extend(item.id for item in items)
        if cursor is None:
            return ids


def test_lists_by_resource_subscriber_and_status_with_windows_and_cursors(store: Store) -> None:
    add_resource(store, capacity=10)
    add_resource(store, resource_id="res2", capacity=10)
    for index, hours in enumerate([10, 40, 24 * 35, 11, 24 * 60]):
        book(store, make_booking(f"b{index}", at(hours), subscriber=f"s{index % 2}"))
    book(store, make_booking("elsewhere", at(10), subscriber="s9", resource_id="res2"))

    def by_resource(cursor: str | None) -> tuple[list[BookingRecord], str | None]:
        page = store.bookings.list_for_resource("res1", start_from=None, start_to=None, limit=2, cursor=cursor)
        return page.items, page.next_cursor

    assert _collect(by_resource) == ["b0", "b3", "b1", "b2", "b4"]
    window = store.bookings.list_for_resource("res1", start_from=at(10), start_to=at(40), limit=10)
    assert [b.id for b in window.items] == ["b0", "b3"]  # `to` is exclusive
    mine = store.bookings.list_for_subscriber("s0", start_from=None, start_to=None, limit=10)
    assert [b.id for b in mine.items] == ["b0", "b2", "b4"]

    def by_status(cursor: str | None) -> tuple[list[BookingRecord], str | None]:
        page = store.bookings.list_by_status(
            BookingStatus.CONFIRMED, start_from=at(0), start_to=at(24 * 70), limit=2, cursor=cursor
        )
        return page.items, page.next_cursor

    assert sorted(_collect(by_status)) == sorted(["b0", "b3", "b1", "b2", "b4", "elsewhere"])
    assert [
        b.id
        for b in store.bookings.list_by_status(
            BookingStatus.CONFIRMED, start_from=at(24 * 30), start_to=at(24 * 70), limit=10
        ).items
    ] == ["b2", "b4"]
    first = store.bookings.list_for_resource("res1", start_from=None, start_to=None, limit=1)
    assert first.next_cursor
    with pytest.raises(CursorRejected):
        store.bookings.list_for_resource("res2", start_from=None, start_to=None, limit=1, cursor=first.next_cursor)
    with pytest.raises(CursorRejected):
        store.bookings.list_for_resource("res1", start_from=at(1), start_to=None, limit=1, cursor=first.next_cursor)


def test_a_status_window_of_any_length_is_listed_in_pages_of_bounded_work(
    store: Store, dynamo_queries: list[dict[str, Any]] | None
) -> None:
    """Thirty years are some 360 month partitions on DynamoDB: a page reads a bounded number of them
    and its cursor goes on from there, so a long window costs more pages, never one unbounded request."""
    add_resource(store, capacity=10)
    far = at(24 * 365 * 30)
    book(store, make_booking("near", at(10)))
    book(store, make_booking("far", far))
    ids, cursor, pages = [], None, 0
    while True:
        before = len(dynamo_queries or [])
        page = store.bookings.list_by_status(
            BookingStatus.CONFIRMED, start_from=at(0), start_to=far + timedelta(hours=1), limit=10, cursor=cursor
        )
        if dynamo_queries is not None:
            assert len(dynamo_queries) - before <= STATUS_MONTHS_PER_PAGE
        ids.extend(booking.id for booking in page.items)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert ids == ["near", "far"]
    months = (far.year - BASE.year) * 12 + far.month - BASE.month + 1
    assert pages == (1 if dynamo_queries is None else -(-months // STATUS_MONTHS_PER_PAGE))


def test_cancelled_booking_moves_between_status_lists(store: Store) -> None:
    add_resource(store)
    booking = make_booking("b1", at(10))
    book(store, booking)
    store.bookings.change_status(
        booking, booking.model_copy(update={"status": BookingStatus.CANCELLED}), audit("booking", "b1", "c")
    )
    window = {"start_from": at(0), "start_to": at(48), "limit": 10}
    assert store.bookings.list_by_status(BookingStatus.CONFIRMED, **window).items == []  # type: ignore[arg-type]
    assert [b.id for b in store.bookings.list_by_status(BookingStatus.CANCELLED, **window).items] == ["b1"]  # type: ignore[arg-type]


def test_has_future_confirmed_and_future_bookings_of_a_resource(store: Store) -> None:
    add_resource(store, capacity=5)
    now = utcnow()
    assert store.bookings.has_future_confirmed("sub1", now) is False
    booking = make_booking("b1", at(10))
    book(store, booking)
    book(store, make_booking("b2", at(12), subscriber="s2"))
    assert store.bookings.has_future_confirmed("sub1", now) is True
    assert store.bookings.has_future_confirmed("sub1", at(11)) is False  # only bookings starting later count
    assert [b.id for b in store.bookings.future_confirmed_for_resource("res1", now)] == ["b1", "b2"]
    store.bookings.change_status(
        booking, booking.model_copy(update={"status": BookingStatus.CANCELLED}), audit("booking", "b1", "c")
    )
    assert store.bookings.has_future_confirmed("sub1", now) is False
    assert [b.id for b in store.bookings.future_confirmed_for_resource("res1", now)] == ["b2"]


# --- concurrency -----------------------------------------------------------------------------------


def _race(count: int, attempt: Callable[[int], None]) -> list[str]:
    """Each attempt's outcome, "ok" or "conflict"; any other error fails the test."""
    outcomes = race(count, attempt, refusals=(SlotFull, OverlappingBooking))
    return ["ok" if outcome is None else "conflict" for outcome in outcomes]


def test_last_seat_race_has_exactly_one_winner(store: Store) -> None:
    add_resource(store, capacity=3)
    book(store, make_booking("first", at(10), subscriber="a"))
    book(store, make_booking("second", at(10), subscriber="b"))
    outcomes = _race(24, lambda i: book(store, make_booking(f"r{i}", at(10), subscriber=f"racer{i}")))
    assert sorted(outcomes) == ["conflict"] * 23 + ["ok"]
    assert seats(store) == {at(10): 3}
    listed = store.bookings.list_for_resource("res1", start_from=None, start_to=None, limit=50).items
    assert len(listed) == 3
    day = at(10).date().isoformat()
    assert store.counters.get_keys("bookings.day", [day]) == {day: 3}


def test_first_bookings_of_an_empty_slot_racing_all_get_a_seat(store: Store) -> None:
    """No slot document exists yet: every racer's seat is the upsert that may create it."""
    add_resource(store, capacity=12)
    outcomes = _race(12, lambda i: book(store, make_booking(f"e{i}", at(10), subscriber=f"racer{i}")))
    assert outcomes == ["ok"] * 12
    assert seats(store) == {at(10): 12}


def test_first_bookings_of_a_subscribers_day_racing_all_get_their_time(store: Store) -> None:
    """Non-overlapping bookings of one subscriber on a day with nothing booked yet: each one's
    time claim is the upsert that may create the day's ledger."""
    for index in range(8):
        add_resource(store, resource_id=f"res{index:02d}", capacity=1)
    outcomes = _race(8, lambda i: book(store, make_booking(f"d{i}", at(8 + i), resource_id=f"res{i:02d}")))
    assert outcomes == ["ok"] * 8
    assert len(store.bookings.list_for_subscriber("sub1", start_from=None, start_to=None, limit=50).items) == 8


def test_same_subscriber_racing_for_overlapping_slots_gets_one(store: Store) -> None:
    for index in range(20):
        add_resource(store, resource_id=f"res{index:02d}", capacity=5)
    outcomes = _race(
        20,
        lambda i: book(
            store, make_booking(f"o{i}", at(10 + (i % 2) * 0.5), subscriber="sub1", resource_id=f"res{i:02d}")
        ),
    )
    assert sorted(outcomes) == ["conflict"] * 19 + ["ok"]
    assert len(store.bookings.list_for_subscriber("sub1", start_from=None, start_to=None, limit=50).items) == 1


def test_cancel_and_book_race_never_goes_negative_or_over_capacity(store: Store) -> None:
    add_resource(store, capacity=1)
    booking = make_booking("held", at(10), subscriber="holder")
    book(store, booking)

    def attempt(index: int) -> None:
        if index == 0:
            store.bookings.change_status(
                booking, booking.model_copy(update={"status": BookingStatus.CANCELLED}), audit("booking", "held", "c")
            )
        else:
            book(store, make_booking(f"r{index}", at(10), subscriber=f"racer{index}"))

    outcomes = _race(20, attempt)
    assert all(not outcome.startswith("error") for outcome in outcomes), outcomes
    taken = seats(store).get(at(10), 0)
    confirmed = [
        b
        for b in store.bookings.list_for_resource("res1", start_from=None, start_to=None, limit=50).items
        if b.status is BookingStatus.CONFIRMED
    ]
    assert taken == len(confirmed) <= 1


def test_window_reads_only_the_window(store: Store) -> None:
    add_resource(store, capacity=2)
    book(store, make_booking("in", at(10)))
    book(store, make_booking("out", at(24 * 20)))
    assert store.resources.seats_taken("res1", at(0), at(24)) == {at(10): 1}
    assert store.resources.seats_taken("res1", at(10), at(10)) == {}
    assert store.resources.seats_taken("res1", at(11), at(24 * 21)) == {at(24 * 20): 1}
    assert all(start.tzinfo is not None and start.utcoffset() == timedelta(0) for start in seats(store))
    assert datetime(2000, 1, 1, tzinfo=UTC) not in seats(store)
