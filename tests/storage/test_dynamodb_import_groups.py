"""DynamoDB only: how an import batch is packed into TransactWriteItems (docs/performance.md).

Each row's actions are built once; a transaction takes rows while its actions (the rows' plus one
counter ADD per counter key the group moves) stay within 100 and its items within 4 MB.
"""

from __future__ import annotations

from typing import Any

import pytest

from app.storage.dynamodb import subscribers as dynamo_subscribers
from app.storage.dynamodb.store import DynamoStore
from app.storage.dynamodb.table import TRANSACTION_LIMIT
from app.storage.importing import ImportRow
from app.storage.records import SubscriberStatus
from tests.subscribers.support import assert_consistent, audit_for, counts, record

STATUSES = (SubscriberStatus.ACTIVE, SubscriberStatus.SUSPENDED, SubscriberStatus.INACTIVE, SubscriberStatus.TERMINATED)
PLANS = ("GOLD", "SILVER", "BRONZE")
JOB = "job-1"


def rows(first: int, last: int) -> list[ImportRow]:
    """4 statuses x 3 plans: any 12 consecutive rows move 7 counter keys."""
    return [
        ImportRow(n, record(n, status=STATUSES[n % 4], plan=PLANS[n % 3], import_job_id=JOB, import_row=n))
        for n in range(first, last + 1)
    ]


def transactions(dynamo: DynamoStore, monkeypatch: pytest.MonkeyPatch) -> list[list[dict[str, Any]]]:
    sent: list[list[dict[str, Any]]] = []
    original = dynamo.table.call

    def recording_call(operation: str, **kwargs: Any) -> dict[str, Any]:
        if operation == "transact_write_items":
            sent.append(kwargs["TransactItems"])
        return original(operation, **kwargs)

    monkeypatch.setattr(dynamo.table, "call", recording_call)
    return sent


def test_each_row_is_built_once(dynamo: DynamoStore, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    original = dynamo_subscribers.subscriber_item

    def counting_item(subscriber: Any) -> dict[str, Any]:
        built.append(subscriber.uid)
        return original(subscriber)

    monkeypatch.setattr(dynamo_subscribers, "subscriber_item", counting_item)
    outcomes = dynamo.subscribers.import_batch(rows(1, 200), mode="create", job_id=JOB)

    assert [o.result for o in outcomes] == ["created"] * 200
    assert sorted(built) == sorted(f"sub-{n:04d}" for n in range(1, 201))


def test_transactions_are_full_hundred_action_groups(dynamo: DynamoStore, monkeypatch: pytest.MonkeyPatch) -> None:
    sent = transactions(dynamo, monkeypatch)
    dynamo.subscribers.import_batch(rows(1, 100), mode="create", job_id=JOB)

    # 23 rows x 4 items (subscriber, two claims, its event) + 7 counter keys = 99 actions, and a
    # 24th row would need 4 more; the last group holds the remaining 8 rows.
    assert [len(actions) for actions in sent] == [99, 99, 99, 99, 32 + 7]
    assert sum(1 for actions in sent for action in actions if "EVENT#" in str(action)) == 100
    assert counts(dynamo, "subscribers.status") == {status.value: 25 for status in STATUSES}
    assert_consistent(dynamo)


def test_counter_keys_that_cancel_out_take_no_action(dynamo: DynamoStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two upserts swapping their status and plan move no counter: the group carries no ADD for them."""
    first = record(1, status="ACTIVE", plan="GOLD")
    second = record(2, status="SUSPENDED", plan="SILVER")
    for subscriber in (first, second):
        dynamo.subscribers.create(subscriber, audit_for(subscriber))
    sent = transactions(dynamo, monkeypatch)
    swapped = [
        ImportRow(1, record(1, status="SUSPENDED", plan="SILVER", import_job_id=JOB, import_row=1)),
        ImportRow(2, record(2, status="ACTIVE", plan="GOLD", import_job_id=JOB, import_row=2)),
    ]

    assert [o.result for o in dynamo.subscribers.import_batch(swapped, mode="upsert", job_id=JOB)] == ["updated"] * 2
    # The two subscriber items and each row's two events (plan: updated; status: status_changed).
    assert [len(actions) for actions in sent] == [2 + 2 * 2]
    assert counts(dynamo, "subscribers.status") == {"ACTIVE": 1, "SUSPENDED": 1}
    assert_consistent(dynamo)


def test_a_group_stays_within_the_transaction_size_limit(dynamo: DynamoStore, monkeypatch: pytest.MonkeyPatch) -> None:
    sent = transactions(dynamo, monkeypatch)
    limit = 6_000  # a few subscriber items: the 4 MB of DynamoDB, scaled down to this test's items
    monkeypatch.setattr(dynamo_subscribers, "TRANSACTION_BYTES", limit)
    dynamo.subscribers.import_batch(rows(1, 40), mode="create", job_id=JOB)

    sizes = [sum(dynamo_subscribers.action_size(action) for action in actions) for actions in sent]
    assert len(sent) > 2
    assert all(size <= limit for size in sizes)
    assert all(len(actions) < TRANSACTION_LIMIT for actions in sent)
    assert sum(counts(dynamo, "subscribers.status").values()) == 40
    assert_consistent(dynamo)
