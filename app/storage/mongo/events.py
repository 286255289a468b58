"""Domain events in the `events` collection, copied there by the outbox flush of their change.

A change's events ride in its document's pending outbox entry (`outbox.pending`), so they commit
with the change in one single-document write; the flush copies them here (idempotently, by id)
with `pending: true`, and relaying unsets it. A TTL index removes them after the retention.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import BulkWriteError

from app.storage.mongo import codec
from app.storage.records import DomainEvent

COLLECTION = "events"
PENDING = "pending"


def event_document(event: DomainEvent) -> dict[str, Any]:
    return {**relayed_event_document(event), PENDING: True}


def relayed_event_document(event: DomainEvent) -> dict[str, Any]:
    return codec.document(event, "id")


def copy_events(db: Any, documents: list[dict[str, Any]]) -> None:
    """Insert event documents, skipping those an earlier, interrupted flush already copied."""
    if not documents:
        return
    try:
        db[COLLECTION].insert_many(documents, ordered=False)
    except BulkWriteError as exc:
        if any(error.get("code") != 11000 for error in exc.details.get("writeErrors", [])):
            raise


def to_event(document: dict[str, Any]) -> DomainEvent:
    return codec.load(DomainEvent, document, "id")


def _older_than(before: datetime) -> str:
    """Ids start with their time in hex nanoseconds, so "happened before" is an id bound."""
    return f"{int(before.timestamp() * 1_000_000_000):016x}"


class MongoEventRepository:
    def __init__(self, db: Any) -> None:
        self.collection = db[COLLECTION]

    def pending(self, *, limit: int, before: datetime | None = None) -> list[DomainEvent]:
        query: dict[str, Any] = {PENDING: True}
        if before is not None:
            query["_id"] = {"$lt": _older_than(before)}
        return [to_event(document) for document in self.collection.find(query).sort("_id", ASCENDING).limit(limit)]

    def mark_relayed(self, events: Iterable[DomainEvent]) -> None:
        ids = [event.id for event in events]
        if ids:
            self.collection.update_many({"_id": {"$in": ids}}, {"$unset": {PENDING: ""}})

    def list_for_subject(self, subject: str, *, limit: int) -> list[DomainEvent]:
        cursor = self.collection.find({"subject": subject}).sort("_id", ASCENDING).limit(limit)
        return [to_event(document) for document in cursor]
