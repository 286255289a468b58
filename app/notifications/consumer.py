"""The notifications domain's entry points: a change-feed consumer and a scheduled task.

`app.changefeed.consumers` imports this module, which registers both: the consumer with the relay
(`notifications`), the task with the worker registry (`notifications-reminders`, run by the
Lambda schedule and the local sweeper). Both build the service on the process's `Runtime`, whose
`notifications.transport` and `notifications.clock` a test may `provide`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from app import events
from app.changefeed.relay import event_consumer
from app.notifications.service import NotificationService
from app.notifications.transport import Transport, create_transport
from app.runtime import Runtime
from app.storage.records import DomainEvent
from app.timeutil import utcnow

REMINDER_TASK = "notifications-reminders"


def notification_service(runtime: Runtime) -> NotificationService:
    transport: Transport = runtime.memo("notifications.transport", lambda: create_transport(runtime.settings))
    clock: Callable[[], datetime] = runtime.memo("notifications.clock", lambda: utcnow)
    return NotificationService(runtime.store, runtime.settings, transport, clock)


@event_consumer("notifications")
def consume(event: DomainEvent, runtime: Runtime) -> None:
    notification_service(runtime).handle_event(event)


@events.scheduled_task(REMINDER_TASK)
def send_reminders(runtime: Runtime) -> dict[str, Any]:
    return notification_service(runtime).send_due_reminders()
