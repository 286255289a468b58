"""On every backend: an event exists if and only if its change committed (docs/events.md).

The events ride in the change's own atomic write; a refused change writes none; an interrupted
write (MongoDB: between the document and the copy of its outbox entry) loses none; relaying takes
them out of the outbox once, oldest first.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.audit import audit_entry
from app.changefeed.catalog import SUBSCRIBER_CREATED, SUBSCRIBER_STATUS_CHANGED, SUBSCRIBER_UPDATED
from app.storage.base import StaleVersion, Store, ValueTaken
from app.storage.importing import ImportRow
from app.storage.mongo import outbox
from app.storage.mongo.store import MongoStore
from app.storage.records import SUBSCRIBER_BOOKKEEPING, AuditEntry, DomainEvent, SubscriberRecord, SubscriberStatus
from app.timeutil import utcnow
from tests.subscribers.support import record


def audited(action: str, before: SubscriberRecord | None, after: SubscriberRecord | None) -> AuditEntry:
    subject = after or before
    assert subject is not None
    return audit_entry(
        actor="tester",
        action=action,
        entity_type="subscriber",
        entity_id=subject.uid,
        at=utcnow(),
        retention_days=30,
        before=before.model_dump(mode="json", exclude=set(SUBSCRIBER_BOOKKEEPING)) if before else None,
        after=after.model_dump(mode="json", exclude=set(SUBSCRIBER_BOOKKEEPING)) if after else None,
    )


def types_of(events: list[DomainEvent]) -> list[str]:
    return [event.type for event in events]


def test_a_change_and_its_event_commit_together_and_relay_once(store: Store) -> None:
    subscriber = record(1)
    entry = audited("subscriber.create", None, subscriber)
    store.subscribers.create(subscriber, entry)

    pending = store.events.pending(limit=10)
    assert [(event.id, event.type, event.subject) for event in pending] == [
        (entry.events[0].id, SUBSCRIBER_CREATED, "subscriber/sub-0001")
    ]
    assert pending[0].data["subscriber"]["msisdn"] == subscriber.msisdn  # stored unmasked
    store.events.mark_relayed(pending)
    assert store.events.pending(limit=10) == []
    assert types_of(store.events.list_for_subject("subscriber/sub-0001", limit=10)) == [SUBSCRIBER_CREATED]


def test_a_refused_change_writes_no_event(store: Store) -> None:
    first = record(1)
    store.subscribers.create(first, audited("subscriber.create", None, first))
    with pytest.raises(ValueTaken):
        store.subscribers.create(record(1), audited("subscriber.create", None, record(1)))
    clash = record(2, msisdn=first.msisdn)  # another uid, the same msisdn
    with pytest.raises(ValueTaken):
        store.subscribers.create(clash, audited("subscriber.create", None, clash))
    stale = first.model_copy(update={"version": first.version + 5})
    suspended = stale.model_copy(update={"status": SubscriberStatus.SUSPENDED, "version": stale.version + 1})
    with pytest.raises(StaleVersion):
        store.subscribers.replace(stale, suspended, audited("subscriber.update", stale, suspended))

    assert types_of(store.events.pending(limit=10)) == [SUBSCRIBER_CREATED]
    assert store.events.list_for_subject("subscriber/sub-0002", limit=10) == []


def test_one_change_may_publish_several_events_all_or_none(store: Store) -> None:
    current = record(1)
    store.subscribers.create(current, audited("subscriber.create", None, current))
    updated = current.model_copy(
        update={"status": SubscriberStatus.SUSPENDED, "plan": current.plan + "-PLUS", "version": 2}
    )
    store.subscribers.replace(current, updated, audited("subscriber.update", current, updated))

    events = store.events.pending(limit=10)
    assert types_of(events) == [SUBSCRIBER_CREATED, SUBSCRIBER_UPDATED, SUBSCRIBER_STATUS_CHANGED]
    assert events[1].data["changed"] == ["plan"]
    assert (events[2].data["from_status"], events[2].data["to_status"]) == ("ACTIVE", "SUSPENDED")


def test_pending_events_come_oldest_first_and_can_be_bounded_by_age(store: Store) -> None:
    for n in range(1, 6):
        subscriber = record(n)
        store.subscribers.create(subscriber, audited("subscriber.create", None, subscriber))
    pending = store.events.pending(limit=10)
    assert [event.subject for event in pending] == [f"subscriber/sub-{n:04d}" for n in range(1, 6)]
    assert [event.id for event in pending] == sorted(event.id for event in pending)
    assert len(store.events.pending(limit=2)) == 2
    assert store.events.pending(limit=10, before=utcnow() - timedelta(hours=1)) == []
    assert len(store.events.pending(limit=10, before=utcnow() + timedelta(seconds=1))) == 5


def test_each_written_import_row_has_its_events_and_a_redone_batch_adds_none(store: Store) -> None:
    rows = [ImportRow(n, record(n, import_job_id="job-1", import_row=n)) for n in range(1, 4)]
    first = store.subscribers.import_batch(rows, mode="create", job_id="job-1")
    again = store.subscribers.import_batch(rows, mode="create", job_id="job-1")  # after a lost checkpoint

    assert {outcome.result for outcome in first + again} == {"created"}
    events = store.events.pending(limit=10)
    assert sorted(event.subject for event in events) == [f"subscriber/sub-{n:04d}" for n in range(1, 4)]
    assert set(types_of(events)) == {SUBSCRIBER_CREATED}


def test_an_upsert_row_that_changes_nothing_publishes_nothing(store: Store) -> None:
    current = record(1)
    store.subscribers.create(current, audited("subscriber.create", None, current))
    store.events.mark_relayed(store.events.pending(limit=10))
    same = current.model_copy(update={"import_job_id": "job-2", "import_row": 1})
    store.subscribers.import_batch([ImportRow(1, same)], mode="upsert", job_id="job-2")
    assert store.events.pending(limit=10) == []


def test_mongodb_a_crash_before_the_outbox_copy_loses_no_event(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    if not isinstance(store, MongoStore):
        pytest.skip("DynamoDB writes the event in the change's transaction: there is no step in between")
    subscriber = record(1)

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("process died here")

    with monkeypatch.context() as patched:
        patched.setattr(outbox, "copy_events", crash)
        with pytest.raises(RuntimeError):
            store.subscribers.create(subscriber, audited("subscriber.create", None, subscriber))
    assert store.subscribers.get("sub-0001") is not None  # the change committed
    assert store.events.pending(limit=10) == []  # its event is still in the document's outbox entry

    assert store.recover() >= 1  # what the next start (or the sweeper) does
    assert types_of(store.events.pending(limit=10)) == [SUBSCRIBER_CREATED]
    store.recover()
    assert len(store.events.list_for_subject("subscriber/sub-0001", limit=10)) == 1  # copied once
