"""Publishing committed events to the EventBridge bus (EVENT_BUS_NAME): the relay's `EventPublisher`.

One entry per event: Source EVENT_BUS_SOURCE, DetailType the event type, Detail the event's
envelope as EVENT_BUS_ROLE sees it (masked for viewer, the default), Time the event's time.
PutEvents takes at most 10 entries and 256 KB per request, so events go in batches that fit both;
an entry that alone is over the limit is never sent (logged, reported unpublished). Entries the
bus refused (FailedEntryCount) are sent again after a short backoff, a few times, then reported
unpublished: the relay holds back their subject and the stream (or the outbox drain) brings them
back later.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from app.changefeed.envelope import envelope
from app.runtime import Runtime
from app.storage.records import DomainEvent, Role

logger = logging.getLogger("app.changefeed.bus")

MAX_ENTRIES_PER_REQUEST = 10
MAX_REQUEST_BYTES = 256 * 1024  # entries and requests alike, as EventBridge counts them
ENTRY_TIME_BYTES = 14  # what a Time field counts for, whatever its value
ATTEMPTS = 4
FIRST_BACKOFF_SECONDS = 0.1
# No PutEvents call starts after this long: a stream batch (and its invocation, 60 s) must not
# spend its time on a bus that is down. What is left counts as unpublished and comes back later.
BUDGET_SECONDS = 20.0


class BusClient(Protocol):
    """PutEvents to one bus (`app.aws.EventBridgeBus`): one result per entry, in order."""

    def put(self, entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]: ...


def entry_size(entry: dict[str, Any]) -> int:
    """An entry's size as EventBridge counts it against the 256 KB limit."""
    size = ENTRY_TIME_BYTES if "Time" in entry else 0
    for field in ("Source", "DetailType", "Detail"):
        size += len(str(entry.get(field, "")).encode())
    return size + sum(len(resource.encode()) for resource in entry.get("Resources", []))


class EventBridgePublisher:
    def __init__(
        self,
        bus: BusClient,
        *,
        source: str,
        role: Role,
        attempts: int = ATTEMPTS,
        first_backoff: float = FIRST_BACKOFF_SECONDS,
        budget: float = BUDGET_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bus = bus
        self.source = source
        self.role = role
        self.attempts = attempts
        self.first_backoff = first_backoff
        self.budget = budget
        self.sleep = sleep
        self.clock = clock

    def entry(self, event: DomainEvent) -> dict[str, Any]:
        return {
            "Time": event.at,
            "Source": self.source,
            "DetailType": event.type,
            "Detail": json.dumps(envelope(event, self.role), separators=(",", ":"), ensure_ascii=False),
        }

    def publish(self, events: Sequence[DomainEvent]) -> set[str]:
        unpublished: set[str] = set()
        waiting: list[tuple[str, dict[str, Any]]] = []
        for event in events:
            try:
                entry = self.entry(event)
            except (TypeError, ValueError):  # data that is not JSON: a bug upstream, never sent half-made
                logger.exception("event not publishable", extra={"event_id": event.id, "type": event.type})
                unpublished.add(event.id)
                continue
            size = entry_size(entry)
            if size > MAX_REQUEST_BYTES:
                logger.error(
                    "event over the bus entry limit, not published",
                    extra={"event_id": event.id, "type": event.type, "bytes": size},
                )
                unpublished.add(event.id)
                continue
            waiting.append((event.id, entry))

        backoff = self.first_backoff
        give_up_at = self.clock() + self.budget
        for attempt in range(1, self.attempts + 1):
            refused: list[tuple[str, dict[str, Any]]] = []
            for batch in _batches(waiting):
                if self.clock() >= give_up_at:
                    refused.extend(batch)
                    continue
                results = self.bus.put([entry for _, entry in batch])
                for item, result in zip(batch, results, strict=True):
                    if "EventId" in result:
                        continue
                    refused.append(item)
                    logger.warning(
                        "bus refused an event entry",
                        extra={"event_id": item[0], "error_code": result.get("ErrorCode"), "attempt": attempt},
                    )
            waiting = refused
            if not waiting or attempt == self.attempts or self.clock() + backoff >= give_up_at:
                break
            self.sleep(backoff)
            backoff *= 2
        if waiting:
            logger.error(
                "events not published after retries", extra={"event_ids": [event_id for event_id, _ in waiting]}
            )
        return unpublished | {event_id for event_id, _ in waiting}


def _batches(entries: list[tuple[str, dict[str, Any]]]) -> list[list[tuple[str, dict[str, Any]]]]:
    """Consecutive runs of entries (order kept) of at most 10 and 256 KB each."""
    batches: list[list[tuple[str, dict[str, Any]]]] = []
    current: list[tuple[str, dict[str, Any]]] = []
    current_bytes = 0
    for item in entries:
        size = entry_size(item[1])
        if current and (len(current) == MAX_ENTRIES_PER_REQUEST or current_bytes + size > MAX_REQUEST_BYTES):
            batches.append(current)
            current, current_bytes = [], 0
        current.append(item)
        current_bytes += size
    if current:
        batches.append(current)
    return batches


def event_publisher(runtime: Runtime) -> EventBridgePublisher | None:
    """The process's bus publisher, built on first use; None without EVENT_BUS_NAME."""
    return runtime.memo("event_publisher", lambda: _create_publisher(runtime))


def _create_publisher(runtime: Runtime) -> EventBridgePublisher | None:
    settings = runtime.settings
    if not settings.event_bus_name:
        return None
    from app.aws import EventBridgeBus

    bus = EventBridgeBus(settings.event_bus_name, region=settings.aws_region)
    return EventBridgePublisher(bus, source=settings.event_bus_source, role=Role(settings.event_bus_role))
