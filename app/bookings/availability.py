"""Slots of a resource: laid out on its local wall clock, turned into real (UTC) instants.

Rules (also in docs/api-conventions.md, "Bookings and time zones"):

* An interval runs from `open` to `close` on the local wall clock. A `close` at or before `open`
  means the next day (an overnight interval; `open` == `close` is 24 hours), so every pair of
  clock times is an interval. Hours belong to the date on which they open: an exception for a
  date replaces the intervals opening that date, not the previous night's that runs into it.
* The intervals opening on one date that overlap are merged into one run (open whenever one of
  them says so); intervals that only touch stay apart. A run that opens while the previous date's
  run is still open starts when that one closes.
* Slots start at each run's opening time and follow each other every `slot_minutes` on the local
  wall clock, as long as start + length <= closing time on that clock.
* A start that does not exist locally (the hour skipped when clocks go forward) is not offered.
* A start that happens twice (the hour repeated when clocks go back) is offered twice: two slots,
  each with its own UTC start, UTC offset and seats.
* A slot lasts exactly `slot_minutes` of real time. It is offered only if it ends no later than
  the real closing instant (the later one when the closing time is repeated; the moment the clocks
  jump when it is skipped), does not overlap the slot before it and starts no earlier than the
  real closing instant of the run before it.

So the resource is open exactly while its local clock shows a time inside an opening interval,
and no two slots ever overlap in real time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.errors import FieldCode, invalid_value
from app.storage.records import OpeningHours, ResourceRecord

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True)
class Slot:
    start: datetime  # UTC
    end: datetime  # UTC
    local_start: datetime  # in the resource's zone, with its offset
    local_end: datetime


def zone(name: str) -> ZoneInfo:
    """The IANA zone; ValueError for an unknown or malformed name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise invalid_value(FieldCode.UNKNOWN_TIME_ZONE, f"unknown IANA time zone {name!r}") from exc


def minutes_of(text: str) -> int:
    """'HH:MM' as minutes after midnight; '24:00' is the end of the day."""
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def hours_on(resource: ResourceRecord, day: date) -> list[OpeningHours]:
    """Opening hours of one local date: an exception for that date replaces the weekly schedule."""
    for exception in resource.exceptions:
        if exception.date == day.isoformat():
            return [] if exception.closed else exception.hours
    return resource.weekly_schedule.get(WEEKDAYS[day.weekday()], [])


def _wall(day: date, minutes: int) -> datetime:
    return datetime.combine(day, time()) + timedelta(minutes=minutes)


def _instants(wall: datetime, tz: ZoneInfo) -> list[datetime]:
    """The real instants at which the local clock shows `wall`: none (skipped), one, or two (repeated)."""
    found = []
    for fold in (0, 1):
        local = wall.replace(tzinfo=tz, fold=fold)
        instant = local.astimezone(UTC)
        if instant.astimezone(tz).replace(tzinfo=None) == wall and instant not in found:
            found.append(instant)
    return found


def _closing_instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """The last real instant up to which the local clock reads earlier than `wall`."""
    instants = _instants(wall, tz)
    if instants:
        return max(instants)
    # Skipped time: the clocks jump over `wall`, so the interval ends at the jump. zoneinfo resolves a
    # skipped time with either offset; the jump lies between the two readings: find it to the minute.
    early = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    late = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    early, late = min(early, late), max(early, late)
    after_offset = late.astimezone(tz).utcoffset()
    while late - early > timedelta(minutes=1):
        middle = early + (late - early) / 2
        if middle.astimezone(tz).utcoffset() == after_offset:
            late = middle
        else:
            early = middle
    return late


def _runs(resource: ResourceRecord, day: date) -> list[tuple[datetime, datetime]]:
    """Wall-clock (opening, closing) of the runs opening on `day`: its intervals in order, the
    overlapping ones merged."""
    runs: list[tuple[datetime, datetime]] = []
    for hours in sorted(hours_on(resource, day), key=lambda hours: minutes_of(hours.open)):
        opening, closing = minutes_of(hours.open), minutes_of(hours.close)
        if closing <= opening:  # overnight: closes on the next day
            closing += MINUTES_PER_DAY
        run = (_wall(day, opening), _wall(day, closing))
        if runs and run[0] < runs[-1][1]:
            runs[-1] = (runs[-1][0], max(runs[-1][1], run[1]))
        else:
            runs.append(run)
    return runs


def day_slots(resource: ResourceRecord, day: date) -> list[Slot]:
    """Every slot of the runs opening on one local date, in time order (an overnight run's go on into the next date)."""
    tz = zone(resource.timezone)
    length = timedelta(minutes=resource.slot_minutes)
    # The previous date's last run: a run of this date starts no earlier than it closes.
    earlier = _runs(resource, day - timedelta(days=1))
    covered = earlier[-1][1] if earlier else None
    slots: list[Slot] = []
    for opening, closing in _runs(resource, day):
        not_before = None
        if covered is not None:
            if closing <= covered:
                continue
            opening = max(opening, covered)
            not_before = _closing_instant(covered, tz)
        closes_at = _closing_instant(closing, tz)
        walls = (opening + length * index for index in range((closing - opening) // length))
        starts = sorted(instant for wall in walls for instant in _instants(wall, tz))
        previous_end: datetime | None = None
        for start in starts:
            end = start + length
            if end > closes_at or (previous_end is not None and start < previous_end):
                continue
            if not_before is not None and start < not_before:
                continue
            slots.append(Slot(start, end, start.astimezone(tz), end.astimezone(tz)))
            previous_end = end
        covered = closing
    return sorted(slots, key=lambda slot: slot.start)


# Slots are computed between these instants only: Python's calendar (years 1-9999) less the days
# at each end that a time zone's local date (up to 14 hours off), the two days before (whose runs
# may reach into it) and an overnight run's end need.
FIRST_INSTANT = datetime(1, 1, 5, tzinfo=UTC)
LAST_INSTANT = datetime(9999, 12, 28, tzinfo=UTC)


def window_end(start: datetime, days: int) -> datetime:
    """`start` plus `days` days, or the last instant with slots when that lies beyond it."""
    return start + timedelta(days=days) if start < LAST_INSTANT - timedelta(days=days) else max(start, LAST_INSTANT)


def slots_between(resource: ResourceRecord, start: datetime, end: datetime) -> list[Slot]:
    """Slots starting in [start, end), across as many local dates as the window touches."""
    start, end = max(start, FIRST_INSTANT), min(end, LAST_INSTANT)
    if start >= end:
        return []
    tz = zone(resource.timezone)
    first = start.astimezone(tz).date() - timedelta(days=1)
    last = end.astimezone(tz).date()
    slots: list[Slot] = []
    day = first
    while day <= last:
        slots.extend(slot for slot in day_slots(resource, day) if start <= slot.start < end)
        day += timedelta(days=1)
    return slots


def slot_at(resource: ResourceRecord, start: datetime) -> Slot | None:
    """The slot starting exactly at `start`, if the schedule has one."""
    return next(iter(slots_between(resource, start, start + timedelta(microseconds=1))), None)
