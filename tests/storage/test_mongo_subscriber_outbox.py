"""MongoDB only: subscriber writes interrupted between the document and its outbox copy are finished
by recovery, and counter deltas are applied exactly once however often a flush runs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app.storage.counting import subscriber_counter_deltas
from app.storage.cursor import CursorCodec
from app.storage.mongo import codec, outbox
from app.storage.mongo.store import MongoStore
from app.storage.records import SubscriberRecord
from tests.conftest import mongo_store
from tests.subscribers.support import assert_consistent, audit_for, counts, record
from tests.support import race

STATUS = "subscribers.status"


@pytest.fixture(params=["mongo", "mongo-real"])
def mongo(request: pytest.FixtureRequest, cursors: CursorCodec) -> Iterator[MongoStore]:
    stores = mongo_store(cursors, real=request.param == "mongo-real")
    store = next(stores)
    assert isinstance(store, MongoStore)
    yield store
    next(stores, None)


def _written_but_not_flushed(store: MongoStore, subscriber: SubscriberRecord) -> dict[str, Any]:
    """The state a crash right after the subscriber's insert leaves behind."""
    entry = outbox.pending(audit_for(subscriber), subscriber_counter_deltas(None, subscriber))
    store.db["subscribers"].insert_one({**codec.document(subscriber, "uid"), outbox.PENDING: [entry]})
    return entry


def _audit_ids(store: MongoStore) -> list[str]:
    return [document["_id"] for document in store.db["audit"].find()]


def test_recovery_finishes_an_interrupted_create_once(mongo: MongoStore) -> None:
    entry = _written_but_not_flushed(mongo, record(1))
    assert counts(mongo, STATUS) == {}
    assert mongo.recover() == 1
    assert counts(mongo, STATUS) == {"ACTIVE": 1}
    assert _audit_ids(mongo) == [entry["_id"]]
    assert "_counter_deltas" not in mongo.db["audit"].find_one({"_id": entry["_id"]})
    assert mongo.recover() == 0
    assert counts(mongo, STATUS) == {"ACTIVE": 1}
    assert_consistent(mongo)


def test_a_flush_interrupted_after_the_counters_does_not_count_twice(mongo: MongoStore) -> None:
    entry = _written_but_not_flushed(mongo, record(1))
    for change in entry["_counter_deltas"]:  # the crash came after the counter updates
        outbox.apply_counter_delta(mongo.db, entry["_id"], change["scope"], change["key"], change["delta"])
    mongo.recover()
    assert counts(mongo, STATUS) == {"ACTIVE": 1}
    assert counts(mongo, "subscribers.plan") == {"GOLD": 1}
    assert_consistent(mongo)


def test_recovery_finishes_an_interrupted_delete(mongo: MongoStore) -> None:
    subscriber = record(1)
    mongo.subscribers.create(subscriber, audit_for(subscriber))
    deletion = outbox.pending(audit_for(subscriber, "subscriber.delete"), subscriber_counter_deltas(subscriber, None))
    mongo.db["subscribers"].update_one(
        {"_id": subscriber.uid}, {"$set": {outbox.DELETED: True}, "$push": {outbox.PENDING: deletion}}
    )
    assert mongo.subscribers.get(subscriber.uid) is None  # readers already ignore it
    mongo.recover()
    assert mongo.db["subscribers"].count_documents({}) == 0
    assert counts(mongo, STATUS) == {}
    assert deletion["_id"] in _audit_ids(mongo)


def test_concurrent_flushes_of_one_document_apply_its_deltas_once(mongo: MongoStore) -> None:
    _written_but_not_flushed(mongo, record(1))
    race(8, lambda _: outbox.flush(mongo.db, "subscribers", "sub-0001"))
    assert counts(mongo, STATUS) == {"ACTIVE": 1}
    assert_consistent(mongo)


def test_a_late_repeat_of_an_applied_delta_is_ignored_even_after_reconciliation(mongo: MongoStore) -> None:
    entry = _written_but_not_flushed(mongo, record(1))
    mongo.recover()
    mongo.counters.increment(STATUS, {"ACTIVE": 5})
    mongo.subscribers.reconcile_counters(fix=True)
    for change in entry["_counter_deltas"]:  # a stalled flusher wakes up and repeats the entry
        outbox.apply_counter_delta(mongo.db, entry["_id"], change["scope"], change["key"], change["delta"])
    assert counts(mongo, STATUS) == {"ACTIVE": 1}


def test_applied_ids_kept_per_counter_are_bounded(mongo: MongoStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox, "APPLIED_IDS_KEPT", 3)
    for n in range(5):
        outbox.apply_counter_delta(mongo.db, f"entry-{n}", STATUS, "ACTIVE", 1)
    document = mongo.db["counters"].find_one({"_id": f"{STATUS}:ACTIVE"})
    assert document["n"] == 5
    assert document["applied"] == ["entry-2", "entry-3", "entry-4"]


def test_reconciliation_finishes_interrupted_writes_before_counting(mongo: MongoStore) -> None:
    _written_but_not_flushed(mongo, record(1))
    assert mongo.subscribers.reconcile_counters(fix=False) == []
    assert counts(mongo, STATUS) == {"ACTIVE": 1}
