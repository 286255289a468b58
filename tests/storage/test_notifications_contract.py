"""Message claims and reminder timers behave the same on every backend."""

from __future__ import annotations

from datetime import datetime, timedelta

from app.storage.base import Store
from app.storage.records import NotificationKind, NotificationRecord, NotificationStatus, ReminderTimer
from app.timeutil import utcnow

# Near the real time: MongoDB's TTL index (and mongomock's reads) drop what expired by the clock.
NOW = utcnow().replace(second=0, microsecond=0)


def claim_of(notification_id: str = "e1-confirmation", *, now: datetime = NOW) -> NotificationRecord:
    return NotificationRecord(
        id=notification_id,
        kind=NotificationKind.CONFIRMATION,
        booking_id="b1",
        subscriber_uid="s1",
        event_id="e1",
        claimed_at=now,
        lease_until=now + timedelta(minutes=5),
        expires_at=now + timedelta(days=90),
    )


def timer_of(booking_id: str, due: datetime, event_id: str) -> ReminderTimer:
    return ReminderTimer(
        booking_id=booking_id,
        due_at=due,
        start=due + timedelta(hours=24),
        event_id=event_id,
        expires_at=due + timedelta(days=30),
    )


def test_a_claim_is_taken_once(store: Store) -> None:
    first = store.notifications.claim(claim_of(), now=NOW)
    assert first is not None
    assert first.attempts == 1
    assert store.notifications.claim(claim_of(), now=NOW + timedelta(seconds=1)) is None
    stored = store.notifications.get("e1-confirmation")
    assert stored is not None
    assert stored.status is NotificationStatus.CLAIMED


def test_a_claim_whose_lease_ended_is_taken_again_and_a_final_one_never(store: Store) -> None:
    store.notifications.claim(claim_of(), now=NOW)
    later = NOW + timedelta(minutes=6)
    again = store.notifications.claim(claim_of(now=later), now=later)
    assert again is not None
    assert again.attempts == 2
    assert again.lease_until == later + timedelta(minutes=5)
    assert store.notifications.claim(claim_of(now=later), now=later) is None  # held by the second taker
    store.notifications.finish(again, NotificationStatus.SENT, now=later, channel="sms", destination="+44*******456")
    much_later = later + timedelta(hours=1)
    assert store.notifications.claim(claim_of(now=much_later), now=much_later) is None
    stored = store.notifications.get("e1-confirmation")
    assert stored is not None
    assert (stored.status, stored.channel, stored.destination) == (NotificationStatus.SENT, "sms", "+44*******456")
    # A late outcome of the first taker does not overwrite the recorded one.
    store.notifications.finish(again, NotificationStatus.FAILED, now=much_later, reason="late")
    assert store.notifications.get("e1-confirmation").status is NotificationStatus.SENT  # type: ignore[union-attr]


def test_a_released_claim_is_taken_again_at_once(store: Store) -> None:
    claimed = store.notifications.claim(claim_of(), now=NOW)
    assert claimed is not None
    store.notifications.release(claimed, now=NOW + timedelta(seconds=2), reason="throttled")
    again = store.notifications.claim(claim_of(now=NOW + timedelta(seconds=3)), now=NOW + timedelta(seconds=3))
    assert again is not None
    assert again.attempts == 2
    assert again.reason == "throttled"


def test_timers_are_read_by_due_time_across_partitions(store: Store) -> None:
    for index in range(12):
        assert store.reminders.schedule(timer_of(f"b{index:02d}", NOW + timedelta(minutes=index), f"e{index:02d}"))
    due = store.reminders.due(NOW + timedelta(minutes=5), limit=50)
    assert [timer.booking_id for timer in due] == [f"b{index:02d}" for index in range(6)]
    assert [timer.booking_id for timer in store.reminders.due(NOW + timedelta(minutes=20), limit=3)] == [
        "b00",
        "b01",
        "b02",
    ]
    assert store.reminders.due(NOW - timedelta(seconds=1), limit=50) == []


def test_a_timer_is_replaced_only_by_a_later_event(store: Store) -> None:
    assert store.reminders.schedule(timer_of("b1", NOW, "e2"))
    assert not store.reminders.schedule(timer_of("b1", NOW - timedelta(hours=5), "e1"))  # a late duplicate
    assert not store.reminders.schedule(timer_of("b1", NOW, "e2"))  # the same event again
    assert store.reminders.get("b1") == timer_of("b1", NOW, "e2")
    assert store.reminders.schedule(timer_of("b1", NOW + timedelta(hours=3), "e3"))
    moved = store.reminders.get("b1")
    assert moved is not None
    assert moved.due_at == NOW + timedelta(hours=3)
    assert [timer.booking_id for timer in store.reminders.due(NOW + timedelta(hours=1), limit=10)] == []
    assert [timer.event_id for timer in store.reminders.due(NOW + timedelta(hours=3), limit=10)] == ["e3"]


def test_cancel_and_remove_leave_a_later_events_timer(store: Store) -> None:
    store.reminders.schedule(timer_of("b1", NOW, "e5"))
    store.reminders.cancel("b1", event_id="e4")  # older than the timer: it stays
    assert store.reminders.get("b1") is not None
    store.reminders.remove(timer_of("b1", NOW, "e4"))  # not this timer
    assert store.reminders.get("b1") is not None
    store.reminders.cancel("b1", event_id="e6")
    assert store.reminders.get("b1") is None
    assert store.reminders.due(NOW, limit=10) == []
    store.reminders.schedule(timer_of("b2", NOW, "e7"))
    store.reminders.remove(timer_of("b2", NOW, "e7"))
    assert store.reminders.get("b2") is None
    store.reminders.cancel("nothing", event_id="e9")  # nothing stored: no error
