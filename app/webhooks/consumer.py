"""The webhooks' part of the change feed: the event consumer and the `webhooks-retry` task."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from app import events
from app.changefeed.relay import event_consumer
from app.runtime import Runtime
from app.storage.records import DomainEvent
from app.webhooks.deps import webhook_service_of

RETRY_TASK = "webhooks-retry"
# One run of the task stays well inside the function's timeout; what is left is due at the next run.
RETRY_BATCH = 200
RETRY_BUDGET_SECONDS = 120.0


@event_consumer("webhooks")
def deliver_event(event: DomainEvent, runtime: Runtime) -> None:
    """Idempotent per event id (one delivery per subscription, created only if new). A receiver's
    failure is its delivery's retry business; only a store failure raises, to be relayed again."""
    webhook_service_of(runtime).on_event(event)


@events.scheduled_task(RETRY_TASK)
def retry_due_deliveries(runtime: Runtime) -> dict[str, Any]:
    run = webhook_service_of(runtime).retry_due(limit=RETRY_BATCH, budget_seconds=RETRY_BUDGET_SECONDS)
    return {"task": RETRY_TASK, **asdict(run)}
