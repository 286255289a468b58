from __future__ import annotations

from datetime import timedelta
from typing import Any

from app.storage.base import Readiness
from app.storage.cursor import CursorCodec
from app.storage.mongo import database, outbox
from app.storage.mongo.audit import MongoAuditRepository
from app.storage.mongo.bookings import MongoBookingRepository, MongoResourceRepository
from app.storage.mongo.counters import MongoCounterRepository
from app.storage.mongo.events import MongoEventRepository
from app.storage.mongo.jobs import MongoJobRepository
from app.storage.mongo.notifications import MongoNotificationRepository, MongoReminderRepository
from app.storage.mongo.sessions import MongoSessionRepository
from app.storage.mongo.subscribers import MongoSubscriberRepository
from app.storage.mongo.throttle import MongoThrottleRepository
from app.storage.mongo.transfer import MongoTransfer
from app.storage.mongo.users import MongoUserRepository
from app.storage.mongo.webhooks import MongoWebhookRepository
from app.timeutil import utcnow

# Booking writes younger than this may still be running in another process: recovery leaves them alone.
INTERRUPTED_AFTER = timedelta(seconds=60)


class MongoStore:
    backend = "mongo"

    def __init__(self, client: Any, database_name: str, cursors: CursorCodec, *, owns_client: bool = False) -> None:
        # A client the caller made (a test's, a tool's) is the caller's to close.
        self.client = client
        self.owns_client = owns_client
        self.db = client[database_name]
        database.ensure_indexes(self.db)
        self.audit = MongoAuditRepository(self.db, cursors)
        self.counters = MongoCounterRepository(self.db)
        self.events = MongoEventRepository(self.db)
        self.throttle = MongoThrottleRepository(self.db)
        self.notifications = MongoNotificationRepository(self.db)
        self.reminders = MongoReminderRepository(self.db)
        self.users = MongoUserRepository(self.db, cursors)
        self.sessions = MongoSessionRepository(self.db)
        self.jobs = MongoJobRepository(self.db, cursors, self.counters)
        self.resources = MongoResourceRepository(self.db, cursors)
        self.bookings = MongoBookingRepository(self.db, cursors)
        self.subscribers = MongoSubscriberRepository(self.db, cursors)
        self.webhooks = MongoWebhookRepository(self.db, cursors)
        self.transfer = MongoTransfer(self.db)
        self.recover()

    def recover(self) -> int:
        """Finish writes interrupted between a change and the copy of its audit entry."""
        repaired = self.bookings.recover(older_than=utcnow() - INTERRUPTED_AFTER)
        return repaired + sum(outbox.recover(self.db, name) for name in database.AUDITED_COLLECTIONS)

    def readiness(self) -> Readiness:
        return database.readiness(self.db)

    def close(self) -> None:
        if self.owns_client:
            self.client.close()
