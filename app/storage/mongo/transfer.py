"""The MongoDB side of a store-to-store copy: each collection read in `_id` order, written back by `_id`.

Only settled documents are exported: the outbox's `recover()` has run when the store opened, and
documents still marked deleted or half-written (`_deleted`, `_claiming`) are left out, as every
reader of this store leaves them out. Writes insert in bulk and replace what already exists one by
one, so a copy made again converges on the same documents; a unique index that refuses a document
(its msisdn held by another subscriber) refuses that record only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pymongo.errors import BulkWriteError, DuplicateKeyError

from app.storage.mongo import codec, outbox
from app.storage.mongo.audit import audit_document
from app.storage.mongo.bookings import VISIBLE, booking_document, busy_id, ledger_expiry, slot_id
from app.storage.mongo.counters import counter_id
from app.storage.mongo.events import relayed_event_document
from app.storage.mongo.jobs import error_document, error_id, stored_job_document
from app.storage.mongo.webhooks import delivery_document
from app.storage.records import BookingStatus
from app.storage.transfer import (
    MODELS,
    Key,
    Refused,
    TransferRecord,
    busy_ledger,
    counter,
    denied_token,
    entity,
    idempotency_record,
    parse_time,
    slot,
)
from app.timeutil import as_utc


@dataclass(frozen=True)
class _Source:
    """One collection a phase reads: which documents, and the record each becomes."""

    collection: str
    query: dict[str, Any]
    read: Callable[[dict[str, Any]], TransferRecord]


@dataclass(frozen=True)
class Entity:
    """A kind stored one record per document: its collection, the documents that count, and the
    record field its `_id` holds (None: derived from the record, which `write` then builds)."""

    kind: str
    collection: str
    query: dict[str, Any]
    id_field: str | None
    write: Callable[[Any], dict[str, Any]] | None = None

    def document(self, record: BaseModel) -> dict[str, Any]:
        if self.write is not None:
            return self.write(record)
        assert self.id_field is not None
        return codec.document(record, self.id_field)

    def record(self, document: dict[str, Any]) -> BaseModel:
        return codec.load(MODELS[self.kind], document, self.id_field)

    def read(self, document: dict[str, Any]) -> TransferRecord:
        return entity(self.kind, self.record(document))


def _busy(document: dict[str, Any]) -> TransferRecord:
    subscriber_uid, day = str(document["_id"]).rsplit("#", 1)
    return busy_ledger(subscriber_uid, day, list(document.get("intervals", [])))


def _idempotency(document: dict[str, Any]) -> TransferRecord:
    stored = document["idempotency"]
    expires = as_utc(stored["expires_at"])
    return idempotency_record(stored["key"], stored["request_hash"], str(document["_id"]), expires)


ENTITIES: dict[str, Entity] = {
    spec.kind: spec
    for spec in (
        Entity("users", "users", outbox.LIVE, "username"),
        Entity("subscribers", "subscribers", outbox.LIVE, "uid"),
        Entity("resources", "resources", outbox.LIVE, "id"),
        Entity("bookings", "bookings", VISIBLE, "id", booking_document),
        Entity("jobs", "jobs", {}, "id", stored_job_document),
        Entity("job_errors", "job_errors", {}, None, error_document),
        Entity("audit", "audit", {}, "id", audit_document),
        # History: relayed by the source store already, never again by the target.
        Entity("events", "events", {}, "id", relayed_event_document),
        Entity("token_families", "token_families", {}, "family_id"),
        Entity("refresh_tokens", "refresh_tokens", {}, "token_hash"),
        Entity("notifications", "notifications", {}, "id"),
        Entity("reminders", "reminders", {}, "booking_id"),
        Entity("webhooks", "webhooks", outbox.LIVE, "id"),
        Entity("webhook_deliveries", "webhook_deliveries", {}, None, delivery_document),
    )
}
# In the order of `transfer.PHASES`: a copy's saved position counts sources in this order.
PHASE_SOURCES: tuple[tuple[Entity | _Source, ...], ...] = (
    (
        ENTITIES["users"],
        ENTITIES["subscribers"],
        ENTITIES["resources"],
        ENTITIES["bookings"],
        _Source("subscriber_busy", {}, _busy),
        ENTITIES["jobs"],
        ENTITIES["job_errors"],
        ENTITIES["audit"],
        _Source("counters", {}, lambda d: counter(d["scope"], d["key"], d["n"])),
        ENTITIES["token_families"],
        ENTITIES["refresh_tokens"],
        _Source("denied_tokens", {}, lambda d: denied_token(str(d["_id"]), as_utc(d["expires_at"]))),
        ENTITIES["events"],
        ENTITIES["notifications"],
        ENTITIES["reminders"],
        ENTITIES["webhooks"],
        ENTITIES["webhook_deliveries"],
    ),
    (
        _Source("slots", {}, lambda d: slot(d["resource_id"], as_utc(d["start"]), d["booked"])),
        _Source("bookings", {**VISIBLE, "idempotency": {"$exists": True}}, _idempotency),
    ),
)
# kind -> (collection, the document `_id` of an identity)
_LOCATIONS: dict[str, tuple[str, Callable[[Key], str]]] = {
    "users": ("users", lambda k: k[0]),
    "subscribers": ("subscribers", lambda k: k[0]),
    "resources": ("resources", lambda k: k[0]),
    "bookings": ("bookings", lambda k: k[0]),
    "busy_ledgers": ("subscriber_busy", lambda k: busy_id(k[0], k[1])),
    "jobs": ("jobs", lambda k: k[0]),
    "job_errors": ("job_errors", lambda k: error_id(k[0], int(k[1]), k[2])),
    "audit": ("audit", lambda k: k[3]),
    "events": ("events", lambda k: k[1]),
    "counters": ("counters", lambda k: counter_id(k[0], k[1])),
    "token_families": ("token_families", lambda k: k[0]),
    "refresh_tokens": ("refresh_tokens", lambda k: k[0]),
    "denied_tokens": ("denied_tokens", lambda k: k[0]),
    "notifications": ("notifications", lambda k: k[0]),
    "reminders": ("reminders", lambda k: k[0]),
    "slots": ("slots", lambda k: slot_id(k[0], parse_time(k[1]))),
    "webhooks": ("webhooks", lambda k: k[0]),
    "webhook_deliveries": ("webhook_deliveries", lambda k: f"{k[0]}:{k[1]}"),
}


class MongoTransfer:
    def __init__(self, db: Any) -> None:
        self.db = db

    def read(self, phase: int, position: str | None, limit: int) -> tuple[list[TransferRecord], str | None]:
        sources = PHASE_SOURCES[phase]
        at: dict[str, Any] = json.loads(position) if position else {"source": 0, "after": None}
        index, after = int(at["source"]), at["after"]
        while index < len(sources):
            source = sources[index]
            query = dict(source.query)
            if after is not None:
                query["_id"] = {"$gt": after}
            documents = list(self.db[source.collection].find(query).sort("_id", 1).limit(limit))
            if len(documents) == limit:
                next_position = {"source": index, "after": documents[-1]["_id"]}
                return [source.read(d) for d in documents], json.dumps(next_position)
            following = {"source": index + 1, "after": None}
            if documents:
                done = index + 1 == len(sources)
                return [source.read(d) for d in documents], None if done else json.dumps(following)
            index, after = index + 1, None
        return [], None

    def write(self, records: list[TransferRecord]) -> list[Refused]:
        refused: list[Refused] = []
        by_collection: dict[str, list[tuple[TransferRecord, dict[str, Any]]]] = {}
        for record in records:
            if record.kind == "idempotency_keys":
                refused += self._attach_idempotency(record)
                continue
            collection, _ = _LOCATIONS[record.kind]
            by_collection.setdefault(collection, []).append((record, self._document(record)))
        for collection, pairs in by_collection.items():
            refused += self._upsert(collection, pairs)
        return refused

    def _upsert(self, collection: str, pairs: list[tuple[TransferRecord, dict[str, Any]]]) -> list[Refused]:
        """Insert all at once; a document already there (a repeated copy) is replaced on its own."""
        try:
            self.db[collection].insert_many([document for _, document in pairs], ordered=False)
            return []
        except BulkWriteError as exc:
            failed = [pairs[error["index"]] for error in exc.details.get("writeErrors", [])]
        refused = []
        for record, document in failed:
            try:
                self.db[collection].replace_one({"_id": document["_id"]}, document, upsert=True)
            except DuplicateKeyError as exc:
                refused.append(Refused(record.kind, record.key, f"a unique index refused it: {exc}"))
        return refused

    def _document(self, record: TransferRecord) -> dict[str, Any]:
        data, kind = record.data, record.kind
        if kind in ENTITIES:
            return ENTITIES[kind].document(record.model())
        if kind == "busy_ledgers":
            intervals = [
                {"booking_id": i["booking_id"], "start": parse_time(i["start"]), "end": parse_time(i["end"])}
                for i in data["intervals"]
            ]
            document_id = busy_id(data["subscriber_uid"], data["day"])
            return {"_id": document_id, "intervals": intervals, "expires_at": ledger_expiry(data["day"])}
        if kind == "counters":
            return {"_id": counter_id(data["scope"], data["key"]), **data}
        if kind == "denied_tokens":
            return {"_id": data["jti"], "expires_at": parse_time(data["expires_at"])}
        if kind == "slots":
            start = parse_time(data["start"])
            holders = sorted(self._seat_holders(data["resource_id"], data["start"]))
            return {
                "_id": slot_id(data["resource_id"], start),
                "resource_id": data["resource_id"],
                "start": start,
                "booked": data["booked"],
                "holders": holders,
            }
        raise ValueError(f"unknown kind {kind!r}")

    def _seat_holders(self, resource_id: str, start: str) -> Iterator[str]:
        """The bookings holding a seat of the slot (`BookingStatus.holds_seat`): a cancel frees a seat
        only if its booking is among the holders. Bookings are copied before slots."""
        prefix = f"{start}#"
        query = {
            "resource_id": resource_id,
            "order": {"$gte": prefix, "$lt": prefix + "~"},
            "status": {"$in": [status.value for status in BookingStatus if status.holds_seat]},
        }
        for document in self.db["bookings"].find(query, {"_id": 1}):
            yield str(document["_id"])

    def _attach_idempotency(self, record: TransferRecord) -> list[Refused]:
        """Stored inside the booking it created (one write, as when the booking was made)."""
        data = record.data
        stored = {
            "key": data["key"],
            "request_hash": data["request_hash"],
            "expires_at": parse_time(data["expires_at"]),
        }
        try:
            result = self.db["bookings"].update_one({"_id": data["booking_id"]}, {"$set": {"idempotency": stored}})
        except DuplicateKeyError:
            return [Refused(record.kind, record.key, "another booking in the target holds this key")]
        if result.matched_count == 0:
            return [Refused(record.kind, record.key, f"its booking {data['booking_id']!r} is not in the target")]
        return []

    def fetch(self, kind: str, keys: list[Key]) -> dict[Key, TransferRecord]:
        if kind == "idempotency_keys":
            documents = self.db["bookings"].find({**VISIBLE, "idempotency.key": {"$in": [k[0] for k in keys]}})
            found = [_idempotency(d) for d in documents]
        else:
            collection, document_id = _LOCATIONS[kind]
            source = next(s for phase in PHASE_SOURCES for s in phase if s.collection == collection)
            query = {**source.query, "_id": {"$in": [document_id(k) for k in keys]}}
            found = [source.read(d) for d in self.db[collection].find(query)]
        return {record.key: record for record in found}
