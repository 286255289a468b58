"""Audit entries written atomically with the change they describe, without multi-document transactions.

The change and its audit entry are written in one single-document update: the entry goes into the
document's `_pending_audit` list. It is then copied to the `audit` collection (idempotently, by its
id) and removed from the document. If the process dies in between, `recover` finishes the copy
later (at start-up and from the sweeper), so no change is ever left without its entry.

Deletes first mark the document `_deleted` together with the pending entry, then copy the entry,
then remove the document; readers ignore `_deleted` documents and `recover` completes the delete.
"""

from __future__ import annotations

from typing import Any

from pymongo.errors import DuplicateKeyError

from app.storage.mongo.audit import audit_document
from app.storage.records import AuditEntry

PENDING = "_pending_audit"
DELETED = "_deleted"
LIVE: dict[str, Any] = {DELETED: {"$exists": False}}


def pending(entry: AuditEntry) -> dict[str, Any]:
    return audit_document(entry)


def flush(db: Any, collection: str, document_id: str) -> None:
    document = db[collection].find_one({"_id": document_id}, {PENDING: 1})
    entries = (document or {}).get(PENDING) or []
    for entry in entries:
        try:
            db["audit"].insert_one(entry)
        except DuplicateKeyError:
            pass  # copied by an earlier, interrupted flush
    if entries:
        # Unset only if nothing new was queued meanwhile; a later flush takes care of newer entries.
        db[collection].update_one({"_id": document_id, PENDING: entries}, {"$unset": {PENDING: ""}})


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
