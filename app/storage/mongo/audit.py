from __future__ import annotations

from typing import Any

from app.storage.base import AuditQuery, Page
from app.storage.cursor import CursorCodec
from app.storage.mongo import codec
from app.storage.mongo.events import copy_events, event_document
from app.storage.mongo.paging import find_page
from app.storage.records import AuditEntry
from app.timeutil import sortable, utcnow

_AFTER_ANY_ID = "#~"


def audit_document(entry: AuditEntry) -> dict[str, Any]:
    """The entry, and its position in every list of entries (`order`: time, then id)."""
    return {**codec.document(entry, "id"), "order": f"{sortable(entry.at)}#{entry.id}"}


def to_entry(document: dict[str, Any]) -> AuditEntry:
    return codec.load(AuditEntry, document, "id")


def _unexpired() -> dict[str, Any]:
    """Entries past their retention are left out: the TTL monitor deletes them a minute or more late."""
    return {"expires_at": {"$not": {"$lte": utcnow()}}}


class MongoAuditRepository:
    def __init__(self, db: Any, cursors: CursorCodec) -> None:
        self.collection = db["audit"]
        self.cursors = cursors

    def append(self, entry: AuditEntry) -> None:
        """An entry of no stored change (a refused login): its events first, then the entry."""
        copy_events(self.collection.database, [event_document(event) for event in entry.events])
        self.collection.insert_one(audit_document(entry))

    def list_for_entity(
        self, entity_type: str, entity_id: str, *, limit: int, cursor: str | None = None
    ) -> Page[AuditEntry]:
        return find_page(
            self.collection,
            {"entity_type": entity_type, "entity_id": entity_id, **_unexpired()},
            to_entry,
            limit=limit,
            cursor=cursor,
            scope=f"AUDIT#{entity_type}#{entity_id}",
            cursors=self.cursors,
            order_field="order",
            descending=True,
        )

    def search(self, query: AuditQuery, *, limit: int, cursor: str | None = None) -> Page[AuditEntry]:
        criteria: dict[str, Any] = {
            "order": {"$gte": sortable(query.since), "$lte": sortable(query.until) + _AFTER_ANY_ID},
            **_unexpired(),
        }
        for field in ("entity_type", "entity_id", "actor"):
            if getattr(query, field):
                criteria[field] = getattr(query, field)
        return find_page(
            self.collection,
            criteria,
            to_entry,
            limit=limit,
            cursor=cursor,
            scope=query.scope,
            cursors=self.cursors,
            order_field="order",
            descending=True,
        )
