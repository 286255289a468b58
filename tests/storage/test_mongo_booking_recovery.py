"""MongoDB books in several single-document steps: recovery undoes or finishes a step a crash interrupted."""

from __future__ import annotations

from datetime import timedelta

import mongomock
import pytest

from app.storage.cursor import CursorCodec
from app.storage.mongo.bookings import CLAIMING, MOVING
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
