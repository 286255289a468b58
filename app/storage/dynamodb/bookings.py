"""Resources and bookings on DynamoDB: every booking change is one TransactWriteItems.

A booking transaction holds, besides the booking item and its audit entry:
- the slot's seat count (`ADD booked`, conditional on `booked < capacity`);
- the resource's `bookings_revision` (`ADD`, conditional on the resource's version and active flag),
  so a concurrent schedule/capacity change and a booking can never both pass their checks;
- the subscriber's busy ledger for each UTC day the booking touches (the confirmed intervals of that
  day, conditional on the ledger's version, which the overlap check read);
- a status-index item, the `bookings.day` / `bookings.resource` counters and the idempotency key.
At most 2 ledger days per booking, so a reschedule needs ~15 actions, far below the limit of 100.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from app.storage.base import (
    BookingsChanged,
    CursorRejected,
    IdempotencyKey,
    IdempotencyKeyTaken,
    OverlappingBooking,
    Page,
    ResourceChanged,
    SlotFull,
    StorageError,
    StoredIdempotency,
    StoreUnavailable,
    ValueTaken,
    missing_or_stale,
)
from app.storage.dynamodb.audit import audit_puts
from app.storage.dynamodb.codec import dump, load
from app.storage.dynamodb.counters import counter_updates
from app.storage.dynamodb.table import DynamoTable, deserialize, key, serialize, serialize_values
from app.storage.records import AuditEntry, BookingRecord, BookingStatus, ResourceRecord
from app.timeutil import epoch_seconds, sortable

DAY_SCOPE, RESOURCE_DAY_SCOPE = "bookings.day", "bookings.resource"
OPEN_VALUES = {f":open{n}": status.value for n, status in enumerate(BookingStatus) if status.open}
LEDGER_RETENTION = timedelta(days=7)
# Optimistic retries of a transaction whose only conflict was a subscriber's day ledger moving under
# it: each round of racers has a winner, so the attempts cover that many concurrent bookings of one
# subscriber's day; a jittered pause spreads the racers out (8 of them exhausted 6 bare attempts).
_LEDGER_ATTEMPTS = 12
_LEDGER_PAUSE_SECONDS = 0.002


# --- keys and items ---------------------------------------------------------------------------------


def resource_key(resource_id: str) -> tuple[str, str]:
    return f"RESOURCE#{resource_id}", "RESOURCE"


def slot_key(resource_id: str, start: datetime) -> tuple[str, str]:
    return f"RESOURCE#{resource_id}", f"SLOT#{sortable(start)}"


def booking_key(booking_id: str) -> tuple[str, str]:
    return f"BOOKING#{booking_id}", "BOOKING"


def order_of(booking: BookingRecord) -> str:
    return f"{sortable(booking.start)}#{booking.id}"


def status_key(booking: BookingRecord) -> tuple[str, str]:
    """Status index: one partition per status and UTC month of the start (a natural shard)."""
    return f"BOOKSTATUS#{booking.status.value}#{sortable(booking.start)[:7]}", order_of(booking)


def ledger_key(subscriber_uid: str, day: str) -> tuple[str, str]:
    return f"SUBBUSY#{subscriber_uid}", day


def ledger_expiry(day: str) -> datetime:
    """A day's busy ledger is kept a week after the day, then DynamoDB's TTL removes it."""
    return datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(days=1) + LEDGER_RETENTION


def idempotency_key(key_text: str) -> tuple[str, str]:
    return f"IDEMPOTENCY#{key_text}", "IDEMPOTENCY"


def idempotency_item(idempotency: IdempotencyKey, booking_id: str) -> dict[str, Any]:
    pk, sk = idempotency_key(idempotency.key)
    return {
        "PK": pk,
        "SK": sk,
        "type": "idempotency_key",
        "request_hash": idempotency.request_hash,
        "booking_id": booking_id,
        "expires_at": idempotency.expires_at.isoformat(),
        "ttl": epoch_seconds(idempotency.expires_at),
    }


def ledger_item(subscriber_uid: str, day: str, intervals: list[dict[str, str]], version: int) -> dict[str, Any]:
    """A subscriber's busy ledger of one UTC day: the intervals of their confirmed bookings."""
    pk, sk = ledger_key(subscriber_uid, day)
    expires = epoch_seconds(ledger_expiry(day))
    return {"PK": pk, "SK": sk, "type": "busy_ledger", "intervals": intervals, "version": version, "ttl": expires}


def resource_item(resource: ResourceRecord) -> dict[str, Any]:
    pk, sk = resource_key(resource.id)
    return {"PK": pk, "SK": sk, "GSI1PK": "RESOURCES", "GSI1SK": resource.id, "type": "resource", **dump(resource)}


def booking_item(booking: BookingRecord) -> dict[str, Any]:
    pk, sk = booking_key(booking.id)
    order = order_of(booking)
    return {
        "PK": pk,
        "SK": sk,
        "GSI1PK": f"RESBOOKINGS#{booking.resource_id}",
        "GSI1SK": order,
        "GSI2PK": f"SUBBOOKINGS#{booking.subscriber_uid}",
        "GSI2SK": order,
        "type": "booking",
        **dump(booking),
    }


def status_item(booking: BookingRecord) -> dict[str, Any]:
    pk, sk = status_key(booking)
    return {"PK": pk, "SK": sk, "type": "booking_status", **dump(booking)}


def _page(items: Iterable[dict[str, Any]], next_cursor: str | None = None) -> Page[BookingRecord]:
    return Page([load(BookingRecord, item) for item in items], next_cursor)


def utc_days(start: datetime, end: datetime) -> list[str]:
    """UTC dates that [start, end) touches."""
    days, day = [], start.astimezone(UTC).date()
    last = (end.astimezone(UTC) - timedelta(microseconds=1)).date()
    while day <= last:
        days.append(day.isoformat())
        day += timedelta(days=1)
    return days


def _interval(booking: BookingRecord) -> dict[str, str]:
    return {"booking_id": booking.id, "start": sortable(booking.start), "end": sortable(booking.end)}


def _overlaps(entry: dict[str, str], booking: BookingRecord) -> bool:
    return entry["start"] < sortable(booking.end) and entry["end"] > sortable(booking.start)


# --- transactions -------------------------------------------------------------------------------------


class _LedgerMoved(StorageError):
    """A busy ledger changed between its read and the transaction: read it again and retry."""


class _Transaction:
    """Actions tagged by what their condition protects, so a cancellation names the reason."""

    # When several conditions fail at once, the first reason in this order is reported. An overlap is
    # found before the seat on both backends, so a subscriber's double booking always reads as overlap.
    PRIORITY = ("idempotency", "booking", "resource", "ledger", "slot", "release")

    def __init__(self, errors: dict[str, Callable[[], StorageError]]) -> None:
        self.actions: list[dict[str, Any]] = []
        self.tags: list[str | None] = []
        self.errors = errors

    def add(self, action: dict[str, Any], tag: str | None = None) -> None:
        self.actions.append(action)
        self.tags.append(tag)

    def cancelled(self, codes: list[str]) -> StorageError:
        failed = {tag for tag, code in zip(self.tags, codes, strict=False) if code == "ConditionalCheckFailed"}
        for tag in self.PRIORITY:
            if tag in failed and tag in self.errors:
                return self.errors[tag]()
        return StoreUnavailable(f"booking transaction cancelled: {codes}")


def _put(item: dict[str, Any], condition: str | None = None, values: dict[str, Any] | None = None) -> dict[str, Any]:
    action: dict[str, Any] = {"Item": serialize(item)}
    if condition:
        action["ConditionExpression"] = condition
    if values:
        action["ExpressionAttributeValues"] = serialize_values(values)
    return {"Put": action}


def _versioned_put(item: dict[str, Any], version: int) -> dict[str, Any]:
    return {
        "Put": {
            "Item": serialize(item),
            "ConditionExpression": "#v = :v",
            "ExpressionAttributeNames": {"#v": "version"},
            "ExpressionAttributeValues": serialize_values({":v": version}),
        }
    }


def _take_seat(booking: BookingRecord, capacity: int) -> dict[str, Any]:
    return {
        "Update": {
            "Key": key(*slot_key(booking.resource_id, booking.start)),
            "UpdateExpression": "ADD booked :one SET #start = :start, resource_id = :rid, #t = :t",
            "ConditionExpression": "attribute_not_exists(booked) OR booked < :capacity",
            "ExpressionAttributeNames": {"#start": "start", "#t": "type"},
            "ExpressionAttributeValues": serialize_values(
                {
                    ":one": 1,
                    ":start": sortable(booking.start),
                    ":rid": booking.resource_id,
                    ":t": "slot",
                    ":capacity": capacity,
                }
            ),
        }
    }


def _free_seat(booking: BookingRecord) -> dict[str, Any]:
    return {
        "Update": {
            "Key": key(*slot_key(booking.resource_id, booking.start)),
            "UpdateExpression": "ADD booked :minus",
            "ConditionExpression": "booked > :zero",
            "ExpressionAttributeValues": serialize_values({":minus": -1, ":zero": 0}),
        }
    }


def _guard_resource(resource: ResourceRecord) -> dict[str, Any]:
    return {
        "Update": {
            "Key": key(*resource_key(resource.id)),
            "UpdateExpression": "ADD bookings_revision :one",
            "ConditionExpression": "#v = :v AND active = :true",
            "ExpressionAttributeNames": {"#v": "version"},
            "ExpressionAttributeValues": serialize_values({":one": 1, ":v": resource.version, ":true": True}),
        }
    }


def _counter_changes(booking: BookingRecord, delta: int) -> list[dict[str, Any]]:
    return counter_updates(DAY_SCOPE, {booking.local_date: delta}) + counter_updates(
        RESOURCE_DAY_SCOPE, {f"{booking.resource_id}:{booking.local_date}": delta}
    )


def _sort_range(start_from: datetime | None, start_to: datetime | None) -> tuple[str | None, dict[str, Any]]:
    """Key condition on `<start>#<id>` sort keys for starts in [start_from, start_to)."""
    if start_from and start_to:
        return "#sk BETWEEN :from AND :to", {":from": sortable(start_from), ":to": sortable(start_to)}
    if start_from:
        return "#sk >= :from", {":from": sortable(start_from)}
    if start_to:
        return "#sk < :to", {":to": sortable(start_to)}
    return None, {}


# Month partitions one page of a status list reads at most: a long window costs more pages, not a
# longer request.
STATUS_MONTHS_PER_PAGE = 12
_MONTH = re.compile(r"\d{4}-\d{2}")


def _month(moment: datetime) -> str:
    """`YYYY-MM` of a UTC time: the month partition of a booking starting then."""
    utc = moment.astimezone(UTC)
    return f"{utc.year:04d}-{utc.month:02d}"


def _months_from(first: str, last: str) -> Iterator[str]:
    year, month = int(first[:4]), int(first[5:7])
    while (year, month) <= (int(last[:4]), int(last[5:7])):  # as numbers: 9999-12 is followed by 10000-01
        yield f"{year:04d}-{month:02d}"
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


# --- repositories -------------------------------------------------------------------------------------


class DynamoResourceRepository:
    def __init__(self, table: DynamoTable) -> None:
        self.table = table

    def create(self, resource: ResourceRecord, audit: AuditEntry) -> None:
        self.table.transact(
            [_put(resource_item(resource), "attribute_not_exists(PK)"), *audit_puts(audit)],
            on_cancel=lambda codes: ValueTaken(f"resource {resource.id!r} already exists", attribute="id"),
        )

    def get(self, resource_id: str) -> ResourceRecord | None:
        item = self.table.get(*resource_key(resource_id))
        return load(ResourceRecord, item) if item else None

    def list(self, *, limit: int, cursor: str | None = None) -> Page[ResourceRecord]:
        items, next_cursor = self.table.query_page(
            scope="resources", partition="RESOURCES", index="GSI1", limit=limit, cursor=cursor
        )
        return Page([load(ResourceRecord, item) for item in items], next_cursor)

    def _guarded(self, current: ResourceRecord, write: dict[str, Any], audit: AuditEntry) -> None:
        body = next(iter(write.values()))
        body["ConditionExpression"] = "#v = :v AND bookings_revision = :r"
        body["ExpressionAttributeNames"] = {"#v": "version"}
        body["ExpressionAttributeValues"] = serialize_values({":v": current.version, ":r": current.bookings_revision})

        def cancelled(codes: list[str]) -> StorageError:
            stored = self.get(current.id)
            if stored is not None and stored.version == current.version:
                return BookingsChanged(f"bookings of resource {current.id!r} changed meanwhile")
            return missing_or_stale("resource", current.id, stored)

        self.table.transact([write, *audit_puts(audit)], on_cancel=cancelled)

    def replace(self, current: ResourceRecord, updated: ResourceRecord, audit: AuditEntry) -> None:
        updated.version = current.version + 1
        updated.bookings_revision = current.bookings_revision
        self._guarded(current, {"Put": {"Item": serialize(resource_item(updated))}}, audit)

    def delete(self, current: ResourceRecord, audit: AuditEntry) -> None:
        self._guarded(current, {"Delete": {"Key": key(*resource_key(current.id))}}, audit)

    def seats_taken(self, resource_id: str, start: datetime, end: datetime) -> dict[datetime, int]:
        pk = resource_key(resource_id)[0]
        taken: dict[datetime, int] = {}
        for item in self.table.query_all(
            partition=pk,
            sort_condition="#sk BETWEEN :from AND :to",
            values={":from": f"SLOT#{sortable(start)}", ":to": f"SLOT#{sortable(end)}"},
        ):
            slot_start = datetime.fromisoformat(item["start"])
            if start <= slot_start < end and int(item.get("booked", 0)) > 0:
                taken[slot_start] = int(item["booked"])
        return taken


class DynamoBookingRepository:
    def __init__(self, table: DynamoTable) -> None:
        self.table = table

    # --- the subscriber's busy ledger ---------------------------------------------------------------

    def _ledger_writes(
        self, subscriber_uid: str, *, add: BookingRecord | None = None, remove: BookingRecord | None = None
    ) -> list[dict[str, Any]]:
        """Conditional puts of the ledger days touched; OverlappingBooking if `add` overlaps a held interval."""
        add_days = utc_days(add.start, add.end) if add else []
        remove_days = utc_days(remove.start, remove.end) if remove else []
        days = sorted(set(add_days) | set(remove_days))
        stored = {item["SK"]: item for item in self.table.get_many(ledger_key(subscriber_uid, day) for day in days)}
        writes = []
        for day in days:
            item = stored.get(day)
            intervals: list[dict[str, str]] = list(item["intervals"]) if item else []
            if remove:
                gone = {"booking_id": remove.id, "start": sortable(remove.start)}
                intervals = [i for i in intervals if {k: i[k] for k in gone} != gone]
            if add and day in add_days:
                if any(_overlaps(entry, add) for entry in intervals):
                    raise OverlappingBooking(
                        f"subscriber {subscriber_uid!r} already holds a confirmed booking overlapping this time",
                    )
                intervals.append(_interval(add))
            new_item = ledger_item(subscriber_uid, day, intervals, (int(item["version"]) if item else 0) + 1)
            if item:
                writes.append(_versioned_put(new_item, int(item["version"])))
            else:
                writes.append(_put(new_item, "attribute_not_exists(PK)"))
        return writes

    def _run(self, build: Callable[[], _Transaction]) -> None:
        """Build and run a transaction, rebuilding it while only a ledger moved under it."""
        for attempt in range(_LEDGER_ATTEMPTS):
            if attempt:
                time.sleep(random.uniform(0, _LEDGER_PAUSE_SECONDS * 2 ** min(attempt, 5)))  # noqa: S311 - jitter
            transaction = build()
            try:
                self.table.transact(transaction.actions, on_cancel=transaction.cancelled)
                return
            except _LedgerMoved:
                continue
        raise StoreUnavailable("the subscriber's bookings kept changing; try again")

    def _stale(self, current: BookingRecord) -> StorageError:
        return missing_or_stale("booking", current.id, self.get(current.id))

    # --- writes ---------------------------------------------------------------------------------------

    def create(
        self,
        booking: BookingRecord,
        audit: AuditEntry,
        *,
        resource: ResourceRecord,
        idempotency: IdempotencyKey | None = None,
    ) -> None:
        errors: dict[str, Callable[[], StorageError]] = {
            "idempotency": lambda: IdempotencyKeyTaken("this Idempotency-Key was already used"),
            "booking": lambda: ValueTaken(f"booking {booking.id!r} already exists", attribute="id"),
            "resource": lambda: ResourceChanged(f"resource {resource.id!r} changed meanwhile"),
            "slot": lambda: SlotFull("no seat left in this slot"),
            "ledger": lambda: _LedgerMoved("ledger moved"),
        }

        def build() -> _Transaction:
            transaction = _Transaction(errors)
            transaction.add(_put(booking_item(booking), "attribute_not_exists(PK)"), "booking")
            transaction.add(_put(status_item(booking)))
            transaction.add(_take_seat(booking, resource.capacity), "slot")
            transaction.add(_guard_resource(resource), "resource")
            for write in self._ledger_writes(booking.subscriber_uid, add=booking):
                transaction.add(write, "ledger")
            for action in audit_puts(audit):
                transaction.add(action)
            for change in _counter_changes(booking, +1):
                transaction.add(change)
            if idempotency:
                item = idempotency_item(idempotency, booking.id)
                # DynamoDB's TTL deletes within ~48 h, so an expired key may still be there: it can be reused.
                condition = "attribute_not_exists(PK) OR #ttl < :now"
                put = _put(item, condition, {":now": epoch_seconds(booking.created_at)})
                put["Put"]["ExpressionAttributeNames"] = {"#ttl": "ttl"}
                transaction.add(put, "idempotency")
            return transaction

        self._run(build)

    def change_status(self, current: BookingRecord, updated: BookingRecord, audit: AuditEntry) -> None:
        updated.version = current.version + 1
        release = current.status.release_to(updated.status)
        errors: dict[str, Callable[[], StorageError]] = {
            "booking": lambda: self._stale(current),
            "ledger": lambda: _LedgerMoved("ledger moved"),
            "release": lambda: StoreUnavailable("seat count of the slot is inconsistent"),
        }

        def build() -> _Transaction:
            transaction = _Transaction(errors)
            transaction.add(_versioned_put(booking_item(updated), current.version), "booking")
            if status_key(current) != status_key(updated):
                transaction.add({"Delete": {"Key": key(*status_key(current))}})
            transaction.add(_put(status_item(updated)))
            if release.time:
                for write in self._ledger_writes(current.subscriber_uid, remove=current):
                    transaction.add(write, "ledger")
            if release.seat:
                transaction.add(_free_seat(current), "release")
            if release.count:
                for change in _counter_changes(current, -1):
                    transaction.add(change)
            for action in audit_puts(audit):
                transaction.add(action)
            return transaction

        self._run(build)

    def reschedule(
        self, current: BookingRecord, updated: BookingRecord, audit: AuditEntry, *, resource: ResourceRecord
    ) -> None:
        updated.version = current.version + 1
        errors: dict[str, Callable[[], StorageError]] = {
            "booking": lambda: self._stale(current),
            "resource": lambda: ResourceChanged(f"resource {resource.id!r} changed meanwhile"),
            "slot": lambda: SlotFull("no seat left in the new slot"),
            "ledger": lambda: _LedgerMoved("ledger moved"),
            "release": lambda: StoreUnavailable("seat count of the slot is inconsistent"),
        }

        def build() -> _Transaction:
            transaction = _Transaction(errors)
            transaction.add(_versioned_put(booking_item(updated), current.version), "booking")
            transaction.add({"Delete": {"Key": key(*status_key(current))}})
            transaction.add(_put(status_item(updated)))
            transaction.add(_free_seat(current), "release")
            transaction.add(_take_seat(updated, resource.capacity), "slot")
            transaction.add(_guard_resource(resource), "resource")
            for write in self._ledger_writes(current.subscriber_uid, add=updated, remove=current):
                transaction.add(write, "ledger")
            if updated.local_date != current.local_date:
                for change in _counter_changes(current, -1) + _counter_changes(updated, +1):
                    transaction.add(change)
            for action in audit_puts(audit):
                transaction.add(action)
            return transaction

        self._run(build)

    # --- reads ----------------------------------------------------------------------------------------

    def get(self, booking_id: str) -> BookingRecord | None:
        item = self.table.get(*booking_key(booking_id))
        return load(BookingRecord, item) if item else None

    def find_idempotency(self, key_text: str, now: datetime) -> StoredIdempotency | None:
        item = self.table.get(*idempotency_key(key_text))
        if item is None or int(item["ttl"]) < epoch_seconds(now):
            return None
        return StoredIdempotency(request_hash=item["request_hash"], booking_id=item["booking_id"])

    def _index_page(
        self,
        index: str,
        partition: str,
        start_from: datetime | None,
        start_to: datetime | None,
        limit: int,
        cursor: str | None,
    ) -> Page[BookingRecord]:
        condition, values = _sort_range(start_from, start_to)
        scope = f"{partition}#{values.get(':from', '')}#{values.get(':to', '')}"
        items, next_cursor = self.table.query_page(
            scope=scope,
            partition=partition,
            index=index,
            limit=limit,
            cursor=cursor,
            sort_condition=condition,
            values=values,
        )
        return _page(items, next_cursor)

    def list_for_resource(
        self,
        resource_id: str,
        *,
        start_from: datetime | None,
        start_to: datetime | None,
        limit: int,
        cursor: str | None = None,
    ) -> Page[BookingRecord]:
        return self._index_page("GSI1", f"RESBOOKINGS#{resource_id}", start_from, start_to, limit, cursor)

    def list_for_subscriber(
        self,
        subscriber_uid: str,
        *,
        start_from: datetime | None,
        start_to: datetime | None,
        limit: int,
        cursor: str | None = None,
    ) -> Page[BookingRecord]:
        return self._index_page("GSI2", f"SUBBOOKINGS#{subscriber_uid}", start_from, start_to, limit, cursor)

    def list_by_status(
        self, status: BookingStatus, *, start_from: datetime, start_to: datetime, limit: int, cursor: str | None = None
    ) -> Page[BookingRecord]:
        """Walks the month partitions of the window in order, at most STATUS_MONTHS_PER_PAGE of them
        per page (so a page may hold fewer than `limit`); the cursor says where it stopped."""
        scope = f"BOOKSTATUS#{status.value}#{sortable(start_from)}#{sortable(start_to)}"
        first, last_month = _month(start_from), _month(start_to)
        position = self.table.cursors.decode(scope, cursor) if cursor else {"month": first}
        start = position.get("month")
        if not (isinstance(start, str) and _MONTH.fullmatch(start) and first <= start <= last_month):
            raise CursorRejected()
        items: list[dict[str, Any]] = []
        for read, month in enumerate(_months_from(start, last_month)):
            if read == STATUS_MONTHS_PER_PAGE:
                return _page(items, self.table.cursors.encode(scope, {"month": month}))
            after = position.get("after") if month == start else None
            for item in self._status_month(status, month, start_from, start_to, after):
                items.append(item)
                if len(items) > limit:
                    break
            if len(items) > limit:
                break
        if len(items) <= limit:
            return _page(items)
        page = items[:limit]
        last = page[-1]
        next_cursor = self.table.cursors.encode(scope, {"month": last["PK"].rsplit("#", 1)[1], "after": last["SK"]})
        return _page(page, next_cursor)

    def _status_month(
        self, status: BookingStatus, month: str, start_from: datetime, start_to: datetime, after: str | None
    ) -> Iterator[dict[str, Any]]:
        partition = f"BOOKSTATUS#{status.value}#{month}"
        kwargs: dict[str, Any] = {
            "TableName": self.table.name,
            "KeyConditionExpression": "PK = :pk AND SK BETWEEN :from AND :to",
            "ExpressionAttributeValues": serialize_values(
                {":pk": partition, ":from": sortable(start_from), ":to": sortable(start_to)}
            ),
        }
        if after:
            kwargs["ExclusiveStartKey"] = serialize_values({"PK": partition, "SK": after})
        while True:
            response = self.table.call("query", **kwargs)
            yield from (deserialize(raw) for raw in response.get("Items", []))
            if not response.get("LastEvaluatedKey"):
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def future_confirmed_for_resource(self, resource_id: str, now: datetime) -> list[BookingRecord]:
        items = self.table.query_all(
            partition=f"RESBOOKINGS#{resource_id}",
            index="GSI1",
            sort_condition="#sk > :now",
            values={":now": sortable(now)},
        )
        bookings = [load(BookingRecord, item) for item in items]
        return [booking for booking in bookings if booking.status.open]

    def has_future_confirmed(self, subscriber_uid: str, now: datetime) -> bool:
        kwargs: dict[str, Any] = {
            "TableName": self.table.name,
            "IndexName": "GSI2",
            "KeyConditionExpression": "GSI2PK = :pk AND GSI2SK > :now",
            "FilterExpression": f"#status IN ({', '.join(OPEN_VALUES)})",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": serialize_values(
                {":pk": f"SUBBOOKINGS#{subscriber_uid}", ":now": sortable(now), **OPEN_VALUES}
            ),
            "Limit": 50,
        }
        while True:
            response = self.table.call("query", **kwargs)
            if response.get("Items"):
                return True
            if not response.get("LastEvaluatedKey"):
                return False
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
