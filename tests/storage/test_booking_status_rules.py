"""The booking lifecycle rules live on `BookingStatus`: every backend asks the status, so a new
status needs only its enum value and its line in the table below."""

from __future__ import annotations

import pytest

from app.storage.records import BookingStatus

# status: (open, occupies_subscriber, holds_seat, counted)
RULES = {
    BookingStatus.CONFIRMED: (True, True, True, True),
    BookingStatus.CANCELLED: (False, False, False, False),
    BookingStatus.COMPLETED: (False, False, True, True),
    BookingStatus.NO_SHOW: (False, False, True, True),
}


def test_every_status_has_its_rules_pinned() -> None:
    assert set(RULES) == set(BookingStatus)


@pytest.mark.parametrize("status", list(BookingStatus))
def test_rules_of_each_status(status: BookingStatus) -> None:
    assert (status.open, status.occupies_subscriber, status.holds_seat, status.counted) == RULES[status]


@pytest.mark.parametrize("status", list(BookingStatus))
def test_a_booking_without_a_seat_keeps_its_subscriber_free(status: BookingStatus) -> None:
    """A released booking gives back its time with its seat: MongoDB's release marker relies on it."""
    if not status.holds_seat:
        assert not status.occupies_subscriber


@pytest.mark.parametrize(
    ("new", "time", "seat", "count"),
    [
        (BookingStatus.CANCELLED, True, True, True),
        (BookingStatus.COMPLETED, True, False, False),
        (BookingStatus.NO_SHOW, True, False, False),
        (BookingStatus.CONFIRMED, False, False, False),
    ],
)
def test_what_a_confirmed_booking_gives_back(new: BookingStatus, time: bool, seat: bool, count: bool) -> None:
    release = BookingStatus.CONFIRMED.release_to(new)
    assert (release.time, release.seat, release.count) == (time, seat, count)
    assert release.anything is (time or seat or count)
