from __future__ import annotations

from typing import Any

from app.storage.base import Readiness
from app.storage.cursor import CursorCodec
from app.storage.dynamodb.audit import DynamoAuditRepository
from app.storage.dynamodb.bookings import DynamoBookingRepository, DynamoResourceRepository
from app.storage.dynamodb.counters import DynamoCounterRepository
from app.storage.dynamodb.events import DynamoEventRepository
from app.storage.dynamodb.jobs import DynamoJobRepository
from app.storage.dynamodb.notifications import DynamoNotificationRepository, DynamoReminderRepository
from app.storage.dynamodb.sessions import DynamoSessionRepository
from app.storage.dynamodb.subscribers import DynamoSubscriberRepository
from app.storage.dynamodb.table import DynamoTable
from app.storage.dynamodb.throttle import DynamoThrottleRepository
from app.storage.dynamodb.transfer import DynamoTransfer
from app.storage.dynamodb.users import DynamoUserRepository
from app.storage.dynamodb.webhooks import DynamoWebhookRepository


class DynamoStore:
    backend = "dynamodb"

    def __init__(self, client: Any, table_name: str, cursors: CursorCodec, *, serialize_calls: bool = False) -> None:
        self.table = DynamoTable(client, table_name, cursors, serialize_calls=serialize_calls)
        self.audit = DynamoAuditRepository(self.table)
        self.counters = DynamoCounterRepository(self.table)
        self.events = DynamoEventRepository(self.table)
        self.throttle = DynamoThrottleRepository(self.table)
        self.notifications = DynamoNotificationRepository(self.table)
        self.reminders = DynamoReminderRepository(self.table)
        self.users = DynamoUserRepository(self.table)
        self.sessions = DynamoSessionRepository(self.table)
        self.jobs = DynamoJobRepository(self.table)
        self.resources = DynamoResourceRepository(self.table)
        self.bookings = DynamoBookingRepository(self.table)
        self.subscribers = DynamoSubscriberRepository(self.table)
        self.webhooks = DynamoWebhookRepository(self.table)
        self.transfer = DynamoTransfer(self.table)

    def readiness(self) -> Readiness:
        return self.table.readiness()

    def close(self) -> None:
        """boto3 clients hold no resources that need closing."""
