"""Slots across daylight-saving changes: the rules documented in app/bookings/availability.py."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest

from app.bookings.availability import day_slots, slot_at, slots_between
from app.storage.records import OpeningHours, ResourceRecord, ScheduleException

EVERY_DAY = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def resource(timezone: str, open_: str, close: str, slot_minutes: int = 30, **overrides: object) -> ResourceRecord:
    now = datetime.now(UTC)
    values: dict[str, object] = {
        "id": "r",
        "name": "n",
        "kind": "store",
        "timezone": timezone,
        "slot_minutes": slot_minutes,
        "capacity": 1,
        "weekly_schedule": {day: [OpeningHours(open=open_, close=close)] for day in EVERY_DAY},
        "created_by": "t",
        "created_at": now,
        "updated_at": now,
    }
    values.update(overrides)
    return ResourceRecord.model_validate(values)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def starts(slots: list) -> list[str]:  # type: ignore[type-arg]
    return [slot.local_start.isoformat() for slot in slots]


def test_london_spring_forward_skips_the_missing_hour() -> None:
    slots = day_slots(resource("Europe/London", "01:00", "03:00"), date(2026, 3, 29))
    # 01:00-02:00 does not exist that night: only 02:00 and 02:30 (BST) are offered.
    assert starts(slots) == ["2026-03-29T02:00:00+01:00", "2026-03-29T02:30:00+01:00"]
    assert [slot.start for slot in slots] == [utc("2026-03-29T01:00"), utc("2026-03-29T01:30")]


def test_london_fall_back_offers_the_repeated_hour_twice() -> None:
    slots = day_slots(resource("Europe/London", "01:00", "03:00"), date(2026, 10, 25))
    assert starts(slots) == [
        "2026-10-25T01:00:00+01:00",
        "2026-10-25T01:30:00+01:00",
        "2026-10-25T01:00:00+00:00",
        "2026-10-25T01:30:00+00:00",
        "2026-10-25T02:00:00+00:00",
        "2026-10-25T02:30:00+00:00",
    ]
    # Three real hours, back to back, no overlap.
    assert all(a.end == b.start for a, b in itertools.pairwise(slots))
    assert slots[0].start == utc("2026-10-25T00:00")
    assert slots[-1].end == utc("2026-10-25T03:00")


def test_new_york_spring_forward_and_fall_back() -> None:
    spring = day_slots(resource("America/New_York", "01:00", "04:00", 60), date(2026, 3, 8))
    assert starts(spring) == ["2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00"]
    fall = day_slots(resource("America/New_York", "01:00", "03:00", 60), date(2026, 11, 1))
    assert starts(fall) == ["2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"]


def test_a_slot_never_runs_past_a_skipped_closing_time() -> None:
    # Closing at 01:30 on the spring-forward night means closing when the clocks jump (01:00 GMT).
    slots = day_slots(resource("Europe/London", "00:00", "01:30"), date(2026, 3, 29))
    assert [slot.end for slot in slots] == [utc("2026-03-29T00:30"), utc("2026-03-29T01:00")]
    # A 60-minute slot from 00:30 would end at 02:30 BST, after closing: not offered.
    assert day_slots(resource("Europe/London", "00:30", "02:00", 60), date(2026, 3, 29)) == []


def test_long_slots_do_not_overlap_across_the_jump() -> None:
    slots = day_slots(resource("Europe/London", "00:00", "04:00", 120), date(2026, 3, 29))
    assert [(slot.start, slot.end) for slot in slots] == [(utc("2026-03-29T00:00"), utc("2026-03-29T02:00"))]


def test_ordinary_day_closing_at_midnight_and_exceptions() -> None:
    shop = resource(
        "Europe/London",
        "22:00",
        "24:00",
        exceptions=[
            ScheduleException(date="2026-06-02", closed=True),
            ScheduleException(date="2026-06-03", hours=[OpeningHours(open="09:00", close="10:00")]),
        ],
    )
    assert starts(day_slots(shop, date(2026, 6, 1)))[-1] == "2026-06-01T23:30:00+01:00"
    assert day_slots(shop, date(2026, 6, 2)) == []
    assert starts(day_slots(shop, date(2026, 6, 3))) == ["2026-06-03T09:00:00+01:00", "2026-06-03T09:30:00+01:00"]


def test_window_and_slot_lookup() -> None:
    shop = resource("Asia/Kolkata", "09:00", "10:00")  # +05:30
    window = slots_between(shop, utc("2026-06-01T00:00"), utc("2026-06-03T00:00"))
    assert [slot.start for slot in window] == [
        utc("2026-06-01T03:30"),
        utc("2026-06-01T04:00"),
        utc("2026-06-02T03:30"),
        utc("2026-06-02T04:00"),
    ]
    assert slot_at(shop, utc("2026-06-01T04:00")) is not None
    assert slot_at(shop, utc("2026-06-01T04:15")) is None
    assert slot_at(shop, utc("2026-06-01T04:30")) is None  # would end after closing


@pytest.mark.parametrize("day", [date(2026, 3, 29), date(2026, 10, 25)])
def test_every_offered_start_is_found_again_by_slot_at(day: date) -> None:
    shop = resource("Europe/London", "00:00", "24:00", 15)
    slots = day_slots(shop, day)
    assert len(slots) == {date(2026, 3, 29): 92, date(2026, 10, 25): 100}[day]
    assert all(slot_at(shop, slot.start) == slot for slot in slots)
    assert all(b.start - a.start == timedelta(minutes=15) for a, b in itertools.pairwise(slots))
