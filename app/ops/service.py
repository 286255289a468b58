"""Operational reads: the audit log (admin)."""

from __future__ import annotations

from datetime import datetime, timedelta

from app.errors import FieldCode, InvalidInput
from app.storage.base import AuditQuery, Page, Store
from app.storage.records import AuditEntry
from app.timeutil import as_utc, utcnow

DEFAULT_AUDIT_WINDOW = timedelta(days=7)


def search_audit(
    store: Store,
    *,
    entity_type: str | None,
    entity_id: str | None,
    actor: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
) -> Page[AuditEntry]:
    window = f"{since.isoformat() if since else ''}/{until.isoformat() if until else ''}"
    until = as_utc(until) if until else utcnow()
    since = as_utc(since) if since else until - DEFAULT_AUDIT_WINDOW
    if since > until:
        return Page([])  # no time in the window, so no entry in it
    if entity_id and not entity_type:
        raise InvalidInput("query.entity_type", "is required with `entity_id`", code=FieldCode.MISSING)
    query = AuditQuery(
        since=since, until=until, entity_type=entity_type, entity_id=entity_id, actor=actor, window=window
    )
    return store.audit.search(query, limit=limit, cursor=cursor)
