"""Booking rules: resources and their schedules, slots, bookings and their life cycle.

Capacity, overlap and idempotency are enforced by the store in one atomic step per change (see
`BookingRepository`); this service checks everything that can be checked from what it reads, and
turns the store's refusals into answers naming the field.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from app.audit import audit_entry
from app.bookings.availability import Slot, slot_at, slots_between, window_end
from app.bookings.schemas import (
    BookingCreate,
    BookingReschedule,
    OpeningHoursIn,
    ResourceCreate,
    ResourceUpdate,
    ScheduleExceptionIn,
    Weekday,
    opening_hours,
)
from app.concurrency import Versions, etag
from app.config import Settings
from app.errors import ConflictError, FieldCode, InvalidInput, NotFoundError, PreconditionFailedError, field_conflict
from app.storage.base import (
    BookingsChanged,
    IdempotencyKey,
    IdempotencyKeyTaken,
    OverlappingBooking,
    Page,
    ResourceChanged,
    SlotFull,
    Store,
    ValueTaken,
)
from app.storage.records import (
    AuditEntry,
    BookingRecord,
    BookingStatus,
    OpeningHours,
    ResourceRecord,
    ScheduleException,
)
from app.timeutil import as_utc, utcnow

SubscriberStatusLookup = Callable[[str], str | None]
"""The subscriber's status (e.g. `ACTIVE`, `SUSPENDED`), or None if there is no such subscriber."""

BOOKABLE_STATUS = "ACTIVE"
MAX_AVAILABILITY_DAYS = 31  # availability is computed day by day, in one response
MAX_DAILY_COUNTS = 31
IDEMPOTENCY_TTL = timedelta(hours=24)
AFFECTED_LISTED = 100  # a refused or forced change lists at most this many bookings
_ATTEMPTS = 3
_SCHEDULE_FIELDS = ("timezone", "slot_minutes", "weekly_schedule", "exceptions")


@dataclass(frozen=True)
class SlotAvailability:
    slot: Slot
    capacity: int
    remaining: int


@dataclass(frozen=True)
class ResourceChangeResult:
    resource: ResourceRecord
    outside_schedule: list[BookingRecord]
    over_capacity: list[BookingRecord]


def _exceptions(items: list[ScheduleExceptionIn]) -> list[ScheduleException]:
    return [
        ScheduleException(date=item.date.isoformat(), closed=item.closed, hours=opening_hours(item.hours))
        for item in items
    ]


def _weekly(schedule: Mapping[Weekday, list[OpeningHoursIn]]) -> dict[str, list[OpeningHours]]:
    return {day: opening_hours(hours) for day, hours in schedule.items() if hours}


def request_fingerprint(body: BookingCreate) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class BookingService:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        subscriber_status: SubscriberStatusLookup,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.settings = settings
        self.subscriber_status = subscriber_status
        self.clock = clock

    # --- resources ------------------------------------------------------------------------------------

    def create_resource(self, actor: str, body: ResourceCreate) -> ResourceRecord:
        now = self.clock()
        resource = ResourceRecord(
            id=uuid.uuid4().hex,
            name=body.name,
            kind=body.kind,
            timezone=body.timezone,
            slot_minutes=body.slot_minutes,
            capacity=body.capacity,
            weekly_schedule=_weekly(body.weekly_schedule),
            exceptions=_exceptions(body.exceptions),
            active=body.active,
            created_by=actor,
            created_at=now,
            updated_at=now,
        )
        try:
            self.store.resources.create(resource, self._audit(actor, "resource.create", None, resource))
        except ValueTaken as taken:
            raise field_conflict("body.id", str(taken), FieldCode.ALREADY_EXISTS) from None
        return resource

    def get_resource(self, resource_id: str) -> ResourceRecord:
        resource = self.store.resources.get(resource_id)
        if resource is None:
            raise NotFoundError(f"resource {resource_id!r} not found")
        return resource

    def list_resources(self, *, limit: int, cursor: str | None) -> Page[ResourceRecord]:
        return self.store.resources.list(limit=limit, cursor=cursor)

    def update_resource(
        self, actor: str, resource_id: str, body: ResourceUpdate, *, force: bool, expected_versions: Versions | None
    ) -> ResourceChangeResult:
        values = body.model_dump(exclude_unset=True)
        for name, value in values.items():
            if value is None:
                raise InvalidInput(f"body.{name}", "may not be null", code=FieldCode.NULL_NOT_ALLOWED)
        for _ in range(_ATTEMPTS):
            current = self.get_resource(resource_id)
            if expected_versions is not None and current.version not in expected_versions:
                raise PreconditionFailedError(
                    f"resource is at version {current.version}; reload it and retry",
                    headers={"ETag": etag(current.version)},
                )
            changes: dict[str, Any] = {name: getattr(body, name) for name in values}
            if "weekly_schedule" in changes:
                changes["weekly_schedule"] = _weekly(changes["weekly_schedule"])
            if "exceptions" in changes:
                changes["exceptions"] = _exceptions(changes["exceptions"])
            updated = current.model_copy(update={**changes, "updated_at": self.clock()})
            outside, over = self._affected_by(current, updated)
            if (outside or over) and not force:
                raise ConflictError(
                    f"the change would leave {len(outside)} confirmed booking(s) outside the schedule and "
                    f"{len(over)} over capacity; cancel or move them first, or send force=true",
                    extra={
                        "bookings_outside_schedule": [_affected(b) for b in outside[:AFFECTED_LISTED]],
                        "bookings_over_capacity": [_affected(b) for b in over[:AFFECTED_LISTED]],
                    },
                )
            try:
                self.store.resources.replace(current, updated, self._audit(actor, "resource.update", current, updated))
            except BookingsChanged:
                continue  # a booking was made meanwhile: check again with it
            return ResourceChangeResult(updated, outside, over)
        raise ConflictError("bookings of this resource keep changing; try again")

    def _affected_by(
        self, current: ResourceRecord, updated: ResourceRecord
    ) -> tuple[list[BookingRecord], list[BookingRecord]]:
        """Confirmed future bookings the change would put outside the schedule or over capacity."""
        schedule_changed = any(getattr(current, name) != getattr(updated, name) for name in _SCHEDULE_FIELDS)
        if not schedule_changed and updated.capacity >= current.capacity:
            return [], []
        now = self.clock()
        bookings = self.store.bookings.future_confirmed_for_resource(current.id, now)
        outside: list[BookingRecord] = []
        if schedule_changed:
            for booking in bookings:
                slot = slot_at(updated, booking.start)
                if slot is None or slot.end != booking.end:
                    outside.append(booking)
        over: list[BookingRecord] = []
        if updated.capacity < current.capacity and bookings:
            seats = self.store.resources.seats_taken(current.id, now, max(b.start for b in bookings) + timedelta(1))
            full = {start for start, taken in seats.items() if taken > updated.capacity}
            over = [booking for booking in bookings if booking.start in full]
        return outside, over

    def delete_resource(self, actor: str, resource_id: str, *, expected_versions: Versions | None) -> None:
        for _ in range(_ATTEMPTS):
            current = self.get_resource(resource_id)
            if expected_versions is not None and current.version not in expected_versions:
                raise PreconditionFailedError(
                    f"resource is at version {current.version}; reload it and retry",
                    headers={"ETag": etag(current.version)},
                )
            future = self.store.bookings.future_confirmed_for_resource(resource_id, self.clock())
            if future:
                raise ConflictError(
                    f"the resource has {len(future)} confirmed future booking(s); cancel them first",
                    extra={"bookings": [_affected(b) for b in future[:AFFECTED_LISTED]]},
                )
            try:
                self.store.resources.delete(current, self._audit(actor, "resource.delete", current, None))
                return
            except BookingsChanged:
                continue
        raise ConflictError("bookings of this resource keep changing; try again")

    def availability(
        self, resource_id: str, start: datetime, days: int
    ) -> tuple[ResourceRecord, list[SlotAvailability]]:
        """Slots starting in [start, start + days)."""
        if not 1 <= days <= MAX_AVAILABILITY_DAYS:
            code = FieldCode.TOO_SMALL if days < 1 else FieldCode.TOO_LARGE
            raise InvalidInput("query.days", f"must be 1-{MAX_AVAILABILITY_DAYS}", code=code)
        start = as_utc(start)
        end = window_end(start, days)
        resource = self.get_resource(resource_id)
        now = self.clock()
        taken = self.store.resources.seats_taken(resource.id, start, end)
        result = []
        for slot in slots_between(resource, start, end):
            left = max(0, resource.capacity - taken.get(slot.start, 0))
            if slot.start <= now or not resource.active:
                left = 0
            result.append(SlotAvailability(slot, resource.capacity, left))
        return resource, result

    # --- bookings -------------------------------------------------------------------------------------

    def create_booking(
        self, actor: str, body: BookingCreate, idempotency_key: str | None
    ) -> tuple[BookingRecord, bool]:
        """The booking, and whether it is a replay of an earlier request with the same Idempotency-Key."""
        now = self.clock()
        claim: IdempotencyKey | None = None
        if idempotency_key is not None:
            scoped_key = f"{actor}:{idempotency_key}"  # keys of different users never collide
            fingerprint = request_fingerprint(body)
            replayed = self._replay(scoped_key, fingerprint, now)
            if replayed:
                return replayed, True
            claim = IdempotencyKey(key=scoped_key, request_hash=fingerprint, expires_at=now + IDEMPOTENCY_TTL)
        resource = self._bookable_resource(body.resource_id)
        self._check_subscriber(body.subscriber_uid)
        for _ in range(_ATTEMPTS):
            slot = self._slot(resource, body.start, body.end, now)
            booking = BookingRecord(
                id=uuid.uuid4().hex,
                resource_id=resource.id,
                subscriber_uid=body.subscriber_uid,
                start=slot.start,
                end=slot.end,
                local_date=slot.local_start.date().isoformat(),
                notes=body.notes or None,
                created_by=actor,
                created_at=now,
                updated_at=now,
            )
            try:
                self.store.bookings.create(
                    booking, self._audit(actor, "booking.create", None, booking), resource=resource, idempotency=claim
                )
                return booking, False
            except IdempotencyKeyTaken:
                assert claim is not None
                replayed = self._replay(claim.key, claim.request_hash, now)
                if replayed:
                    return replayed, True
                raise _in_progress() from None
            except SlotFull as exc:
                raise field_conflict("body.start", str(exc), FieldCode.SLOT_FULL) from None
            except OverlappingBooking as exc:
                raise field_conflict("body.subscriber_uid", str(exc), FieldCode.OVERLAPPING_BOOKING) from None
            except ResourceChanged:
                resource = self._bookable_resource(body.resource_id)  # changed meanwhile: check against it again
        raise ConflictError("the resource keeps changing; try again")

    def _replay(self, key: str, fingerprint: str, now: datetime) -> BookingRecord | None:
        stored = self.store.bookings.find_idempotency(key, now)
        if stored is None:
            return None
        if stored.request_hash != fingerprint:
            raise InvalidInput(
                "header.idempotency-key",
                "this Idempotency-Key was already used with a different request body; use a new key",
                code=FieldCode.IDEMPOTENCY_KEY_REUSED,
            )
        booking = self.store.bookings.get(stored.booking_id) if stored.booking_id else None
        if booking is None:
            raise _in_progress()
        return booking

    def _bookable_resource(self, resource_id: str) -> ResourceRecord:
        resource = self.store.resources.get(resource_id)
        if resource is None:
            raise field_conflict(
                "body.resource_id", f"resource {resource_id!r} does not exist", FieldCode.UNKNOWN_RESOURCE
            )
        if not resource.active:
            raise field_conflict(
                "body.resource_id", f"resource {resource_id!r} is not active", FieldCode.RESOURCE_INACTIVE
            )
        return resource

    def _check_subscriber(self, subscriber_uid: str) -> None:
        status = self.subscriber_status(subscriber_uid)
        if status is None:
            raise field_conflict(
                "body.subscriber_uid", f"subscriber {subscriber_uid!r} does not exist", FieldCode.UNKNOWN_SUBSCRIBER
            )
        if status != BOOKABLE_STATUS:
            raise field_conflict(
                "body.subscriber_uid",
                f"subscriber {subscriber_uid!r} is {status}; only {BOOKABLE_STATUS} subscribers can book",
                FieldCode.SUBSCRIBER_NOT_ACTIVE,
            )

    def _slot(self, resource: ResourceRecord, start: datetime, end: datetime | None, now: datetime) -> Slot:
        """The offered slot starting at `start`. Each refusal is a 409: whether a start is bookable
        depends on the clock and on the resource's schedule (state), not on the request's shape."""
        start = as_utc(start)
        if start <= now:
            raise field_conflict("body.start", "must be in the future", FieldCode.IN_PAST)
        slot = slot_at(resource, start)
        if slot is None:
            earlier = slots_between(resource, start - timedelta(minutes=resource.slot_minutes), start)
            if any(start < candidate.end for candidate in earlier):
                raise field_conflict(
                    "body.start",
                    f"not the start of a slot: slots are {resource.slot_minutes} minutes long from each opening time",
                    FieldCode.MISALIGNED_START,
                )
            raise field_conflict("body.start", "outside the resource's opening hours", FieldCode.OUTSIDE_SCHEDULE)
        if end is not None and as_utc(end) != slot.end:
            raise field_conflict(
                "body.end", f"a booking is one slot: end must be {slot.end.isoformat()}", FieldCode.END_MISMATCH
            )
        return slot

    def get_booking(self, booking_id: str) -> BookingRecord:
        booking = self.store.bookings.get(booking_id)
        if booking is None:
            raise NotFoundError(f"booking {booking_id!r} not found")
        return booking

    def list_bookings(
        self,
        *,
        resource_id: str | None,
        subscriber_uid: str | None,
        status: BookingStatus | None,
        start_from: datetime | None,
        start_to: datetime | None,
        limit: int,
        cursor: str | None,
    ) -> Page[BookingRecord]:
        given = [name for name, value in (("resource_id", resource_id), ("subscriber_uid", subscriber_uid)) if value]
        if status is not None:
            given.append("status")
        if len(given) != 1:
            raise InvalidInput(
                f"query.{given[1] if given else 'resource_id'}",
                "filter by exactly one of resource_id, subscriber_uid or status",
                code=FieldCode.EXACTLY_ONE_REQUIRED,
            )
        start_from = as_utc(start_from) if start_from else None
        start_to = as_utc(start_to) if start_to else None
        if start_from and start_to and start_to <= start_from:
            return Page([])  # no time in the window, so no booking starts in it
        if resource_id:
            return self.store.bookings.list_for_resource(
                resource_id, start_from=start_from, start_to=start_to, limit=limit, cursor=cursor
            )
        if subscriber_uid:
            return self.store.bookings.list_for_subscriber(
                subscriber_uid, start_from=start_from, start_to=start_to, limit=limit, cursor=cursor
            )
        assert status is not None
        if start_from is None or start_to is None:
            raise InvalidInput(
                f"query.{'from' if start_from is None else 'to'}", "required with status", FieldCode.MISSING
            )
        return self.store.bookings.list_by_status(
            status, start_from=start_from, start_to=start_to, limit=limit, cursor=cursor
        )

    def cancel(self, actor: str, booking_id: str, reason: str | None) -> BookingRecord:
        booking = self.get_booking(booking_id)
        now = self.clock()
        self._require_confirmed(booking, "cancelled")
        updated = booking.model_copy(
            update={
                "status": BookingStatus.CANCELLED,
                "cancelled_at": now,
                "cancel_reason": reason,
                "updated_at": now,
            }
        )
        return self._change_status(actor, "booking.cancel", booking, updated)

    def mark(self, actor: str, booking_id: str, status: BookingStatus) -> BookingRecord:
        """COMPLETED or NO_SHOW: only for a CONFIRMED booking whose slot has started."""
        booking = self.get_booking(booking_id)
        self._require_confirmed(booking, "marked " + status.value)
        now = self.clock()
        if booking.start > now:
            raise field_conflict("status", "the booking's slot has not started yet", FieldCode.NOT_STARTED)
        updated = booking.model_copy(update={"status": status, "updated_at": now})
        return self._change_status(actor, f"booking.{status.value.lower()}", booking, updated)

    def _change_status(self, actor: str, action: str, booking: BookingRecord, updated: BookingRecord) -> BookingRecord:
        self.store.bookings.change_status(booking, updated, self._audit(actor, action, booking, updated))
        return updated

    @staticmethod
    def _require_confirmed(booking: BookingRecord, verb: str) -> None:
        if not booking.status.open:
            raise field_conflict(
                "status",
                f"only a CONFIRMED booking can be {verb}; this one is {booking.status.value}",
                FieldCode.INVALID_TRANSITION,
            )

    def reschedule(self, actor: str, booking_id: str, body: BookingReschedule) -> BookingRecord:
        booking = self.get_booking(booking_id)
        self._require_confirmed(booking, "rescheduled")
        now = self.clock()
        if booking.start <= now:
            raise field_conflict("status", "the booking's slot has already started", FieldCode.ALREADY_STARTED)
        self._check_subscriber(booking.subscriber_uid)
        for _ in range(_ATTEMPTS):
            resource = self._bookable_resource(booking.resource_id)
            slot = self._slot(resource, body.start, body.end, now)
            if slot.start == booking.start:
                return booking  # already there: nothing to move
            updated = booking.model_copy(
                update={
                    "start": slot.start,
                    "end": slot.end,
                    "local_date": slot.local_start.date().isoformat(),
                    "updated_at": now,
                }
            )
            try:
                self.store.bookings.reschedule(
                    booking, updated, self._audit(actor, "booking.reschedule", booking, updated), resource=resource
                )
                return updated
            except SlotFull as exc:
                raise field_conflict("body.start", str(exc), FieldCode.SLOT_FULL) from None
            except OverlappingBooking as exc:
                raise field_conflict("body.start", str(exc), FieldCode.OVERLAPPING_BOOKING) from None
            except ResourceChanged:
                continue  # check the new slot against the resource as it is now
        raise ConflictError("the resource keeps changing; try again")

    def daily_counts(self, first_day: date, days: int, resource_id: str | None) -> dict[date, int]:
        if not 1 <= days <= MAX_DAILY_COUNTS:
            code = FieldCode.TOO_SMALL if days < 1 else FieldCode.TOO_LARGE
            raise InvalidInput("query.days", f"must be 1-{MAX_DAILY_COUNTS}", code=code)
        dates = [first_day + timedelta(days=offset) for offset in range(days)]
        if resource_id:
            keys = {f"{resource_id}:{day.isoformat()}": day for day in dates}
            counts = self.store.counters.get_keys("bookings.resource", list(keys))
        else:
            keys = {day.isoformat(): day for day in dates}
            counts = self.store.counters.get_keys("bookings.day", list(keys))
        return {keys[name]: count for name, count in counts.items()}

    # --- subscriber guard (called by the subscribers domain) ------------------------------------------

    def has_future_confirmed(self, subscriber_uid: str) -> bool:
        return self.store.bookings.has_future_confirmed(subscriber_uid, self.clock())

    def _audit(
        self,
        actor: str,
        action: str,
        before: ResourceRecord | BookingRecord | None,
        after: ResourceRecord | BookingRecord | None,
    ) -> AuditEntry:
        subject = after or before
        assert subject is not None
        hidden = {"bookings_revision"}
        return audit_entry(
            actor=actor,
            action=action,
            entity_type="resource" if isinstance(subject, ResourceRecord) else "booking",
            entity_id=subject.id,
            at=self.clock(),
            retention_days=self.settings.audit_retention_days,
            event_retention_days=self.settings.event_retention_days,
            before=before.model_dump(mode="json", exclude=hidden) if before else None,
            after=after.model_dump(mode="json", exclude=hidden) if after else None,
        )


def _affected(booking: BookingRecord) -> dict[str, str]:
    return {
        "id": booking.id,
        "subscriber_uid": booking.subscriber_uid,
        "start": booking.start.isoformat(),
        "end": booking.end.isoformat(),
    }


def _in_progress() -> ConflictError:
    return field_conflict(
        "header.idempotency-key",
        "a request with this Idempotency-Key is still being processed; retry shortly",
        FieldCode.IDEMPOTENCY_IN_PROGRESS,
    )
