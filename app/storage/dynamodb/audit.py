from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from app.storage.base import AuditQuery, CursorRejected, Page, StoreUnavailable
from app.storage.dynamodb.codec import dump, load
from app.storage.dynamodb.events import event_puts
from app.storage.dynamodb.table import DynamoTable, serialize
from app.storage.records import AuditEntry
from app.timeutil import epoch_seconds, sortable, utcnow

# Sorts after every "<time>#<id>" with the same time prefix: makes `until` an inclusive bound.
_AFTER_ANY_ID = "#~"
# Day partitions one page of a search without entity or actor reads at most: a long window costs
# more pages, not a longer request.
AUDIT_DAYS_PER_PAGE = 93  # as many as the former maximum window: a window that was allowed still reads as before


def audit_key(entity_type: str, entity_id: str, at: datetime, entry_id: str) -> tuple[str, str]:
    """The entity's partition; `<at>#<id>` sorts by time."""
    return f"AUDIT#{entity_type}#{entity_id}", f"{sortable(at)}#{entry_id}"


def audit_item(entry: AuditEntry) -> dict[str, Any]:
    """Item for one audit entry; also used inside the transactions of the entity it describes."""
    pk, order = audit_key(entry.entity_type, entry.entity_id, entry.at, entry.id)
    return {
        "PK": pk,
        "SK": order,
        "GSI1PK": f"AUDITACTOR#{entry.actor}",
        "GSI1SK": order,
        "GSI2PK": f"AUDITDAY#{entry.at.date().isoformat()}",
        "GSI2SK": order,
        "ttl": epoch_seconds(entry.expires_at) if entry.expires_at else None,
        "type": "audit",
        **dump(entry),
    }


def audit_puts(entry: AuditEntry) -> list[dict[str, Any]]:
    """Transaction actions for the entry and the events it carries: they commit with the change."""
    return [{"Put": {"Item": serialize(audit_item(entry))}}, *event_puts(entry.events)]


def _filtered(values: dict[str, Any] | None = None, **equal: str | None) -> dict[str, Any]:
    """`query_page` arguments of an audit query: entries past their retention are left out
    (DynamoDB's TTL deletes them up to days late), and each attribute given must equal its value."""
    expression = "(attribute_not_exists(#ttl) OR #ttl > :now)"
    names = {"#ttl": "ttl"}
    filter_values: dict[str, Any] = {**(values or {}), ":now": epoch_seconds(utcnow())}
    for attribute, value in equal.items():
        if value:
            expression += f" AND #{attribute} = :{attribute}"
            names[f"#{attribute}"] = attribute
            filter_values[f":{attribute}"] = value
    return {"filter_expression": expression, "filter_names": names, "values": filter_values}


class DynamoAuditRepository:
    def __init__(self, table: DynamoTable) -> None:
        self.table = table

    def append(self, entry: AuditEntry) -> None:
        if entry.events:
            self.table.transact(audit_puts(entry), on_cancel=lambda codes: StoreUnavailable("audit entry not written"))
        else:
            self.table.put(audit_item(entry))

    def list_for_entity(
        self, entity_type: str, entity_id: str, *, limit: int, cursor: str | None = None
    ) -> Page[AuditEntry]:
        partition = f"AUDIT#{entity_type}#{entity_id}"
        items, next_cursor = self.table.query_page(
            scope=partition, partition=partition, limit=limit, cursor=cursor, forward=False, **_filtered()
        )
        return Page([load(AuditEntry, item) for item in items], next_cursor)

    def search(self, query: AuditQuery, *, limit: int, cursor: str | None = None) -> Page[AuditEntry]:
        time_range = {":from": sortable(query.since), ":to": sortable(query.until) + _AFTER_ANY_ID}
        between = "#sk BETWEEN :from AND :to"
        if query.entity_type and query.entity_id:
            items, next_cursor = self.table.query_page(
                scope=query.scope,
                partition=f"AUDIT#{query.entity_type}#{query.entity_id}",
                sort_condition=between,
                limit=limit,
                cursor=cursor,
                forward=False,
                **_filtered(time_range, actor=query.actor),
            )
            return Page([load(AuditEntry, item) for item in items], next_cursor)
        filters = _filtered(time_range, entity_type=query.entity_type)
        if query.actor:
            items, next_cursor = self.table.query_page(
                scope=query.scope,
                partition=f"AUDITACTOR#{query.actor}",
                index="GSI1",
                sort_condition=between,
                limit=limit,
                cursor=cursor,
                forward=False,
                **filters,
            )
            return Page([load(AuditEntry, item) for item in items], next_cursor)
        return self._search_by_day(query, filters, limit, cursor)

    def _search_by_day(
        self, query: AuditQuery, query_args: dict[str, Any], limit: int, cursor: str | None
    ) -> Page[AuditEntry]:
        """Walks day partitions newest first; the cursor holds the day and the position inside it."""
        first_day, day, inner = query.since.date(), query.until.date(), None
        if cursor:
            position = self.table.cursors.decode(query.scope, cursor)
            try:
                day, inner = type(day).fromisoformat(position["day"]), position.get("inner")
            except (KeyError, TypeError, ValueError):
                raise CursorRejected() from None
            if not first_day <= day <= query.until.date():
                raise CursorRejected()

        def read_day(day: date, limit: int, inner: str | None) -> tuple[list[Any], str | None]:
            return self.table.query_page(
                scope=f"{query.scope}|{day}",
                partition=f"AUDITDAY#{day.isoformat()}",
                index="GSI2",
                sort_condition="#sk BETWEEN :from AND :to",
                limit=limit,
                cursor=inner,
                forward=False,
                **query_args,
            )

        def older(day: date) -> date | None:
            return day - timedelta(days=1) if day > first_day else None

        def from_day(day: date | None) -> str | None:
            return self.table.cursors.encode(query.scope, {"day": day.isoformat()}) if day else None

        entries: list[AuditEntry] = []
        next_day: date | None = day if day >= first_day else None
        for _ in range(AUDIT_DAYS_PER_PAGE):
            if next_day is None:
                return Page(entries, None)
            day = next_day
            if len(entries) < limit:
                items, inner = read_day(day, limit - len(entries), inner)
                entries.extend(load(AuditEntry, item) for item in items)
                if inner:  # this day has more: the page is full
                    position = {"day": day.isoformat(), "inner": inner}
                    return Page(entries, self.table.cursors.encode(query.scope, position))
            elif read_day(day, 1, None)[0]:
                # Full, and this older day holds an entry: a cursor only then, so that the last page
                # is never empty when the older days of the window are.
                return Page(entries, from_day(day))
            next_day = older(day)
        # The day budget is spent: the next page goes on from the next day to read.
        return Page(entries, from_day(next_day))
