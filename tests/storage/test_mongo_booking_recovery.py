"""MongoDB books in several single-document steps: recovery undoes or finishes a step a crash interrupted,
and a claim that loses an upsert race to another first claim is not refused."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import mongomock
import pytest
from pymongo.errors import DuplicateKeyError

from app.storage.cursor import CursorCodec
from app.storage.mongo.bookings import CLAIMING, MOVING, RELEASING
from app.storage.mongo.store import MongoStore
from app.timeutil import utcnow
from tests.storage.test_bookings_contract import add_resource, at, book, make_booking, seats


@pytest.fixture
def mongo(cursors: CursorCodec) -> MongoStore:
    return MongoStore(mongomock.MongoClient(tz_aware=True), "recovery_test", cursors)


def test_interrupted_create_is_undone(mongo: MongoStore) -> None:
    add_resource(mongo, capacity=1)
    book(mongo, make_booking("b1", at(10)))
    # As if the process died after taking the seat and the time, before the booking was made visible.
    mongo.db["bookings"].update_one({"_id": "b1"}, {"$set": {CLAIMING: utcnow() - timedelta(minutes=5)}})
    assert mongo.bookings.get("b1") is None
    assert mongo.bookings.recover(older_than=utcnow() - timedelta(seconds=60)) == 1
    assert mongo.db["bookings"].find_one({"_id": "b1"}) is None
    assert seats(mongo) == {}
    book(mongo, make_booking("b2", at(10)))  # seat and subscriber time are free again


def test_recent_writes_are_left_to_the_process_making_them(mongo: MongoStore) -> None:
    add_resource(mongo, capacity=1)
    book(mongo, make_booking("b1", at(10)))
    mongo.db["bookings"].update_one({"_id": "b1"}, {"$set": {CLAIMING: utcnow()}})
    assert mongo.bookings.recover(older_than=utcnow() - timedelta(seconds=60)) == 0
    assert seats(mongo) == {at(10): 1}


def test_interrupted_move_gives_back_the_new_slot(mongo: MongoStore) -> None:
    add_resource(mongo, capacity=1)
    booking = make_booking("b1", at(10))
    book(mongo, booking)
    target = make_booking("b1", at(12))
    # The move had marked the booking and taken the new seat and time, then died.
    mongo.db["bookings"].update_one(
        {"_id": "b1"},
        {"$set": {MOVING: {"start": target.start, "end": target.end, "at": utcnow() - timedelta(minutes=5)}}},
    )
    mongo.db["slots"].update_one(
        {"_id": f"res1#{at(12).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}"},
        {"$inc": {"booked": 1}, "$push": {"holders": "b1"}, "$set": {"resource_id": "res1", "start": at(12)}},
        upsert=True,
    )
    assert seats(mongo) == {at(10): 1, at(12): 1}
    assert mongo.recover() >= 1
    assert seats(mongo) == {at(10): 1}
    assert mongo.bookings.get("b1") == booking


def test_an_interrupted_cancel_marked_before_the_time_flag_still_frees_the_time(mongo: MongoStore) -> None:
    """A `_releasing` marker as written before it said whether it frees the time: it always did."""
    add_resource(mongo, capacity=1)
    booking = make_booking("b1", at(10))
    book(mongo, booking)
    # The cancel wrote the booking and its marker, then died before giving anything back.
    old_marker = {"start": booking.start, "end": booking.end, "free_seat": True, "uncount": booking.local_date}
    mongo.db["bookings"].update_one(
        {"_id": "b1"},
        {"$set": {"status": "CANCELLED", "updated_at": utcnow() - timedelta(minutes=5), RELEASING: old_marker}},
    )
    assert mongo.bookings.recover(older_than=utcnow() - timedelta(seconds=60)) == 1
    assert seats(mongo) == {}
    assert mongo.counters.get_keys("bookings.day", [booking.local_date]) == {booking.local_date: 0}
    book(mongo, make_booking("b2", at(10)))  # the seat and the subscriber's time are free again


class _LosesTheFirstUpsert:
    """A collection whose first upsert loses a race: another writer's upsert created the document
    first, so MongoDB reports a duplicate key (it does not retry upserts whose filter is not an
    equality on `_id`). Every other call goes to the real collection."""

    def __init__(self, collection: Any, rival: dict[str, Any]) -> None:
        self.collection = collection
        self.rival: dict[str, Any] | None = rival

    def update_one(self, filter: dict[str, Any], update: dict[str, Any], upsert: bool = False) -> Any:
        if upsert and self.rival is not None:
            self.collection.insert_one({"_id": filter["_id"], **self.rival})
            self.rival = None
            raise DuplicateKeyError("E11000 duplicate key error collection: _id_ dup key")
        return self.collection.update_one(filter, update, upsert=upsert)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.collection, name)


def test_the_first_seat_of_an_empty_slot_survives_a_racing_first_seat(mongo: MongoStore) -> None:
    add_resource(mongo, capacity=2)
    rival = {"booked": 1, "holders": ["rival"], "resource_id": "res1", "start": at(10)}
    mongo.bookings.slots = _LosesTheFirstUpsert(mongo.db["slots"], rival)
    book(mongo, make_booking("b1", at(10)))
    assert seats(mongo) == {at(10): 2}


def test_the_first_booking_of_a_day_survives_a_racing_first_booking(mongo: MongoStore) -> None:
    add_resource(mongo, capacity=2)
    rival = {"intervals": [{"booking_id": "rival", "start": at(8), "end": at(9)}], "expires_at": at(48)}
    mongo.bookings.busy = _LosesTheFirstUpsert(mongo.db["subscriber_busy"], rival)
    book(mongo, make_booking("b1", at(10)))
    assert mongo.bookings.get("b1") is not None
