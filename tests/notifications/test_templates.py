"""Message texts: the slot in the resource's time zone, named; SMS within one segment; values cleaned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.notifications.templates import SMS_LIMIT, clean, render
from app.storage.records import BookingRecord, NotificationKind, ResourceKind, ResourceRecord

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def resource(name: str = "Fifth Avenue store", timezone: str = "America/New_York") -> ResourceRecord:
    return ResourceRecord(
        id="res-1",
        name=name,
        kind=ResourceKind.STORE,
        timezone=timezone,
        slot_minutes=30,
        capacity=1,
        weekly_schedule={},
        created_by="admin",
        created_at=NOW,
        updated_at=NOW,
    )


def booking(start: datetime) -> BookingRecord:
    return BookingRecord(
        id="3f1c0c7e0a4b4d8e9f2a1b3c4d5e6f70",
        resource_id="res-1",
        subscriber_uid="sub-1",
        start=start,
        end=start + timedelta(minutes=30),
        local_date=start.date().isoformat(),
        created_by="operator",
        created_at=NOW,
        updated_at=NOW,
    )


def test_the_slot_is_shown_in_the_resources_zone_with_its_name() -> None:
    winter = render(
        NotificationKind.CONFIRMATION,
        booking=booking(datetime(2026, 3, 3, 19, 30, tzinfo=UTC)),
        resource=resource(),
        first_name="Jane",
    )
    assert winter.subject == "Your appointment is booked: Tue 3 Mar, 14:30-15:00"
    assert "When:  Tuesday 3 March 2026, 14:30-15:00 EST (America/New_York)" in winter.body
    assert winter.body.startswith("Hello Jane,")
    assert winter.sms == "Booked: Fifth Avenue store, Tue 3 Mar 14:30 EST. Ref 3f1c0c7e"
    # After the change to daylight time the same UTC hour is an hour later on the wall.
    summer = render(
        NotificationKind.REMINDER,
        booking=booking(datetime(2026, 3, 10, 19, 30, tzinfo=UTC)),
        resource=resource(),
        first_name="Jane",
    )
    assert "Tuesday 10 March 2026, 15:30-16:00 EDT (America/New_York)" in summer.body
    assert summer.sms == "Reminder: Fifth Avenue store, Tue 10 Mar 15:30 EDT. Ref 3f1c0c7e"


def test_a_change_names_the_old_slot_too() -> None:
    moved = render(
        NotificationKind.CHANGE,
        booking=booking(datetime(2026, 7, 1, 8, 0, tzinfo=UTC)),
        resource=resource("Oxford Street", "Europe/London"),
        first_name="Sam",
        previous=(datetime(2026, 6, 30, 8, 0, tzinfo=UTC), datetime(2026, 6, 30, 8, 30, tzinfo=UTC)),
    )
    assert "When:  Wednesday 1 July 2026, 09:00-09:30 BST (Europe/London)" in moved.body
    assert "(was:  Tuesday 30 June 2026, 09:00-09:30 BST)" in moved.body
    assert moved.sms == "Moved: Oxford Street, now Wed 1 Jul 09:00 BST (was Tue 30 Jun 09:00). Ref 3f1c0c7e"


@pytest.mark.parametrize("kind", list(NotificationKind))
def test_every_kind_fits_one_sms_with_the_longest_names(kind: NotificationKind) -> None:
    message = render(
        kind,
        booking=booking(datetime(2026, 9, 30, 21, 30, tzinfo=UTC)),
        resource=resource("W" * 128, "America/Argentina/ComodRivadavia"),
        first_name="X" * 100,
        previous=(datetime(2026, 9, 29, 21, 30, tzinfo=UTC), datetime(2026, 9, 29, 22, 0, tzinfo=UTC)),
    )
    assert len(message.sms) <= SMS_LIMIT
    assert message.subject
    assert "$" not in message.body + message.subject + message.sms


def test_values_can_not_add_header_lines_or_control_characters() -> None:
    message = render(
        NotificationKind.CANCELLATION,
        booking=booking(datetime(2026, 3, 3, 19, 30, tzinfo=UTC)),
        resource=resource("Store\r\nBcc: victim@example.com\x00\u202e"),
        first_name="Jane\nX-Injected: 1",
    )
    assert "\r" not in message.subject + message.body
    assert "Hello Jane X-Injected: 1," in message.body
    assert "Where: Store Bcc: victim@example.com" in message.body
    assert "\x00" not in message.body
    assert "\u202e" not in message.body
    assert clean("a" * 200, limit=10) == "aaaaaaa..."


def test_a_resource_gone_or_with_an_unknown_zone_shows_utc() -> None:
    message = render(
        NotificationKind.REMINDER,
        booking=booking(datetime(2026, 3, 3, 19, 30, tzinfo=UTC)),
        resource=None,
        first_name="Jane",
    )
    assert "19:30-20:00 UTC (UTC)" in message.body
    assert "Where: res-1" in message.body
