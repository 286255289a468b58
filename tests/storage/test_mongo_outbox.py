"""MongoDB writes a change and its audit entry in one document update; recovery finishes interrupted copies."""

from __future__ import annotations

from datetime import timedelta

import mongomock
import pytest

from app.audit import audit_entry
from app.storage.cursor import CursorCodec
from app.storage.mongo import outbox
from app.storage.mongo.store import MongoStore
from app.timeutil import utcnow
from tests.storage.test_auth_contract import make_user


@pytest.fixture
def mongo(cursors: CursorCodec) -> MongoStore:
    return MongoStore(mongomock.MongoClient(tz_aware=True), "outbox_test", cursors)


def _entry(username: str, action: str, delay_ms: int = 0) -> object:
    # Entries within one millisecond have no defined order; the tests that compare order space them.
    at = utcnow() + timedelta(milliseconds=delay_ms)
    return audit_entry(actor="t", action=action, entity_type="user", entity_id=username, at=at, retention_days=1)


def test_interrupted_update_is_completed_by_recovery(mongo: MongoStore, cursors: CursorCodec) -> None:
    user = make_user("alice")
    mongo.users.create(user, _entry("alice", "user.create"))  # type: ignore[arg-type]
    # Simulate a crash right after the atomic update: the entry sits in the document, not yet copied.
    pending = outbox.pending(_entry("alice", "user.update", delay_ms=5))  # type: ignore[arg-type]
    mongo.db["users"].update_one({"_id": "alice"}, {"$set": {"full_name": "A"}, "$push": {outbox.PENDING: pending}})
    assert len(mongo.audit.list_for_entity("user", "alice", limit=10).items) == 1

    restarted = MongoStore(mongo.client, "outbox_test", cursors)  # recovery runs at start
    actions = [entry.action for entry in restarted.audit.list_for_entity("user", "alice", limit=10).items]
    assert actions == ["user.update", "user.create"]
    assert outbox.PENDING not in mongo.db["users"].find_one({"_id": "alice"})
    assert restarted.recover() == 0


def test_interrupted_delete_is_completed_by_recovery(mongo: MongoStore) -> None:
    user = make_user("alice")
    mongo.users.create(user, _entry("alice", "user.create"))  # type: ignore[arg-type]
    pending = outbox.pending(_entry("alice", "user.delete", delay_ms=5))  # type: ignore[arg-type]
    mongo.db["users"].update_one({"_id": "alice"}, {"$set": {outbox.DELETED: True}, "$push": {outbox.PENDING: pending}})
    assert mongo.users.get("alice") is None  # readers already ignore it
    assert mongo.recover() == 2
    assert mongo.db["users"].find_one({"_id": "alice"}) is None
    assert mongo.audit.list_for_entity("user", "alice", limit=10).items[0].action == "user.delete"


def test_copy_is_idempotent(mongo: MongoStore) -> None:
    user = make_user("alice")
    mongo.users.create(user, _entry("alice", "user.create"))  # type: ignore[arg-type]
    entry = mongo.audit.list_for_entity("user", "alice", limit=1).items[0]
    # The same pending entry again (a crash after the copy but before the unset): no duplicate.
    mongo.db["users"].update_one({"_id": "alice"}, {"$push": {outbox.PENDING: outbox.pending(entry)}})
    mongo.recover()
    assert len(mongo.audit.list_for_entity("user", "alice", limit=10).items) == 1
