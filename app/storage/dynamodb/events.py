"""Domain events in the single table, written in the transaction of the change they describe.

An event item's key is its subject's partition (`EVENT#<subject>`) and its time-ordered id, so
the table's stream carries one subject's events in order. While unrelayed, it also sits in the
sparse outbox partition of GSI1 (`EVENTOUTBOX`, sorted by id): `drain` reads that, and relaying
takes it out again. Items expire by TTL after the event retention period.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from app.storage.dynamodb.codec import dump, load
from app.storage.dynamodb.schema import GSI1
from app.storage.dynamodb.table import DynamoTable, deserialize, serialize
from app.storage.records import DomainEvent
from app.timeutil import epoch_seconds

# The item's kind, which the stream filter selects. `item_type`, as on jobs: the other items keep
# their kind in `type`, but an event's `type` is its own (booking.confirmed), read back as is.
ITEM_TYPE = "event"
OUTBOX_PARTITION = "EVENTOUTBOX"


def event_item(event: DomainEvent, *, pending: bool = True) -> dict[str, Any]:
    return {
        "PK": f"EVENT#{event.subject}",
        "SK": event.id,
        "GSI1PK": OUTBOX_PARTITION if pending else None,
        "GSI1SK": event.id if pending else None,
        "ttl": epoch_seconds(event.expires_at) if event.expires_at else None,
        "item_type": ITEM_TYPE,
        **dump(event),
    }


def event_puts(events: Iterable[DomainEvent]) -> list[dict[str, Any]]:
    """Transaction actions writing `events` (an id is new: the condition guards a reused one)."""
    return [
        {"Put": {"Item": serialize(event_item(event)), "ConditionExpression": "attribute_not_exists(PK)"}}
        for event in events
    ]


def event_from_item(item: Mapping[str, Any]) -> DomainEvent:
    """The event in a (deserialized) item: from the table or a stream record's NewImage."""
    return load(DomainEvent, item)


def event_from_stream_record(record: Mapping[str, Any]) -> DomainEvent | None:
    """The event a DynamoDB Streams record inserted, or None for any other record (an update or
    removal, another kind of item). Raises ValueError when an event item can't be read."""
    if record.get("eventName") != "INSERT":
        return None
    image = (record.get("dynamodb") or {}).get("NewImage")
    if not isinstance(image, Mapping) or image.get("item_type") != {"S": ITEM_TYPE}:
        return None
    try:
        return event_from_item(deserialize(image))
    except (TypeError, ValueError, KeyError) as exc:  # the deserializer's, the record model's
        # Only the error's kind: its text would quote the item's values, personal data included.
        raise ValueError(
            f"unreadable event item in stream record {record.get('eventID')!r} ({type(exc).__name__})"
        ) from None


class DynamoEventRepository:
    def __init__(self, table: DynamoTable) -> None:
        self.table = table

    def pending(self, *, limit: int, before: datetime | None = None) -> list[DomainEvent]:
        """Unrelayed events, oldest first (only those older than `before`, when given)."""
        # Ids start with their time in hex nanoseconds: "older than" is a sort-key bound.
        bound = {":before": f"{int(before.timestamp() * 1_000_000_000):016x}"} if before else None
        items, _ = self.table.query_page(
            scope=OUTBOX_PARTITION,
            partition=OUTBOX_PARTITION,
            index=GSI1,
            limit=limit,
            sort_condition="#sk < :before" if bound else None,
            values=bound,
        )
        return [event_from_item(item) for item in items[:limit]]

    def mark_relayed(self, events: Iterable[DomainEvent]) -> None:
        """Out of the outbox: the same item again, without the outbox index keys."""
        self.table.batch_write(puts=[event_item(event, pending=False) for event in events])

    def list_for_subject(self, subject: str, *, limit: int) -> list[DomainEvent]:
        partition = f"EVENT#{subject}"
        items, _ = self.table.query_page(scope=partition, partition=partition, limit=limit)
        return [event_from_item(item) for item in items[:limit]]
