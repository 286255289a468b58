"""Message claims (`notifications`) and reminder timers (`reminders`, indexed by due time).

A claim is an insert on the `_id` (the message's id): the unique `_id` lets exactly one worker in.
A timer's `_id` is its booking id; it is replaced only by a timer from a later event, the condition
and the write being one `replace_one` (a stored timer from a later event makes the upsert collide
with the `_id`, and nothing is written).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from app.storage.mongo import codec
from app.storage.records import NotificationRecord, NotificationStatus, ReminderTimer

_CLAIMED = NotificationStatus.CLAIMED.value


class MongoNotificationRepository:
    def __init__(self, db: Any) -> None:
        self.collection = db["notifications"]

    def claim(self, notification: NotificationRecord, *, now: datetime) -> NotificationRecord | None:
        try:
            self.collection.insert_one(codec.document(notification, "id"))
            return notification
        except DuplicateKeyError:
            pass
        document = self.collection.find_one_and_update(
            {"_id": notification.id, "status": _CLAIMED, "lease_until": {"$lte": now}},
            {"$set": {"lease_until": notification.lease_until, "claimed_at": now}, "$inc": {"attempts": 1}},
            return_document=ReturnDocument.AFTER,
        )
        return codec.load(NotificationRecord, document, "id") if document else None

    def get(self, notification_id: str) -> NotificationRecord | None:
        document = self.collection.find_one({"_id": notification_id})
        return codec.load(NotificationRecord, document, "id") if document else None

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
        changes: dict[str, Any] = {"status": status.value, "finished_at": now}
        for name, value in (
            ("channel", channel),
            ("destination", destination),
            ("reason", reason),
            ("provider_id", provider_id),
        ):
            if value is not None:
                changes[name] = value
        self.collection.update_one({"_id": claimed.id, "status": _CLAIMED}, {"$set": changes})

    def release(self, claimed: NotificationRecord, *, now: datetime, reason: str) -> None:
        self.collection.update_one(
            {"_id": claimed.id, "status": _CLAIMED}, {"$set": {"lease_until": now, "reason": reason}}
        )


class MongoReminderRepository:
    def __init__(self, db: Any) -> None:
        self.collection = db["reminders"]

    def schedule(self, timer: ReminderTimer) -> bool:
        try:
            self.collection.replace_one(
                {"_id": timer.booking_id, "event_id": {"$lt": timer.event_id}},
                codec.document(timer, "booking_id"),
                upsert=True,
            )
        except DuplicateKeyError:
            return False  # the stored timer is from this event or a later one
        return True

    def cancel(self, booking_id: str, *, event_id: str) -> None:
        self.collection.delete_one({"_id": booking_id, "event_id": {"$lt": event_id}})

    def get(self, booking_id: str) -> ReminderTimer | None:
        document = self.collection.find_one({"_id": booking_id})
        return codec.load(ReminderTimer, document, "booking_id") if document else None

    def due(self, now: datetime, *, limit: int) -> list[ReminderTimer]:
        documents = (
            self.collection.find({"due_at": {"$lte": now}})
            .sort([("due_at", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        return [codec.load(ReminderTimer, document, "booking_id") for document in documents]

    def remove(self, timer: ReminderTimer) -> None:
        self.collection.delete_one({"_id": timer.booking_id, "event_id": timer.event_id})
