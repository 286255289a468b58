"""DynamoDB only: the subscriber key design documented in docs/data-model.md, and no scans."""

from __future__ import annotations

from typing import Any

import pytest

from app.storage.base import ConditionFailed
from app.storage.dynamodb.store import DynamoStore
from app.storage.dynamodb.subscribers import SHARDS, shard_of
from app.storage.records import SubscriberStatus
from tests.subscribers.support import audit_for, record


def test_a_subscriber_is_one_item_plus_two_claims(dynamo: DynamoStore) -> None:
    subscriber = record(1, plan="GOLD", status="SUSPENDED")
    dynamo.subscribers.create(subscriber, audit_for(subscriber))
    items = {(item["PK"], item["SK"]): item for item in dynamo.table.scan_all()}
    shard = shard_of("sub-0001")
    item = items[("SUB#sub-0001", "SUBSCRIBER")]
    assert (item["GSI1PK"], item["GSI1SK"]) == (f"SUBS#{shard}", "sub-0001")
    assert (item["GSI2PK"], item["GSI2SK"]) == (f"SUBSTATUS#SUSPENDED#{shard}", "sub-0001")
    assert (item["GSI3PK"], item["GSI3SK"]) == (f"SUBPLAN#GOLD#{shard}", "SUSPENDED#sub-0001")
    assert (item["GSI4PK"], item["GSI4SK"]) == ("SUBEMAIL#person1@example.com", "sub-0001")
    assert items[(f"MSISDN#{subscriber.msisdn}", "CLAIM")]["uid"] == "sub-0001"
    assert items[(f"IMSI#{subscriber.imsi}", "CLAIM")]["uid"] == "sub-0001"
    no_email = record(2, email=None)
    dynamo.subscribers.create(no_email, audit_for(no_email))
    assert "GSI4PK" not in dynamo.table.get("SUB#sub-0002", "SUBSCRIBER")  # type: ignore[operator]


def test_uids_spread_over_every_shard() -> None:
    used = {shard_of(f"sub-{n:04d}") for n in range(64)}
    assert used == set(range(SHARDS))
    assert shard_of("sub-0001") == shard_of("sub-0001")


def test_no_request_path_scans_the_table(dynamo: DynamoStore, monkeypatch: pytest.MonkeyPatch) -> None:
    operations: list[str] = []
    original = dynamo.table.call

    def recording_call(operation: str, **kwargs: Any) -> dict[str, Any]:
        operations.append(operation)
        return original(operation, **kwargs)

    monkeypatch.setattr(dynamo.table, "call", recording_call)
    repository = dynamo.subscribers
    current = record(1)
    repository.create(current, audit_for(current))
    updated = current.model_copy(update={"version": 2, "msisdn": record(2).msisdn, "status": SubscriberStatus.INACTIVE})
    repository.replace(current, updated, audit_for(updated))
    repository.get("sub-0001")
    repository.get_by_msisdn(updated.msisdn)
    repository.get_by_imsi(updated.imsi)
    repository.find_by_email("person1@example.com", limit=5)
    repository.find_by_uid_prefix("sub", limit=5)
    for status in (None, SubscriberStatus.INACTIVE):
        for plan in (None, "GOLD"):
            repository.list(status=status, plan=plan, limit=5)
    repository.delete(updated, audit_for(updated))
    assert "scan" not in operations
    assert set(operations) == {"transact_write_items", "get_item", "query"}


def test_a_claim_that_does_not_match_its_subscriber_blocks_the_change(dynamo: DynamoStore) -> None:
    current = record(1)
    dynamo.subscribers.create(current, audit_for(current))
    dynamo.table.delete(f"MSISDN#{current.msisdn}", "CLAIM")  # damage done outside the repository
    updated = current.model_copy(update={"version": 2, "msisdn": record(2).msisdn})
    with pytest.raises(ConditionFailed, match="do not match"):
        dynamo.subscribers.replace(current, updated, audit_for(updated))
    assert dynamo.subscribers.get("sub-0001") == current
