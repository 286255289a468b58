"""Messages to subscribers on every backend: once per event, only to those who may get them, and
reminders from due-time timers on an injected clock. Messages go to local files here."""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from app.notifications.service import NotificationPending, Outcome, notification_id
from app.notifications.templates import RenderedMessage
from app.notifications.transport import FileTransport, MessageRefused
from app.storage.records import NotificationChannel, NotificationKind, NotificationStatus
from tests.notifications.conftest import SLOT, World


def read(path: Path) -> dict[str, str]:
    return json.loads(path.read_text())


def status_of(world: World, event_id: str, kind: NotificationKind) -> NotificationStatus | None:
    record = world.store.notifications.get(notification_id(event_id, kind))
    return record.status if record else None


def test_a_booking_gets_one_confirmation_in_a_private_file(world: World, caplog: pytest.LogCaptureFixture) -> None:
    world.add_subscriber("sub-1")
    booking, event = world.book("sub-1")
    with caplog.at_level(logging.INFO, logger="app.notifications"):
        assert world.service.handle_event(event) is Outcome.SENT
    (path,) = world.files()
    assert path.name == f"{event.id}-confirmation.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    message = read(path)
    assert message["channel"] == "email"
    assert message["to"] == "sub-1@example.com"
    assert message["subject"].startswith("Your appointment is booked")
    assert "Fifth Avenue store" in message["body"]
    assert booking.id in message["body"]
    # The log says a message was written, naming no address and quoting no text.
    logged = [(record.getMessage(), vars(record)) for record in caplog.records]
    assert any(text == "message written to a file instead of sent" for text, _ in logged)
    for text, values in logged:
        assert "sub-1@example.com" not in f"{text} {values}"
        assert "Fifth Avenue" not in f"{text} {values}"
    stored = world.store.notifications.get(notification_id(event.id, NotificationKind.CONFIRMATION))
    assert stored is not None
    assert stored.status is NotificationStatus.SENT
    assert stored.destination == "s***@example.com"
    assert stored.provider_id == path.name


def test_the_same_event_twice_sends_one_message(world: World) -> None:
    world.add_subscriber("sub-1")
    _, event = world.book("sub-1")
    assert world.service.handle_event(event) is Outcome.SENT
    assert world.service.handle_event(event) is Outcome.DONE_BEFORE
    assert len(world.files()) == 1


def test_other_events_are_not_this_domains(world: World) -> None:
    world.add_subscriber("sub-1")
    _, event = world.book("sub-1")
    assert world.service.handle_event(event.model_copy(update={"type": "booking.completed"})) is None
    assert world.files() == []


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"notifications_opt_out": True}, "opted_out"),
        ({"status": "SUSPENDED"}, "not_active"),
    ],
)
def test_no_message_to_whoever_may_not_get_one(world: World, values: dict[str, object], reason: str) -> None:
    world.add_subscriber("sub-1")
    booking, event = world.book("sub-1")
    _apply(world, "sub-1", values)  # after booking: who may get a message is read at send time
    assert world.service.handle_event(event) is Outcome.SKIPPED
    assert world.files() == []
    stored = world.store.notifications.get(notification_id(event.id, NotificationKind.CONFIRMATION))
    assert stored is not None
    assert (stored.status, stored.reason) == (NotificationStatus.SKIPPED, reason)
    assert world.store.reminders.get(booking.id) is not None  # it may still be sent if they opt back in


def _apply(world: World, uid: str, values: dict[str, object]) -> None:
    from app.subscribers.schemas import SubscriberPatch

    current = world.subscribers.get(uid)
    world.subscribers.patch("test", uid, SubscriberPatch.model_validate(values), frozenset({current.version}))


def test_no_contact_for_an_enabled_channel_sends_nothing(world_factory: Callable[..., World]) -> None:
    world = world_factory(notifications_channels="email")
    world.add_subscriber("sub-1", email=None)
    _, event = world.book("sub-1")
    assert world.service.handle_event(event) is Outcome.SKIPPED
    assert world.files() == []
    assert world.store.notifications.get(notification_id(event.id, NotificationKind.CONFIRMATION)).reason == (  # type: ignore[union-attr]
        "no_contact"
    )


def test_the_preferred_channel_is_used_and_sms_when_there_is_no_email(world: World) -> None:
    world.add_subscriber("sub-sms", notification_channel="sms")
    world.add_subscriber("sub-no-email", email=None)
    for uid in ("sub-sms", "sub-no-email"):
        _, event = world.book(uid, SLOT + timedelta(minutes=30 * world.count))
        world.service.handle_event(event)
    messages = [read(path) for path in world.files()]
    assert sorted(message["channel"] for message in messages) == ["sms", "sms"]
    for message in messages:
        assert message["to"].startswith("+44791112")
        assert len(message["text"]) <= 160
        assert "Fifth Avenue store" in message["text"]


def test_a_reminder_goes_at_the_configured_time_once(world_factory: Callable[..., World]) -> None:
    world = world_factory(notifications_reminder_lead_minutes=120)
    world.add_subscriber("sub-1")
    booking, event = world.book("sub-1")
    world.service.handle_event(event)
    due = booking.start - timedelta(minutes=120)
    world.clock.now = due - timedelta(seconds=1)
    assert world.service.send_due_reminders() == {}
    world.clock.now = due
    assert world.service.send_due_reminders() == {"sent": 1}
    world.clock.now = due + timedelta(minutes=5)
    assert world.service.send_due_reminders() == {}
    reminders = [read(path) for path in world.files() if path.name.endswith("-reminder.json")]
    assert len(reminders) == 1
    assert reminders[0]["subject"].startswith("Reminder: your appointment")
    assert world.store.reminders.get(booking.id) is None


def test_no_reminder_after_a_cancellation(world: World) -> None:
    world.add_subscriber("sub-1")
    booking, event = world.book("sub-1")
    world.service.handle_event(event)
    _, cancelled = world.cancel(booking)
    assert world.service.handle_event(cancelled) is Outcome.SENT
    assert world.store.reminders.get(booking.id) is None
    world.clock.now = booking.start
    assert world.service.send_due_reminders() == {}
    names = sorted(path.name.rsplit("-", 1)[1] for path in world.files())
    assert names == ["cancellation.json", "confirmation.json"]


def test_a_stale_timer_never_fires_even_if_the_cancellation_is_not_relayed_yet(world: World) -> None:
    world.add_subscriber("sub-1")
    booking, event = world.book("sub-1")
    world.service.handle_event(event)
    world.cancel(booking)  # its event is still on its way
    world.clock.now = booking.start - timedelta(hours=1)
    assert world.service.send_due_reminders() == {"stale": 1}
    assert world.store.reminders.get(booking.id) is None
    assert len(world.files()) == 1


def test_a_rescheduled_booking_is_reminded_of_its_new_slot(world_factory: Callable[..., World]) -> None:
    world = world_factory(notifications_reminder_lead_minutes=60)
    world.add_subscriber("sub-1")
    booking, event = world.book("sub-1")
    world.service.handle_event(event)
    moved, rescheduled = world.reschedule(booking, booking.start + timedelta(hours=2))
    assert world.service.handle_event(rescheduled) is Outcome.SENT
    change = read(next(path for path in world.files() if path.name.endswith("-change.json")))
    assert "(was:" in change["body"]
    # A late duplicate of the first event does not bring the old time back.
    world.service.handle_event(event)
    timer = world.store.reminders.get(booking.id)
    assert timer is not None
    assert timer.due_at == moved.start - timedelta(minutes=60)
    world.clock.now = booking.start - timedelta(minutes=60)
    assert world.service.send_due_reminders() == {}
    world.clock.now = moved.start - timedelta(minutes=60)
    assert world.service.send_due_reminders() == {"sent": 1}
    (reminder,) = [path for path in world.files() if path.name.endswith("-reminder.json")]
    assert reminder.name == f"{rescheduled.id}-reminder.json"


def test_a_booking_inside_the_lead_gets_no_reminder_and_loses_its_old_one(world_factory: Callable[..., World]) -> None:
    world = world_factory(notifications_reminder_lead_minutes=60)
    world.add_subscriber("sub-1")
    booking, event = world.book("sub-1", SLOT + timedelta(hours=4))
    world.service.handle_event(event)
    assert world.store.reminders.get(booking.id) is not None
    world.clock.now = booking.start - timedelta(hours=3)
    _, rescheduled = world.reschedule(booking, booking.start - timedelta(hours=2, minutes=30))
    world.service.handle_event(rescheduled)  # 30 minutes ahead, inside the 60-minute lead
    assert world.store.reminders.get(booking.id) is None
    world.clock.now = booking.start
    assert world.service.send_due_reminders() == {}


def test_reminders_off_with_a_lead_of_zero(world_factory: Callable[..., World]) -> None:
    world = world_factory(notifications_reminder_lead_minutes=0)
    world.add_subscriber("sub-1")
    booking, event = world.book("sub-1")
    world.service.handle_event(event)
    assert world.store.reminders.get(booking.id) is None


class FlakyTransport:
    """Fails the first `failures` sends (a provider outage), then writes files."""

    def __init__(self, folder: Path, failures: int, error: Exception) -> None:
        self.files = FileTransport(folder)
        self.failures = failures
        self.error = error
        self.calls = 0

    def send(self, channel: NotificationChannel, notification_id: str, to: str, message: RenderedMessage) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return self.files.send(channel, notification_id, to, message)


def test_a_failed_send_is_retried_by_the_relay_and_sent_once(world: World) -> None:
    world.transport = FlakyTransport(world.messages, 1, ConnectionError("SES unreachable"))
    world.add_subscriber("sub-1")
    _, event = world.book("sub-1")
    with pytest.raises(NotificationPending):
        world.service.handle_event(event)
    assert world.files() == []
    assert world.service.handle_event(event) is Outcome.SENT
    assert world.service.handle_event(event) is Outcome.DONE_BEFORE
    assert len(world.files()) == 1


def test_a_message_that_keeps_failing_ends_failed_and_lets_the_relay_go_on(world_factory: Callable[..., World]) -> None:
    world = world_factory(notifications_max_attempts=2)
    world.transport = FlakyTransport(world.messages, 99, ConnectionError("down"))
    world.add_subscriber("sub-1")
    _, event = world.book("sub-1")
    with pytest.raises(NotificationPending):
        world.service.handle_event(event)
    assert world.service.handle_event(event) is Outcome.FAILED
    assert status_of(world, event.id, NotificationKind.CONFIRMATION) is NotificationStatus.FAILED


def test_a_refused_message_fails_at_once(world: World) -> None:
    world.transport = FlakyTransport(world.messages, 99, MessageRefused("MessageRejected"))
    world.add_subscriber("sub-1")
    _, event = world.book("sub-1")
    assert world.service.handle_event(event) is Outcome.FAILED
    stored = world.store.notifications.get(notification_id(event.id, NotificationKind.CONFIRMATION))
    assert stored is not None
    assert stored.reason == "refused: MessageRejected"


def test_a_crashed_senders_claim_is_taken_over_after_its_lease(world_factory: Callable[..., World]) -> None:
    world = world_factory(notifications_claim_seconds=60)
    world.add_subscriber("sub-1")
    _, event = world.book("sub-1")

    class Crash(BaseException):
        """The process dies mid-send: nothing below it runs."""

    world.transport = FlakyTransport(world.messages, 1, Crash())  # type: ignore[arg-type]
    with pytest.raises(Crash):
        world.service.handle_event(event)
    assert status_of(world, event.id, NotificationKind.CONFIRMATION) is NotificationStatus.CLAIMED
    # The relay delivers the event again: within the lease the claim is held, so nothing is sent.
    world.clock.now += timedelta(seconds=30)
    with pytest.raises(NotificationPending):
        world.service.handle_event(event)
    assert world.files() == []
    world.clock.now += timedelta(seconds=31)
    assert world.service.handle_event(event) is Outcome.SENT
    assert len(world.files()) == 1


def test_a_late_relay_sends_nothing_about_a_slot_gone_by(world: World) -> None:
    world.add_subscriber("sub-1")
    booking, event = world.book("sub-1")
    world.clock.now = booking.end + timedelta(minutes=1)
    assert world.service.handle_event(event) is Outcome.SKIPPED
    assert world.files() == []


def test_switched_off_nothing_happens(world_factory: Callable[..., World]) -> None:
    world = world_factory(notifications_enabled=False)
    world.add_subscriber("sub-1")
    booking, event = world.book("sub-1")
    assert world.service.handle_event(event) is None
    assert world.store.reminders.get(booking.id) is None
    assert world.files() == []
