"""Message claims and reminder timers in the single table (see docs/data-model.md).

A claim is one item per message (`NOTIFICATION#<id>`), created with `attribute_not_exists`: who
creates it sends the message. A reminder timer is one item per booking (`REMINDER#<booking id>`)
that also sits, while it exists, in a GSI1 partition `REMINDERDUE#<shard>` sorted by due time, so
the reminder task reads only what is due, from a few partitions, and never a booking.
"""

from __future__ import annotations

import heapq
import zlib
from datetime import datetime, timedelta
from typing import Any

from app.storage.base import REMINDER_SHARDS, ConditionFailed
from app.storage.dynamodb.codec import dump, load
from app.storage.dynamodb.schema import GSI1
from app.storage.dynamodb.table import DynamoTable
from app.storage.records import NotificationRecord, NotificationStatus, ReminderTimer
from app.timeutil import epoch_seconds, sortable

NOTIFICATION_SK = "NOTIFICATION"
REMINDER_SK = "REMINDER"
_CLAIMED = NotificationStatus.CLAIMED.value


def notification_key(notification_id: str) -> tuple[str, str]:
    return f"NOTIFICATION#{notification_id}", NOTIFICATION_SK


def notification_item(notification: NotificationRecord) -> dict[str, Any]:
    pk, sk = notification_key(notification.id)
    return {
        "PK": pk,
        "SK": sk,
        "type": "notification",
        "ttl": epoch_seconds(notification.expires_at),
        **dump(notification),
        # Compared as text in a condition: fixed-width, so text order is time order.
        "lease_until": sortable(notification.lease_until),
    }


def reminder_key(booking_id: str) -> tuple[str, str]:
    return f"REMINDER#{booking_id}", REMINDER_SK


def reminder_shard(booking_id: str) -> int:
    """Stable across processes (unlike `hash`): a timer's index partition never moves."""
    return zlib.crc32(booking_id.encode()) % REMINDER_SHARDS


def reminder_item(timer: ReminderTimer) -> dict[str, Any]:
    pk, sk = reminder_key(timer.booking_id)
    return {
        "PK": pk,
        "SK": sk,
        "type": "reminder",
        "GSI1PK": f"REMINDERDUE#{reminder_shard(timer.booking_id)}",
        "GSI1SK": f"{sortable(timer.due_at)}#{timer.booking_id}",
        "ttl": epoch_seconds(timer.expires_at),
        **dump(timer),
    }


class DynamoNotificationRepository:
    def __init__(self, table: DynamoTable) -> None:
        self.table = table

    def claim(self, notification: NotificationRecord, *, now: datetime) -> NotificationRecord | None:
        try:
            self.table.put(notification_item(notification), condition="attribute_not_exists(PK)")
            return notification
        except ConditionFailed:
            pass
        try:
            item = self.table.update(
                *notification_key(notification.id),
                "SET lease_until = :lease, claimed_at = :now, attempts = attempts + :one",
                condition="#status = :claimed AND lease_until <= :now",
                names={"#status": "status"},
                values={
                    ":lease": sortable(notification.lease_until),
                    ":now": sortable(now),
                    ":one": 1,
                    ":claimed": _CLAIMED,
                },
            )
        except ConditionFailed:
            return None  # held by another worker, or already final
        return load(NotificationRecord, item)

    def get(self, notification_id: str) -> NotificationRecord | None:
        item = self.table.get(*notification_key(notification_id))
        return load(NotificationRecord, item) if item else None

    def finish(
        self,
        claimed: NotificationRecord,
        status: NotificationStatus,
        *,
        now: datetime,
        channel: str | None = None,
        destination: str | None = None,
        reason: str | None = None,
        provider_id: str | None = None,
    ) -> None:
        values: dict[str, Any] = {":status": status.value, ":now": sortable(now), ":claimed": _CLAIMED}
        assignments = ["#status = :status", "finished_at = :now"]
        for name, value in (
            ("channel", channel),
            ("destination", destination),
            ("reason", reason),
            ("provider_id", provider_id),
        ):
            if value is not None:
                assignments.append(f"{name} = :{name}")
                values[f":{name}"] = value
        try:
            self.table.update(
                *notification_key(claimed.id),
                "SET " + ", ".join(assignments),
                condition="#status = :claimed",
                names={"#status": "status"},
                values=values,
            )
        except ConditionFailed:
            pass  # already final (or expired): the first outcome stands

    def release(self, claimed: NotificationRecord, *, now: datetime, reason: str) -> None:
        try:
            self.table.update(
                *notification_key(claimed.id),
                "SET lease_until = :now, reason = :reason",
                condition="#status = :claimed",
                names={"#status": "status"},
                values={":now": sortable(now), ":reason": reason, ":claimed": _CLAIMED},
            )
        except ConditionFailed:
            pass


class DynamoReminderRepository:
    def __init__(self, table: DynamoTable) -> None:
        self.table = table

    def schedule(self, timer: ReminderTimer) -> bool:
        try:
            self.table.put(
                reminder_item(timer),
                condition="attribute_not_exists(PK) OR event_id < :event",
                values={":event": timer.event_id},
            )
        except ConditionFailed:
            return False
        return True

    def cancel(self, booking_id: str, *, event_id: str) -> None:
        try:
            self.table.delete(
                *reminder_key(booking_id),
                condition="attribute_exists(PK) AND event_id < :event",
                values={":event": event_id},
            )
        except ConditionFailed:
            pass  # none, or one from a later event

    def get(self, booking_id: str) -> ReminderTimer | None:
        item = self.table.get(*reminder_key(booking_id))
        return load(ReminderTimer, item) if item else None

    def due(self, now: datetime, *, limit: int) -> list[ReminderTimer]:
        # The bound sorts after every `<due>#<booking id>` whose due time is at most `now`.
        bound = sortable(now + timedelta(microseconds=1))
        shards = []
        for shard in range(REMINDER_SHARDS):
            items, _ = self.table.query_page(
                scope=f"REMINDERDUE#{shard}",
                partition=f"REMINDERDUE#{shard}",
                index=GSI1,
                limit=limit,
                sort_condition="#sk < :bound",
                values={":bound": bound},
            )
            shards.append(items)
        merged = heapq.merge(*shards, key=lambda item: str(item["GSI1SK"]))
        return [load(ReminderTimer, item) for item, _ in zip(merged, range(limit), strict=False)]

    def remove(self, timer: ReminderTimer) -> None:
        try:
            self.table.delete(
                *reminder_key(timer.booking_id),
                condition="event_id = :event",
                values={":event": timer.event_id},
            )
        except ConditionFailed:
            pass  # replaced by a later event's timer (or gone): that one stays
