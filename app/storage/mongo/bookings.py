"""Resources and bookings on MongoDB, with the same guarantees as DynamoDB and no multi-document transaction.

Each guarantee is one conditional single-document write, so it is atomic on its own:
- seat: `slots` document, `$inc booked` + `$push holders` only if `booked < capacity` (upsert; a full
  slot makes the upsert collide on `_id`, which is the refusal);
- overlap: `subscriber_busy` document per subscriber and UTC day, `$push` of the interval only if no
  held interval overlaps it (`$not/$elemMatch` in the filter; upsert collision again is the refusal);
- idempotency: the key lives in the booking document under a unique index, so key and booking are
  written together;
- resource guard: `$inc bookings_revision` only if the resource's version is the one checked.

A booking is written first, hidden (`_claiming`), then the claims are taken; a refused claim gives
back the ones already taken and removes the hidden booking. A reschedule marks the booking `_moving`
first, a release marks it `_releasing`. These markers carry what is needed to finish or undo the
step, so `recover` (run at start-up) repairs a process that died half-way. Holders and intervals are
keyed by booking id, so giving them back is idempotent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError

from app.storage.base import (
    BookingsChanged,
    IdempotencyKey,
    IdempotencyKeyTaken,
    OverlappingBooking,
    Page,
    ResourceChanged,
    SlotFull,
    StorageError,
    StoredIdempotency,
    ValueTaken,
    missing_or_stale,
)
from app.storage.cursor import CursorCodec
from app.storage.mongo import codec, outbox
from app.storage.mongo.counters import MongoCounterRepository
from app.storage.mongo.paging import find_page
from app.storage.records import AuditEntry, BookingRecord, BookingStatus, ResourceRecord
from app.timeutil import as_utc, sortable

DAY_SCOPE, RESOURCE_DAY_SCOPE = "bookings.day", "bookings.resource"
CLAIMING, MOVING, RELEASING = "_claiming", "_moving", "_releasing"
VISIBLE: dict[str, Any] = {**outbox.LIVE, CLAIMING: {"$exists": False}}
LEDGER_RETENTION = timedelta(days=7)
OPEN = [status.value for status in BookingStatus if status.open]


def to_resource(document: dict[str, Any]) -> ResourceRecord:
    return codec.load(ResourceRecord, document, "id")


def booking_document(booking: BookingRecord) -> dict[str, Any]:
    """The booking, and its position in every list of bookings (`order`: start, then id)."""
    return {**codec.document(booking, "id"), "order": f"{sortable(booking.start)}#{booking.id}"}


def to_booking(document: dict[str, Any]) -> BookingRecord:
    return codec.load(BookingRecord, document, "id")


def _conditional_upsert(collection: Any, filter: dict[str, Any], update: dict[str, Any]) -> bool:
    """Apply `update` to the document `filter` matches, creating it when it does not exist; False
    when it exists and does not match (the duplicate key of the upsert is the refusal).

    The filter is not an equality on `_id` alone, so MongoDB does not retry the duplicate key of
    two upserts that both found no document: the first one can lose to a concurrent creation. The
    document exists after that, so a second attempt either matches it or is a true refusal.
    """
    for attempt in range(2):
        try:
            collection.update_one(filter, update, upsert=True)
            return True
        except DuplicateKeyError:
            if attempt:
                return False
    return False


def slot_id(resource_id: str, start: datetime) -> str:
    return f"{resource_id}#{sortable(start)}"


def _utc_days(start: datetime, end: datetime) -> list[str]:
    days, day = [], as_utc(start).date()
    last = (as_utc(end) - timedelta(microseconds=1)).date()
    while day <= last:
        days.append(day.isoformat())
        day += timedelta(days=1)
    return days


def busy_id(subscriber_uid: str, day: str) -> str:
    return f"{subscriber_uid}#{day}"


def ledger_expiry(day: str) -> datetime:
    """A day's busy document is kept a week after the day, then the TTL index removes it."""
    return datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(days=1) + LEDGER_RETENTION


def _window(start_from: datetime | None, start_to: datetime | None) -> dict[str, Any]:
    bounds: dict[str, Any] = {}
    if start_from:
        bounds["$gte"] = sortable(start_from)
    if start_to:
        bounds["$lt"] = sortable(start_to)
    return {"order": bounds} if bounds else {}


class MongoResourceRepository:
    collection_name = "resources"

    def __init__(self, db: Any, cursors: CursorCodec) -> None:
        self.db = db
        self.collection = db[self.collection_name]
        self.slots = db["slots"]
        self.cursors = cursors

    def create(self, resource: ResourceRecord, audit: AuditEntry) -> None:
        document = codec.document(resource, "id")
        document[outbox.PENDING] = [outbox.pending(audit)]
        try:
            self.collection.insert_one(document)
        except DuplicateKeyError:
            raise ValueTaken(f"resource {resource.id!r} already exists", attribute="id") from None
        outbox.flush(self.db, self.collection_name, resource.id)

    def get(self, resource_id: str) -> ResourceRecord | None:
        document = self.collection.find_one({"_id": resource_id, **outbox.LIVE})
        return to_resource(document) if document else None

    def list(self, *, limit: int, cursor: str | None = None) -> Page[ResourceRecord]:
        return find_page(
            self.collection,
            outbox.LIVE,
            to_resource,
            limit=limit,
            cursor=cursor,
            scope="resources",
            cursors=self.cursors,
        )

    def _guard(self, current: ResourceRecord) -> dict[str, Any]:
        return {
            "_id": current.id,
            "version": current.version,
            "bookings_revision": current.bookings_revision,
            **outbox.LIVE,
        }

    def _refusal(self, current: ResourceRecord) -> StorageError:
        stored = self.get(current.id)
        if stored is not None and stored.version == current.version:
            return BookingsChanged(f"bookings of resource {current.id!r} changed meanwhile")
        return missing_or_stale("resource", current.id, stored)

    def replace(self, current: ResourceRecord, updated: ResourceRecord, audit: AuditEntry) -> None:
        updated.version = current.version + 1
        updated.bookings_revision = current.bookings_revision
        changes = codec.dump(updated, exclude={"id"})
        result = self.collection.update_one(
            self._guard(current), {"$set": changes, "$push": {outbox.PENDING: outbox.pending(audit)}}
        )
        if result.matched_count == 0:
            raise self._refusal(current)
        outbox.flush(self.db, self.collection_name, current.id)

    def delete(self, current: ResourceRecord, audit: AuditEntry) -> None:
        result = self.collection.update_one(
            self._guard(current), {"$set": {outbox.DELETED: True}, "$push": {outbox.PENDING: outbox.pending(audit)}}
        )
        if result.matched_count == 0:
            raise self._refusal(current)
        outbox.finish_delete(self.db, self.collection_name, current.id)

    def seats_taken(self, resource_id: str, start: datetime, end: datetime) -> dict[datetime, int]:
        documents = self.slots.find(
            {"resource_id": resource_id, "start": {"$gte": start, "$lt": end}, "booked": {"$gt": 0}}
        )
        return {as_utc(document["start"]): int(document["booked"]) for document in documents}


class MongoBookingRepository:
    collection_name = "bookings"

    def __init__(self, db: Any, cursors: CursorCodec) -> None:
        self.db = db
        self.collection = db[self.collection_name]
        self.resources = db["resources"]
        self.slots = db["slots"]
        self.busy = db["subscriber_busy"]
        self.counters = MongoCounterRepository(db)
        self.cursors = cursors

    # --- single-document claims ----------------------------------------------------------------------

    def _take_seat(self, booking: BookingRecord, capacity: int) -> bool:
        return _conditional_upsert(
            self.slots,
            {"_id": slot_id(booking.resource_id, booking.start), "booked": {"$lt": capacity}},
            {
                "$inc": {"booked": 1},
                "$push": {"holders": booking.id},
                "$setOnInsert": {"resource_id": booking.resource_id, "start": booking.start},
            },
        )

    def _free_seat(self, booking_id: str, resource_id: str, start: datetime) -> None:
        self.slots.update_one(
            {"_id": slot_id(resource_id, start), "holders": booking_id},
            {"$pull": {"holders": booking_id}, "$inc": {"booked": -1}},
        )

    def _claim_time(self, booking: BookingRecord) -> bool:
        """Adds the interval to each UTC day it touches, unless one of them holds an overlapping one."""
        entry = {"booking_id": booking.id, "start": booking.start, "end": booking.end}
        overlapping = {
            "$elemMatch": {
                "start": {"$lt": booking.end},
                "end": {"$gt": booking.start},
                "booking_id": {"$ne": booking.id},
            }
        }
        claimed: list[str] = []
        for day in _utc_days(booking.start, booking.end):
            if not _conditional_upsert(
                self.busy,
                {"_id": busy_id(booking.subscriber_uid, day), "intervals": {"$not": overlapping}},
                {"$push": {"intervals": entry}, "$setOnInsert": {"expires_at": ledger_expiry(day)}},
            ):
                for done in claimed:
                    self._pull_interval(booking.subscriber_uid, booking.id, booking.start, [done])
                return False
            claimed.append(day)
        return True

    def _pull_interval(self, subscriber_uid: str, booking_id: str, start: datetime, days: list[str]) -> None:
        for day in days:
            self.busy.update_one(
                {"_id": busy_id(subscriber_uid, day)},
                {"$pull": {"intervals": {"booking_id": booking_id, "start": start}}},
            )

    def _release_time(self, subscriber_uid: str, booking_id: str, start: datetime, end: datetime) -> None:
        self._pull_interval(subscriber_uid, booking_id, start, _utc_days(start, end))

    def _count(self, resource_id: str, local_date: str, delta: int) -> None:
        self.counters.increment(DAY_SCOPE, {local_date: delta})
        self.counters.increment(RESOURCE_DAY_SCOPE, {f"{resource_id}:{local_date}": delta})

    def _guard_resource(self, resource: ResourceRecord) -> bool:
        guarded = self.resources.find_one_and_update(
            {"_id": resource.id, "version": resource.version, "active": True, **outbox.LIVE},
            {"$inc": {"bookings_revision": 1}},
        )
        return guarded is not None

    # --- writes ----------------------------------------------------------------------------------------

    def create(
        self,
        booking: BookingRecord,
        audit: AuditEntry,
        *,
        resource: ResourceRecord,
        idempotency: IdempotencyKey | None = None,
    ) -> None:
        document = booking_document(booking)
        document[CLAIMING] = booking.created_at
        if idempotency:
            document["idempotency"] = {
                "key": idempotency.key,
                "request_hash": idempotency.request_hash,
                "expires_at": idempotency.expires_at,
            }
        self._insert_hidden(document, booking, idempotency)
        # The hidden booking exists before the resource guard, so a schedule change that passes the
        # guard's revision check always sees it (see `future_confirmed_for_resource`).
        refusal: StorageError | None = None
        if not self._guard_resource(resource):
            refusal = ResourceChanged(f"resource {resource.id!r} changed meanwhile")
        elif not self._claim_time(booking):
            refusal = OverlappingBooking(
                f"subscriber {booking.subscriber_uid!r} already holds a confirmed booking overlapping this time",
            )
        elif not self._take_seat(booking, resource.capacity):
            self._release_time(booking.subscriber_uid, booking.id, booking.start, booking.end)
            refusal = SlotFull("no seat left in this slot")
        if refusal:
            self.collection.delete_one({"_id": booking.id, CLAIMING: {"$exists": True}})
            raise refusal
        self.collection.update_one(
            {"_id": booking.id}, {"$unset": {CLAIMING: ""}, "$push": {outbox.PENDING: outbox.pending(audit)}}
        )
        self._count(booking.resource_id, booking.local_date, +1)
        outbox.flush(self.db, self.collection_name, booking.id)

    def _insert_hidden(
        self, document: dict[str, Any], booking: BookingRecord, idempotency: IdempotencyKey | None
    ) -> None:
        for _ in range(2):
            try:
                self.collection.insert_one(document)
                return
            except DuplicateKeyError:
                if idempotency is None or self.collection.find_one({"_id": booking.id}) is not None:
                    raise ValueTaken(f"booking {booking.id!r} already exists", attribute="id") from None
                # The key's unique index keeps it until it is removed: an expired key is released, once.
                released = self.collection.update_one(
                    {"idempotency.key": idempotency.key, "idempotency.expires_at": {"$lt": booking.created_at}},
                    {"$unset": {"idempotency": ""}},
                )
                if released.modified_count == 0:
                    raise IdempotencyKeyTaken("this Idempotency-Key was already used") from None
        raise IdempotencyKeyTaken("this Idempotency-Key was already used")

    def _stale(self, current: BookingRecord) -> StorageError:
        return missing_or_stale("booking", current.id, self.get(current.id))

    def _changes(self, updated: BookingRecord) -> dict[str, Any]:
        document = booking_document(updated)
        document.pop("_id")
        return document

    def change_status(self, current: BookingRecord, updated: BookingRecord, audit: AuditEntry) -> None:
        updated.version = current.version + 1
        release = current.status.release_to(updated.status)
        changes = self._changes(updated)
        if release.anything:
            changes[RELEASING] = {
                "start": current.start,
                "end": current.end,
                "free_time": release.time,
                "free_seat": release.seat,
                "uncount": current.local_date if release.count else None,
            }
        result = self.collection.update_one(
            {"_id": current.id, "version": current.version, MOVING: {"$exists": False}, **VISIBLE},
            {"$set": changes, "$push": {outbox.PENDING: outbox.pending(audit)}},
        )
        if result.matched_count == 0:
            raise self._stale(current)
        if release.anything:
            self._finish_release(current.id)
        outbox.flush(self.db, self.collection_name, current.id)

    def _finish_release(self, booking_id: str) -> None:
        """Gives back what the `_releasing` marker lists (time, seat, counters), then drops the marker."""
        document = self.collection.find_one({"_id": booking_id})
        release = (document or {}).get(RELEASING)
        if not document or not release:
            return
        start, end = as_utc(release["start"]), as_utc(release["end"])
        if release.get("free_time", True):  # markers written before the flag always freed the time
            self._release_time(document["subscriber_uid"], booking_id, start, end)
        if release.get("free_seat"):
            self._free_seat(booking_id, document["resource_id"], start)
        if release.get("uncount"):
            self._count(document["resource_id"], release["uncount"], -1)
        if release.get("count"):
            self._count(document["resource_id"], release["count"], +1)
        self.collection.update_one({"_id": booking_id}, {"$unset": {RELEASING: ""}})

    def reschedule(
        self, current: BookingRecord, updated: BookingRecord, audit: AuditEntry, *, resource: ResourceRecord
    ) -> None:
        updated.version = current.version + 1
        marked = self.collection.find_one_and_update(
            {
                "_id": current.id,
                "version": current.version,
                "status": {"$in": OPEN},
                MOVING: {"$exists": False},
                RELEASING: {"$exists": False},
                **VISIBLE,
            },
            {"$set": {MOVING: {"start": updated.start, "end": updated.end, "at": updated.updated_at}}},
        )
        if marked is None:
            raise self._stale(current)
        refusal: StorageError | None = None
        if not self._guard_resource(resource):
            refusal = ResourceChanged(f"resource {resource.id!r} changed meanwhile")
        elif not self._claim_time(updated):
            refusal = OverlappingBooking(
                f"subscriber {updated.subscriber_uid!r} already holds a confirmed booking overlapping this time",
            )
        elif not self._take_seat(updated, resource.capacity):
            self._release_time(updated.subscriber_uid, updated.id, updated.start, updated.end)
            refusal = SlotFull("no seat left in the new slot")
        if refusal:
            self.collection.update_one({"_id": current.id}, {"$unset": {MOVING: ""}})
            raise refusal
        changes = self._changes(updated)
        day_moved = updated.local_date != current.local_date
        changes[RELEASING] = {
            "start": current.start,
            "end": current.end,
            "free_time": True,
            "free_seat": True,
            "uncount": current.local_date if day_moved else None,
            "count": updated.local_date if day_moved else None,
        }
        self.collection.update_one(
            {"_id": current.id},
            {"$set": changes, "$unset": {MOVING: ""}, "$push": {outbox.PENDING: outbox.pending(audit)}},
        )
        self._finish_release(current.id)
        outbox.flush(self.db, self.collection_name, current.id)

    def recover(self, *, older_than: datetime) -> int:
        """Undo or finish booking writes interrupted before `older_than`; returns how many needed it."""
        repaired = 0
        for document in self.collection.find({CLAIMING: {"$lt": older_than}}):
            booking = to_booking(document)
            self._free_seat(booking.id, booking.resource_id, booking.start)
            self._release_time(booking.subscriber_uid, booking.id, booking.start, booking.end)
            self.collection.delete_one({"_id": booking.id, CLAIMING: {"$exists": True}})
            repaired += 1
        for document in self.collection.find({f"{MOVING}.at": {"$lt": older_than}}):
            target = document[MOVING]
            start, end = as_utc(target["start"]), as_utc(target["end"])
            self._free_seat(document["_id"], document["resource_id"], start)
            self._release_time(document["subscriber_uid"], document["_id"], start, end)
            self.collection.update_one({"_id": document["_id"]}, {"$unset": {MOVING: ""}})
            repaired += 1
        for document in self.collection.find({RELEASING: {"$exists": True}, "updated_at": {"$lt": older_than}}):
            self._finish_release(document["_id"])
            repaired += 1
        return repaired

    # --- reads -----------------------------------------------------------------------------------------

    def get(self, booking_id: str) -> BookingRecord | None:
        document = self.collection.find_one({"_id": booking_id, **VISIBLE})
        return to_booking(document) if document else None

    def find_idempotency(self, key: str, now: datetime) -> StoredIdempotency | None:
        document = self.collection.find_one(
            {"idempotency.key": key, "idempotency.expires_at": {"$gte": now}}, {"idempotency": 1, CLAIMING: 1}
        )
        if document is None:
            return None
        booking_id = None if CLAIMING in document else document["_id"]
        return StoredIdempotency(request_hash=document["idempotency"]["request_hash"], booking_id=booking_id)

    def _page(self, query: dict[str, Any], scope: str, limit: int, cursor: str | None) -> Page[BookingRecord]:
        return find_page(
            self.collection,
            {**query, **VISIBLE},
            to_booking,
            limit=limit,
            cursor=cursor,
            scope=scope,
            cursors=self.cursors,
            order_field="order",
        )

    @staticmethod
    def _scope(name: str, start_from: datetime | None, start_to: datetime | None) -> str:
        return f"{name}#{sortable(start_from) if start_from else ''}#{sortable(start_to) if start_to else ''}"

    def list_for_resource(
        self,
        resource_id: str,
        *,
        start_from: datetime | None,
        start_to: datetime | None,
        limit: int,
        cursor: str | None = None,
    ) -> Page[BookingRecord]:
        query = {"resource_id": resource_id, **_window(start_from, start_to)}
        return self._page(query, self._scope(f"RESBOOKINGS#{resource_id}", start_from, start_to), limit, cursor)

    def list_for_subscriber(
        self,
        subscriber_uid: str,
        *,
        start_from: datetime | None,
        start_to: datetime | None,
        limit: int,
        cursor: str | None = None,
    ) -> Page[BookingRecord]:
        query = {"subscriber_uid": subscriber_uid, **_window(start_from, start_to)}
        return self._page(query, self._scope(f"SUBBOOKINGS#{subscriber_uid}", start_from, start_to), limit, cursor)

    def list_by_status(
        self, status: BookingStatus, *, start_from: datetime, start_to: datetime, limit: int, cursor: str | None = None
    ) -> Page[BookingRecord]:
        query = {"status": status.value, **_window(start_from, start_to)}
        return self._page(query, self._scope(f"BOOKSTATUS#{status.value}", start_from, start_to), limit, cursor)

    def future_confirmed_for_resource(self, resource_id: str, now: datetime) -> list[BookingRecord]:
        """Includes bookings still being made or moved: a schedule check must not miss one in flight."""
        documents = self.collection.find(
            {
                "resource_id": resource_id,
                "status": {"$in": OPEN},
                "$or": [{"start": {"$gt": now}}, {f"{MOVING}.start": {"$gt": now}}],
                **outbox.LIVE,
            }
        ).sort("order", 1)
        found = []
        for document in documents:
            booking = to_booking(document)
            if booking.start > now:
                found.append(booking)
            if document.get(MOVING):
                target = document[MOVING]
                found.append(
                    booking.model_copy(update={"start": as_utc(target["start"]), "end": as_utc(target["end"])})
                )
        return found

    def has_future_confirmed(self, subscriber_uid: str, now: datetime) -> bool:
        query = {"subscriber_uid": subscriber_uid, "status": {"$in": OPEN}, "start": {"$gt": now}}
        return self.collection.find_one({**query, **outbox.LIVE}, {"_id": 1}) is not None
