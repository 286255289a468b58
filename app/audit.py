"""Building audit entries: who did what to which entity, with the fields that changed."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from app.changefeed.catalog import DEFAULT_RETENTION_DAYS, events_for
from app.observability import request_id_var
from app.storage.records import AuditEntry
from app.timeutil import time_ordered_id

# Never copied into audit entries: secrets, and bookkeeping that changes on every write.
_HIDDEN = frozenset({"password_hash", "version", "updated_at", "updated_by", "failed_logins", "locked_until"})


def changed_fields(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The before/after values of the fields that differ (all visible fields for a create or delete)."""
    if before is None or after is None:
        visible = {k: v for k, v in (before or after or {}).items() if k not in _HIDDEN}
        return (None, visible) if before is None else (visible, None)
    keys = sorted((set(before) | set(after)) - _HIDDEN)
    changed = [key for key in keys if before.get(key) != after.get(key)]
    return {key: before.get(key) for key in changed}, {key: after.get(key) for key in changed}


def audit_entry(
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str,
    at: datetime,
    retention_days: int,
    event_retention_days: int = DEFAULT_RETENTION_DAYS,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    diff: bool = True,
) -> AuditEntry:
    """The entry, with the events the change publishes (the store writes both with the change)."""
    old, new = changed_fields(before, after) if diff else (dict(before or {}) or None, dict(after or {}) or None)
    request_id = request_id_var.get()
    return AuditEntry(
        id=time_ordered_id(),
        at=at,
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        request_id=request_id,
        before=old,
        after=new,
        expires_at=at + timedelta(days=retention_days),
        events=events_for(
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            actor=actor,
            at=at,
            request_id=request_id,
            retention_days=event_retention_days,
            before=before,
            after=after,
        ),
    )
