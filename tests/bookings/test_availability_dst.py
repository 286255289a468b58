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


# --- overnight intervals: a close at or before open is on the next day ------------------------------


def test_an_overnight_interval_runs_into_the_next_date() -> None:
    bar = resource("Europe/London", "22:00", "02:00", 60)
    assert starts(day_slots(bar, date(2026, 6, 1))) == [
        "2026-06-01T22:00:00+01:00",
        "2026-06-01T23:00:00+01:00",
        "2026-06-02T00:00:00+01:00",
        "2026-06-02T01:00:00+01:00",
    ]
    # The slots after midnight are found from their own date too: in a window, and to book.
    night = slots_between(bar, utc("2026-06-01T23:00"), utc("2026-06-02T01:00"))
    assert starts(night) == ["2026-06-02T00:00:00+01:00", "2026-06-02T01:00:00+01:00"]
    assert slot_at(bar, utc("2026-06-02T00:00")) == night[1]
    assert slot_at(bar, utc("2026-06-02T01:00")) is None  # 02:00 local would end after closing


def test_open_equal_to_close_is_twenty_four_hours_from_open() -> None:
    slots = day_slots(resource("Etc/UTC", "09:00", "09:00", 60), date(2026, 6, 1))
    assert len(slots) == 24
    assert (slots[0].start, slots[-1].end) == (utc("2026-06-01T09:00"), utc("2026-06-02T09:00"))


def test_overnight_across_spring_forward_and_fall_back() -> None:
    # London, 29 March 2026: 01:00 GMT is 02:00 BST. The night from the 28th has one real hour less.
    spring = day_slots(resource("Europe/London", "22:00", "04:00", 60), date(2026, 3, 28))
    assert starts(spring) == [
        "2026-03-28T22:00:00+00:00",
        "2026-03-28T23:00:00+00:00",
        "2026-03-29T00:00:00+00:00",
        "2026-03-29T02:00:00+01:00",
        "2026-03-29T03:00:00+01:00",
    ]
    assert all(a.end == b.start for a, b in itertools.pairwise(spring))
    # 25 October 2026: 01:00 happens twice, so the night from the 24th has one real hour more.
    fall = day_slots(resource("Europe/London", "23:00", "02:00", 60), date(2026, 10, 24))
    assert starts(fall) == [
        "2026-10-24T23:00:00+01:00",
        "2026-10-25T00:00:00+01:00",
        "2026-10-25T01:00:00+01:00",
        "2026-10-25T01:00:00+00:00",
    ]
    assert fall[-1].end == utc("2026-10-25T02:00")
    assert all(slot_at(resource("Europe/London", "23:00", "02:00", 60), slot.start) == slot for slot in fall)


def test_an_exception_day_keeps_the_previous_night_and_its_own_hours_start_after_it() -> None:
    """Hours belong to the date they open on: closing the 2nd leaves the night of the 1st open."""
    closed = resource("Etc/UTC", "22:00", "02:00", 60, exceptions=[ScheduleException(date="2026-06-02", closed=True)])
    second = slots_between(closed, utc("2026-06-02T00:00"), utc("2026-06-03T00:00"))
    assert [slot.start for slot in second] == [utc("2026-06-02T00:00"), utc("2026-06-02T01:00")]
    # Special hours from 01:00 overlap the night before, which closes at 02:00: they start then.
    special = resource(
        "Etc/UTC",
        "22:00",
        "02:00",
        60,
        exceptions=[ScheduleException(date="2026-06-02", hours=[OpeningHours(open="01:00", close="05:00")])],
    )
    second = slots_between(special, utc("2026-06-02T00:00"), utc("2026-06-03T00:00"))
    assert [slot.start.hour for slot in second] == [0, 1, 2, 3, 4]
    assert all(a.end <= b.start for a, b in itertools.pairwise(second))


def test_a_night_overlapping_the_next_days_early_hours_is_open_once() -> None:
    shop = resource(
        "Europe/Paris",
        "00:00",
        "00:00",
        60,
        weekly_schedule={
            "mon": [OpeningHours(open="22:00", close="04:00")],
            "tue": [OpeningHours(open="02:00", close="07:00"), OpeningHours(open="03:00", close="06:00")],
        },
    )
    monday, tuesday = date(2026, 6, 1), date(2026, 6, 2)
    window = slots_between(shop, datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 3, tzinfo=UTC))
    assert [slot.local_start.hour for slot in window] == [22, 23, 0, 1, 2, 3, 4, 5, 6]
    assert all(a.end == b.start for a, b in itertools.pairwise(window))
    assert day_slots(shop, monday) + day_slots(shop, tuesday) == window
