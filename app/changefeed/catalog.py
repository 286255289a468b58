"""Every event type the product publishes, and the events a change publishes (one home).

The storage layer writes what `events_for` returns in the same atomic write as the change, so
the feed can't disagree with the data. Functions here are pure: they see the change's action and
its values before and after (JSON form, bookkeeping left out), nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from app.storage.records import DomainEvent
from app.timeutil import time_ordered_id

DATA_VERSION = 1
DEFAULT_RETENTION_DAYS = 7  # the event_retention_days setting's default

SUBSCRIBER_CREATED = "subscriber.created"
SUBSCRIBER_UPDATED = "subscriber.updated"
SUBSCRIBER_STATUS_CHANGED = "subscriber.status_changed"
SUBSCRIBER_DELETED = "subscriber.deleted"
BOOKING_CONFIRMED = "booking.confirmed"
BOOKING_CANCELLED = "booking.cancelled"
BOOKING_RESCHEDULED = "booking.rescheduled"
BOOKING_COMPLETED = "booking.completed"
BOOKING_NO_SHOW = "booking.no_show"
JOB_COMPLETED = "job.completed"
JOB_COMPLETED_WITH_ERRORS = "job.completed_with_errors"
JOB_FAILED = "job.failed"
JOB_CANCELLED = "job.cancelled"
USER_LOCKED = "user.locked"
USER_DISABLED = "user.disabled"

EVENT_TYPES: dict[str, str] = {
    SUBSCRIBER_CREATED: "A subscriber was created (through the API or an import row).",
    SUBSCRIBER_UPDATED: "Fields of a subscriber other than its status changed; `changed` names them.",
    SUBSCRIBER_STATUS_CHANGED: "A subscriber's status changed (ACTIVE, INACTIVE, SUSPENDED, TERMINATED).",
    SUBSCRIBER_DELETED: "A subscriber was deleted.",
    BOOKING_CONFIRMED: "A booking was made (bookings are confirmed when made).",
    BOOKING_CANCELLED: "A booking was cancelled.",
    BOOKING_RESCHEDULED: "A booking moved to another slot; `previous_start`/`previous_end` are the old slot.",
    BOOKING_COMPLETED: "A booking was marked completed.",
    BOOKING_NO_SHOW: "A booking was marked as a no-show.",
    JOB_COMPLETED: "A bulk job finished with every row done.",
    JOB_COMPLETED_WITH_ERRORS: "A bulk job finished; some rows failed (see its error report).",
    JOB_FAILED: "A bulk job stopped on an error.",
    JOB_CANCELLED: "A bulk job was cancelled.",
    USER_LOCKED: "A user was locked out after repeated failed logins.",
    USER_DISABLED: "An admin disabled a user.",
}

# Data keys whose value is a subscriber: masked for consumers without subscribers:unmasked.
SUBSCRIBER_VALUED_KEYS = ("subscriber",)

# Never part of a change's field names: bookkeeping that every write moves.
_BOOKKEEPING = frozenset({"version", "updated_at", "updated_by"})
_BOOKING_STATUS_EVENTS = {
    "booking.cancel": BOOKING_CANCELLED,
    "booking.completed": BOOKING_COMPLETED,
    "booking.no_show": BOOKING_NO_SHOW,
}


def events_for(
    *,
    action: str,
    entity_type: str,
    entity_id: str,
    actor: str,
    at: datetime,
    request_id: str | None,
    retention_days: int,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
) -> list[DomainEvent]:
    """The events a change publishes (none for changes no consumer is promised, e.g. resources)."""
    kinds = _event_data(action, entity_type, entity_id, before or {}, after or {})
    return [
        DomainEvent(
            id=time_ordered_id(),
            type=kind,
            at=at,
            subject=f"{entity_type}/{entity_id}",
            actor=actor,
            request_id=request_id,
            data_version=DATA_VERSION,
            data=data,
            expires_at=at + timedelta(days=retention_days),
        )
        for kind, data in kinds
    ]


def _event_data(
    action: str, entity_type: str, entity_id: str, before: Mapping[str, Any], after: Mapping[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    if entity_type == "subscriber":
        return _subscriber(action, entity_id, before, after)
    if entity_type == "booking":
        return _booking(action, before, after)
    if entity_type == "job" and action.startswith("job."):
        status = action.rsplit(".", 1)[-1]
        kind = f"job.{status}"
        return [(kind, {"job_id": entity_id, **after})] if kind in EVENT_TYPES else []
    if entity_type == "user":
        return _user(action, entity_id, before, after)
    return []


def _subscriber(
    action: str, uid: str, before: Mapping[str, Any], after: Mapping[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    if action == "subscriber.create":
        return [(SUBSCRIBER_CREATED, {"uid": uid, "subscriber": dict(after)})]
    if action == "subscriber.delete":
        return [(SUBSCRIBER_DELETED, {"uid": uid})]
    events: list[tuple[str, dict[str, Any]]] = []
    changed = sorted(k for k in set(before) | set(after) if k not in _BOOKKEEPING and before.get(k) != after.get(k))
    others = [name for name in changed if name != "status"]
    if others:
        events.append((SUBSCRIBER_UPDATED, {"uid": uid, "changed": others, "subscriber": dict(after)}))
    if "status" in changed:
        events.append(
            (
                SUBSCRIBER_STATUS_CHANGED,
                {
                    "uid": uid,
                    "from_status": before.get("status"),
                    "to_status": after.get("status"),
                    "subscriber": dict(after),
                },
            )
        )
    return events


def _booking(action: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    if action == "booking.create":
        return [(BOOKING_CONFIRMED, {"booking": dict(after)})]
    if action == "booking.reschedule":
        previous = {"previous_start": before.get("start"), "previous_end": before.get("end")}
        return [(BOOKING_RESCHEDULED, {"booking": dict(after), **previous})]
    kind = _BOOKING_STATUS_EVENTS.get(action)
    return [(kind, {"booking": dict(after), "from_status": before.get("status")})] if kind else []


def _user(
    action: str, username: str, before: Mapping[str, Any], after: Mapping[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    if action == "auth.locked":
        return [(USER_LOCKED, {"username": username, "locked_until": after.get("locked_until")})]
    if before.get("active") is True and after.get("active") is False:
        return [(USER_DISABLED, {"username": username})]
    return []
