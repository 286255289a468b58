"""Audit entries and events written atomically with the change they describe, without multi-document transactions.

The change and its audit entry are written in one single-document update: the entry goes into the
document's `_pending_audit` list, with the change's domain events inside it. It is then copied to
the `audit` collection and its events to `events` (idempotently, by id) and removed from the
document. If the process dies in between, `recover` finishes the copy later (at start-up and from
the sweeper), so no change is ever left without its entry and events, and no event is copied
without its change. An imported row has events but no entry of its own: `pending_events`.

Deletes first mark the document `_deleted` together with the pending entry, then copy the entry,
then remove the document; readers ignore `_deleted` documents and `recover` completes the delete.

A pending entry may also carry counter deltas (`pending(entry, counter_deltas)`): the counters
then move with the change, exactly once, although they live in other documents. Each counter
update is conditional on the entry's id not being among the ids recorded in that counter
document, and records it in the same single-document update; so a flush interrupted anywhere,
repeated by `recover`, or racing another flush of the same document never applies a delta twice
and never loses one. A counter document keeps its last `APPLIED_IDS_KEPT` entry ids: a flush
would have to stall while that many later changes of the same counter completed before it could
apply a delta twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pymongo.errors import DuplicateKeyError

from app.storage.base import StoreUnavailable
from app.storage.mongo.audit import audit_document
from app.storage.mongo.counters import counter_id
from app.storage.mongo.events import copy_events, event_document
from app.storage.records import AuditEntry, DomainEvent

PENDING = "_pending_audit"
DELETED = "_deleted"
LIVE: dict[str, Any] = {DELETED: {"$exists": False}}
COUNTER_DELTAS = "_counter_deltas"
EVENTS = "_events"
APPLIED_IDS = "applied"
APPLIED_IDS_KEPT = 1000
APPLY_ATTEMPTS = 10


def pending(entry: AuditEntry, counter_deltas: Mapping[str, Mapping[str, int]] | None = None) -> dict[str, Any]:
    document = audit_document(entry)
    if entry.events:
        document[EVENTS] = [event_document(event) for event in entry.events]
    deltas = [
        {"scope": scope, "key": name, "delta": delta}
        for scope, changes in sorted((counter_deltas or {}).items())
        for name, delta in sorted(changes.items())
        if delta
    ]
    if deltas:
        # A list, not {scope: {key: delta}}: scopes and keys may contain dots, which field names must not.
        document[COUNTER_DELTAS] = deltas
    return document


def pending_events(events: Sequence[DomainEvent]) -> dict[str, Any]:
    """A pending entry holding only events (its `_id` is the first event's: unique, never an audit id)."""
    return {"_id": events[0].id, EVENTS: [event_document(event) for event in events]}


def _is_audit_entry(entry: Mapping[str, Any]) -> bool:
    return "action" in entry


def apply_counter_delta(db: Any, entry_id: str, scope: str, name: str, delta: int) -> None:
    """Add `delta` to the counter unless this entry's delta was already added to it."""
    document_id = counter_id(scope, name)
    for _ in range(3):
        try:
            db["counters"].update_one(
                {"_id": document_id, APPLIED_IDS: {"$ne": entry_id}},
                {
                    "$inc": {"n": delta},
                    "$set": {"scope": scope, "key": name},
                    "$push": {APPLIED_IDS: {"$each": [entry_id], "$slice": -APPLIED_IDS_KEPT}},
                },
                upsert=True,
            )
            return
        except DuplicateKeyError:
            # Either the delta is already in (the filter excluded the document, so the upsert
            # collided with it), or another writer created the counter at the same moment.
            if db["counters"].find_one({"_id": document_id, APPLIED_IDS: entry_id}, {"_id": 1}):
                return
    raise StoreUnavailable(f"could not update counter {document_id!r}")


def apply_import_deltas(db: Any, job_id: str, scope: str, name: str, row_deltas: Mapping[int, int]) -> None:
    """Add the deltas of an import's rows that no earlier batch of the job counted on this counter.

    The entry id names the rows it counted (`import:<job>:21-24,27`), not the batch: a batch redone
    with another size or start still counts each row exactly once. The update is conditional on
    the counter's applied ids being the ones read, so a concurrent change makes it read again.
    """
    document_id = counter_id(scope, name)
    prefix = f"import:{job_id}:"
    for _ in range(APPLY_ATTEMPTS):
        document = db["counters"].find_one({"_id": document_id}, {APPLIED_IDS: 1})
        applied = (document or {}).get(APPLIED_IDS) or []
        counted = {row for entry in applied if entry.startswith(prefix) for row in _rows(entry[len(prefix) :])}
        rows = sorted(row for row in row_deltas if row not in counted)
        if not rows:
            return
        entry_id = prefix + _runs(rows)
        delta = sum(row_deltas[row] for row in rows)
        if document is None:
            apply_counter_delta(db, entry_id, scope, name, delta)
            return
        result = db["counters"].update_one(
            {"_id": document_id, APPLIED_IDS: applied},
            {
                "$inc": {"n": delta},
                "$set": {"scope": scope, "key": name},
                "$push": {APPLIED_IDS: {"$each": [entry_id], "$slice": -APPLIED_IDS_KEPT}},
            },
        )
        if result.matched_count:
            return
    raise StoreUnavailable(f"could not update counter {document_id!r}")


def _runs(rows: list[int]) -> str:
    """Sorted row numbers as runs: [21, 22, 23, 27] -> '21-23,27'."""
    runs: list[list[int]] = []
    for row in rows:
        if runs and row == runs[-1][1] + 1:
            runs[-1][1] = row
        else:
            runs.append([row, row])
    return ",".join(str(first) if first == last else f"{first}-{last}" for first, last in runs)


def _rows(runs: str) -> list[int]:
    rows: list[int] = []
    for run in runs.split(","):
        first, _, last = run.partition("-")
        if first.isdigit() and (not last or last.isdigit()):
            rows.extend(range(int(first), int(last or first) + 1))
    return rows


def flush(db: Any, collection: str, document_id: str) -> None:
    document = db[collection].find_one({"_id": document_id}, {PENDING: 1})
    entries = (document or {}).get(PENDING) or []
    for entry in entries:
        for change in entry.get(COUNTER_DELTAS) or ():
            apply_counter_delta(db, entry["_id"], change["scope"], change["key"], change["delta"])
        copy_events(db, list(entry.get(EVENTS) or ()))
        if not _is_audit_entry(entry):
            continue
        try:
            db["audit"].insert_one(
                {name: value for name, value in entry.items() if name not in (COUNTER_DELTAS, EVENTS)}
            )
        except DuplicateKeyError:
            pass  # copied by an earlier, interrupted flush
    if entries:
        # Unset only if nothing new was queued meanwhile; a later flush takes care of newer entries.
        db[collection].update_one({"_id": document_id, PENDING: entries}, {"$unset": {PENDING: ""}})


def flush_events(db: Any, collection: str, document_ids: Sequence[str]) -> None:
    """`flush` for many documents whose pending entries hold only events (an import batch): one
    insert and one bulk update, not three round trips a document."""
    documents = list(
        db[collection].find({"_id": {"$in": list(document_ids)}, PENDING: {"$exists": True}}, {PENDING: 1})
    )
    if any(_is_audit_entry(entry) for document in documents for entry in document[PENDING]):
        for document in documents:
            flush(db, collection, document["_id"])
        return
    copy_events(db, [event for document in documents for entry in document[PENDING] for event in entry[EVENTS]])
    if documents:
        # Unset where the list still holds just the entry read: entry ids are event ids, unique
        # across documents, so one update does it, and a change queued meanwhile stays queued.
        ids = [entry["_id"] for document in documents for entry in document[PENDING]]
        db[collection].update_many(
            {
                "_id": {"$in": [document["_id"] for document in documents]},
                PENDING: {"$size": 1},
                f"{PENDING}._id": {"$in": ids},
            },
            {"$unset": {PENDING: ""}},
        )


def finish_delete(db: Any, collection: str, document_id: str) -> None:
    flush(db, collection, document_id)
    db[collection].delete_one({"_id": document_id, DELETED: True})


def recover(db: Any, collection: str) -> int:
    """Complete interrupted writes of one collection; returns how many documents needed it."""
    repaired = 0
    for document in db[collection].find({PENDING: {"$exists": True}}, {"_id": 1, DELETED: 1}):
        flush(db, collection, document["_id"])
        repaired += 1
    for document in db[collection].find({DELETED: True}, {"_id": 1}):
        finish_delete(db, collection, document["_id"])
        repaired += 1
    return repaired
