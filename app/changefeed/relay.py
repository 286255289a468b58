"""Relaying committed events: to the event bus (when there is one), then to every consumer.

At least once, in order per subject: a subject whose event could not be relayed holds back its
later events until the next attempt, and a consumer may see an event again after a failure, so
every consumer de-duplicates by event id. Two sources call `relay`: the DynamoDB Streams handler
(AWS) and `drain` (the store's outbox: MongoDB, and DynamoDB without a stream).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from app.runtime import Runtime
from app.storage.records import DomainEvent

logger = logging.getLogger("app.changefeed")

# (event, runtime): idempotent per event.id; raises to have the event relayed again later.
EventConsumer = Callable[[DomainEvent, Runtime], None]
event_consumers: dict[str, EventConsumer] = {}


class EventPublisher(Protocol):
    def publish(self, events: Sequence[DomainEvent]) -> set[str]:
        """Publish to the bus; returns the ids of the events that could not be published."""
        ...


def event_consumer(name: str) -> Callable[[EventConsumer], EventConsumer]:
    """Register a consumer of every relayed event (webhooks, notifications)."""

    def register(consumer: EventConsumer) -> EventConsumer:
        event_consumers[name] = consumer
        return consumer

    return register


def relay(events: Sequence[DomainEvent], runtime: Runtime, publisher: EventPublisher | None) -> list[str]:
    """Relay `events` (oldest first); returns the ids relayed, which excludes every event of a
    subject from its first failure on."""
    failed_subjects: set[str] = set()
    unpublished = publisher.publish(events) if publisher is not None and events else set()
    relayed: list[str] = []
    for event in events:
        if event.subject in failed_subjects:
            continue
        if event.id in unpublished or not _consumed(event, runtime):
            failed_subjects.add(event.subject)
            continue
        relayed.append(event.id)
    return relayed


def _consumed(event: DomainEvent, runtime: Runtime) -> bool:
    for name, consumer in event_consumers.items():
        try:
            consumer(event, runtime)
        except Exception:
            logger.exception(
                "event consumer failed", extra={"consumer": name, "event_id": event.id, "type": event.type}
            )
            return False
    return True
