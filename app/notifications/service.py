"""Messages to subscribers about their bookings: what is sent when, to whom, and once.

- `booking.confirmed` / `booking.rescheduled` / `booking.cancelled`: a confirmation / change /
  cancellation at once; the first two also (re)schedule the booking's reminder, a cancellation
  removes it. A booking already inside the reminder lead gets no reminder (its confirmation or
  change message, just sent, carries the time) and loses any timer for its old slot.
- `notifications-reminders` (scheduled): sends the reminders whose timers are due, each only if
  the booking is still open at the slot the timer was set for.

Once per event: each message has a claim whose id is `<event id>-<kind>`, created with a
condition. A second delivery of the event finds it and sends nothing. A claim held by a sender
that crashed before recording the outcome is taken over after NOTIFICATIONS_CLAIM_SECONDS (the
relay delivers the event again; a due timer stays until its reminder is settled): the one case
where a message may go twice is a crash after the provider accepted it and before it was recorded.

Who gets a message is decided at send time, from the store (the event is a snapshot): an ACTIVE
subscriber who has not opted out, on their channel (or the other one if they lack its contact).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from app.changefeed.catalog import BOOKING_CANCELLED, BOOKING_CONFIRMED, BOOKING_RESCHEDULED
from app.config import Settings
from app.notifications.templates import render
from app.notifications.transport import MessageRefused, Transport, masked_destination
from app.storage.base import Store
from app.storage.records import (
    BookingRecord,
    DomainEvent,
    NotificationChannel,
    NotificationKind,
    NotificationRecord,
    NotificationStatus,
    ReminderTimer,
    SubscriberRecord,
    SubscriberStatus,
)

logger = logging.getLogger("app.notifications")

EVENT_KINDS = {
    BOOKING_CONFIRMED: NotificationKind.CONFIRMATION,
    BOOKING_RESCHEDULED: NotificationKind.CHANGE,
    BOOKING_CANCELLED: NotificationKind.CANCELLATION,
}
# Kept for support questions ("was it sent?"); holds no contact detail or text. A claim must also
# outlive every redelivery of its event, so it is kept at least a day past the event retention.
NOTIFICATION_RETENTION = timedelta(days=90)
# A timer outlives its slot by this much at most (the store's TTL), whatever became of it.
TIMER_RETENTION = timedelta(days=7)
REMINDER_BATCH = 100


class Outcome(StrEnum):
    SENT = "sent"
    SKIPPED = "skipped"
    FAILED = "failed"
    DONE_BEFORE = "done_before"  # an earlier delivery of the event settled it
    HELD = "held"  # claimed by another sender, still within its lease
    RETRY = "retry"  # the send failed and may pass later

    @property
    def settled(self) -> bool:
        return self not in (Outcome.HELD, Outcome.RETRY)


class NotificationPending(Exception):
    """Raised to the relay: the event's message is not settled yet, relay it again later."""


def notification_id(event_id: str, kind: NotificationKind) -> str:
    return f"{event_id}-{kind.value}"


class NotificationService:
    def __init__(self, store: Store, settings: Settings, transport: Transport, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.settings = settings
        self.transport = transport
        self.clock = clock

    # --- events ------------------------------------------------------------------------------------

    def handle_event(self, event: DomainEvent) -> Outcome | None:
        """The messages of one relayed event (None: not a booking event this domain answers)."""
        kind = EVENT_KINDS.get(event.type)
        if kind is None or not self.settings.notifications_enabled:
            return None
        booking = BookingRecord.model_validate(event.data["booking"])
        if kind is NotificationKind.CANCELLATION:
            self.store.reminders.cancel(booking.id, event_id=event.id)
        else:
            self._schedule_reminder(booking, event.id)
        previous = _previous_slot(event.data) if kind is NotificationKind.CHANGE else None
        outcome = self.deliver(kind, event.id, booking, previous=previous)
        if not outcome.settled:
            raise NotificationPending(f"{notification_id(event.id, kind)}: {outcome.value}")
        return outcome

    def _schedule_reminder(self, booking: BookingRecord, event_id: str) -> None:
        lead = timedelta(minutes=self.settings.notifications_reminder_lead_minutes)
        due = booking.start - lead
        if not lead or due <= self.clock():
            # No reminder for this slot; one set for an earlier slot must not fire either.
            self.store.reminders.cancel(booking.id, event_id=event_id)
            return
        self.store.reminders.schedule(
            ReminderTimer(
                booking_id=booking.id,
                due_at=due,
                start=booking.start,
                event_id=event_id,
                expires_at=booking.end + TIMER_RETENTION,
            )
        )

    # --- reminders ---------------------------------------------------------------------------------

    def send_due_reminders(self, *, limit: int = REMINDER_BATCH) -> dict[str, int]:
        """One batch of due timers (the schedule runs again for the rest); counts per outcome."""
        counts: Counter[str] = Counter()
        if not self.settings.notifications_enabled:
            return {}
        for timer in self.store.reminders.due(self.clock(), limit=limit):
            booking = self.store.bookings.get(timer.booking_id)
            if booking is None or not booking.status.open or booking.start != timer.start:
                # Cancelled, marked or moved since (a move's timer replaced this one, or is on its way).
                self.store.reminders.remove(timer)
                counts["stale"] += 1
                continue
            try:
                outcome = self.deliver(NotificationKind.REMINDER, timer.event_id, booking)
            except Exception:
                logger.exception("reminder failed", extra={"booking_id": timer.booking_id})
                counts["error"] += 1
                continue
            if outcome.settled:
                self.store.reminders.remove(timer)
            counts[outcome.value] += 1
        return dict(counts)

    # --- one message -------------------------------------------------------------------------------

    def deliver(
        self,
        kind: NotificationKind,
        event_id: str,
        booking: BookingRecord,
        *,
        previous: tuple[datetime, datetime] | None = None,
    ) -> Outcome:
        """Claim, decide, send and record one message; sends nothing for a claim already taken."""
        now = self.clock()
        identifier = notification_id(event_id, kind)
        claimed = self.store.notifications.claim(
            NotificationRecord(
                id=identifier,
                kind=kind,
                booking_id=booking.id,
                subscriber_uid=booking.subscriber_uid,
                event_id=event_id,
                claimed_at=now,
                lease_until=now + timedelta(seconds=self.settings.notifications_claim_seconds),
                expires_at=now + max(NOTIFICATION_RETENTION, timedelta(days=self.settings.event_retention_days + 1)),
            ),
            now=now,
        )
        if claimed is None:
            existing = self.store.notifications.get(identifier)
            return Outcome.HELD if existing is not None and not existing.status.final else Outcome.DONE_BEFORE
        subscriber = self.store.subscribers.get(booking.subscriber_uid)
        reason = self._reason_not_to_send(booking, subscriber, now)
        route = self.route(subscriber) if subscriber is not None and reason is None else None
        if subscriber is None or route is None:
            reason = reason or "no_contact"
            self.store.notifications.finish(claimed, NotificationStatus.SKIPPED, now=now, reason=reason)
            logger.info("notification skipped", extra=_log(claimed, reason=reason))
            return Outcome.SKIPPED
        channel, to = route
        destination = masked_destination(channel, to)
        message = render(
            kind,
            booking=booking,
            resource=self.store.resources.get(booking.resource_id),
            first_name=subscriber.first_name,
            previous=previous,
        )
        try:
            provider_id = self.transport.send(channel, identifier, to, message)
        except MessageRefused as exc:
            self.store.notifications.finish(
                claimed,
                NotificationStatus.FAILED,
                now=self.clock(),
                channel=channel,
                destination=destination,
                reason=f"refused: {exc}"[:200],
            )
            logger.warning("notification refused", extra=_log(claimed, channel=channel, destination=destination))
            return Outcome.FAILED
        except Exception:
            logger.exception("notification send failed", extra=_log(claimed, channel=channel, destination=destination))
            if claimed.attempts >= self.settings.notifications_max_attempts:
                self.store.notifications.finish(
                    claimed,
                    NotificationStatus.FAILED,
                    now=self.clock(),
                    channel=channel,
                    destination=destination,
                    reason="send_failed",
                )
                return Outcome.FAILED
            self.store.notifications.release(claimed, now=self.clock(), reason="send_failed")
            return Outcome.RETRY
        self.store.notifications.finish(
            claimed,
            NotificationStatus.SENT,
            now=self.clock(),
            channel=channel,
            destination=destination,
            provider_id=provider_id,
        )
        logger.info("notification sent", extra=_log(claimed, channel=channel, destination=destination))
        return Outcome.SENT

    def _reason_not_to_send(
        self, booking: BookingRecord, subscriber: SubscriberRecord | None, now: datetime
    ) -> str | None:
        if booking.end <= now:
            return "slot_over"  # a late relay: a message about a slot gone by is noise
        if subscriber is None:
            return "no_subscriber"
        if subscriber.status is not SubscriberStatus.ACTIVE:
            return "not_active"
        if subscriber.notifications_opt_out:
            return "opted_out"
        return None

    def route(self, subscriber: SubscriberRecord) -> tuple[NotificationChannel, str] | None:
        """The channel and address: the subscriber's choice (else the default), or the other
        channel when that one is off or they lack its contact; None if neither works."""
        preferred = subscriber.notification_channel or NotificationChannel(self.settings.notifications_default_channel)
        order = [preferred, *(channel for channel in NotificationChannel if channel is not preferred)]
        for channel in order:
            if channel.value not in self.settings.notification_channels:
                continue
            address = subscriber.email if channel is NotificationChannel.EMAIL else subscriber.msisdn
            if address:
                return channel, address
        return None


def _previous_slot(data: dict[str, Any]) -> tuple[datetime, datetime] | None:
    start, end = data.get("previous_start"), data.get("previous_end")
    if not isinstance(start, str) or not isinstance(end, str):
        return None
    return datetime.fromisoformat(start), datetime.fromisoformat(end)


def _log(claimed: NotificationRecord, **fields: Any) -> dict[str, Any]:
    values = {
        "notification_id": claimed.id,
        "kind": claimed.kind.value,
        "booking_id": claimed.booking_id,
        "attempt": claimed.attempts,
        **fields,
    }
    return {name: value.value if isinstance(value, StrEnum) else value for name, value in values.items()}
