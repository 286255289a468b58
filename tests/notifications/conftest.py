"""A booking world for notification tests: a resource in New York, subscribers, a settable clock,
and messages written as files under a temporary DATA_DIR (the local transport)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.bookings.schemas import BookingCreate, BookingReschedule, ResourceCreate
from app.changefeed.catalog import events_for
from app.config import Settings
from app.notifications.service import NotificationService
from app.notifications.transport import FileTransport, Transport
from app.storage.base import Store
from app.storage.records import BookingRecord, DomainEvent
from app.subscribers.schemas import parse_subscriber
from app.subscribers.service import SubscriberService
from tests.support import make_settings

EVERY_DAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
# 10:00 in New York (EST, UTC-5) three days from now: the slots open 08:00-18:00 local time.
DAY = (datetime.now(UTC) + timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
SLOT = DAY + timedelta(hours=15)


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    store: Store
    settings: Settings
    clock: Clock
    messages: Path
    transport: Transport
    subscribers: SubscriberService
    resource_id: str = ""
    count: int = 0
    sent: list[Any] = field(default_factory=list)

    @property
    def service(self) -> NotificationService:
        return NotificationService(self.store, self.settings, self.transport, self.clock)

    def add_subscriber(self, uid: str, **values: Any) -> None:
        self.count += 1
        data = {
            "uid": uid,
            "msisdn": f"+44791112{self.count:04d}",
            "imsi": f"23415{self.count:010d}",
            "email": f"{uid}@example.com",
            "first_name": "Jane",
            "last_name": "Doe",
            "status": "ACTIVE",
            "plan": "BASIC",
            **values,
        }
        self.subscribers.create("test", parse_subscriber(data, phone_region="GB"))

    def book(self, uid: str, start: datetime = SLOT) -> tuple[BookingRecord, DomainEvent]:
        booking, _ = self.subscribers.bookings.create_booking(
            "operator", BookingCreate(resource_id=self.resource_id, subscriber_uid=uid, start=start), None
        )
        return booking, event_of("booking.create", None, booking)

    def reschedule(self, booking: BookingRecord, start: datetime) -> tuple[BookingRecord, DomainEvent]:
        moved = self.subscribers.bookings.reschedule("operator", booking.id, BookingReschedule(start=start))
        return moved, event_of("booking.reschedule", booking, moved)

    def cancel(self, booking: BookingRecord) -> tuple[BookingRecord, DomainEvent]:
        cancelled = self.subscribers.bookings.cancel("operator", booking.id, "called in")
        return cancelled, event_of("booking.cancel", booking, cancelled)

    def files(self) -> list[Path]:
        return sorted(self.messages.glob("*.json")) if self.messages.exists() else []


def event_of(action: str, before: BookingRecord | None, after: BookingRecord) -> DomainEvent:
    """The event the change publishes, as the catalog derives it for the store to write."""
    (event,) = events_for(
        action=action,
        entity_type="booking",
        entity_id=after.id,
        actor="operator",
        at=after.updated_at,
        request_id=None,
        retention_days=7,
        before=before.model_dump(mode="json") if before else None,
        after=after.model_dump(mode="json"),
    )
    return event


@pytest.fixture
def world_factory(store: Store, tmp_path: Path) -> Callable[..., World]:
    def build(**overrides: Any) -> World:
        settings = make_settings(data_dir=str(tmp_path), **overrides)
        clock = Clock(datetime.now(UTC).replace(microsecond=0))
        messages = tmp_path / "messages"
        world = World(store, settings, clock, messages, FileTransport(messages), SubscriberService(store, settings))
        resource = world.subscribers.bookings.create_resource(
            "admin",
            ResourceCreate.model_validate(
                {
                    "name": "Fifth Avenue store",
                    "kind": "store",
                    "timezone": "America/New_York",
                    "slot_minutes": 30,
                    "capacity": 5,
                    "weekly_schedule": {day: [{"open": "08:00", "close": "18:00"}] for day in EVERY_DAY},
                }
            ),
        )
        world.resource_id = resource.id
        return world

    return build


@pytest.fixture
def world(world_factory: Callable[..., World]) -> World:
    return world_factory()
