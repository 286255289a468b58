from __future__ import annotations

from typing import Any

from app.storage.base import Page
from app.storage.dynamodb.table import DynamoTable, serialize
from app.storage.records import AuditEntry
from app.timeutil import epoch_seconds, sortable


def audit_item(entry: AuditEntry) -> dict[str, Any]:
    """Item for one audit entry; also used inside the transactions of the entity it describes."""
    order = f"{sortable(entry.at)}#{entry.id}"
    return {
        "PK": f"AUDIT#{entry.entity_type}#{entry.entity_id}",
        "SK": order,
        "GSI1PK": f"AUDITACTOR#{entry.actor}",
        "GSI1SK": order,
        "GSI2PK": f"AUDITDAY#{entry.at.date().isoformat()}",
        "GSI2SK": order,
        "ttl": epoch_seconds(entry.expires_at) if entry.expires_at else None,
        "type": "audit",
        **entry.model_dump(mode="json"),
    }


def audit_put(entry: AuditEntry) -> dict[str, Any]:
    return {"Put": {"Item": serialize(audit_item(entry))}}


def to_entry(item: dict[str, Any]) -> AuditEntry:
    return AuditEntry.model_validate({name: item.get(name) for name in AuditEntry.model_fields})


class DynamoAuditRepository:
    def __init__(self, table: DynamoTable) -> None:
        self.table = table

    def append(self, entry: AuditEntry) -> None:
        self.table.put(audit_item(entry))

    def list_for_entity(
        self, entity_type: str, entity_id: str, *, limit: int, cursor: str | None = None
    ) -> Page[AuditEntry]:
        partition = f"AUDIT#{entity_type}#{entity_id}"
        items, next_cursor = self.table.query_page(
            scope=partition, partition=partition, limit=limit, cursor=cursor, forward=False
        )
        return Page([to_entry(item) for item in items], next_cursor)
