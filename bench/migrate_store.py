"""Store-to-store copy (`portal migrate-store`'s engine): MongoDB (mongomock) -> DynamoDB (in-process moto).

Fills the source with subscribers and as many audit entries, copies them in batches (99 by default) and
verifies. Reports records/s for the copy and for the verification, and the DynamoDB write requests
per 1,000 records (counted with botocore `before-call.dynamodb.*` events) next to the floor: a
subscriber is 3 items written with claim conditions, so at most 33 fit in one TransactWriteItems
(30.3 per 1,000 subscribers); an audit entry is 1 item, 25 per BatchWriteItem (40 per 1,000).

Both stores are test doubles in this process (moto with its table backup made once per transaction,
see bench/import_moto.py), so the rates are theirs; the request counts carry over to AWS.

    python bench/migrate_store.py [--subscribers 2000] [--batch-size 99]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "eu-west-1"})

import boto3  # noqa: E402
import mongomock  # noqa: E402
from moto import mock_aws  # noqa: E402

from app.migration import store_copy  # noqa: E402
from app.storage.cursor import CursorCodec  # noqa: E402
from app.storage.dynamodb.store import DynamoStore  # noqa: E402
from app.storage.mongo.store import MongoStore  # noqa: E402
from app.storage.records import AuditEntry, SubscriberRecord, SubscriberStatus  # noqa: E402
from app.storage.transfer import entity  # noqa: E402
from app.timeutil import utcnow  # noqa: E402
from bench.import_moto import one_backup_per_transaction  # noqa: E402

CURSORS = CursorCodec(b"bench-secret-0123456789abcdef0123")


def fill(source: MongoStore, subscribers: int) -> int:
    now = utcnow()
    statuses = list(SubscriberStatus)
    records = []
    for n in range(subscribers):
        subscriber = SubscriberRecord(
            uid=f"sub-{n:07d}",
            msisdn=f"+4479{12 + n // 1_000_000:02d}{n % 1_000_000:06d}",
            imsi=str(234150000000000 + n),
            first_name=f"First{n % 97}",
            last_name=f"Last {n % 89}",
            status=statuses[n % 4],
            plan=("GOLD", "SILVER", "BRONZE")[n % 3],
            created_at=now,
            updated_at=now,
            created_by="legacy",
            updated_by="legacy",
        )
        audit = AuditEntry(
            id=f"audit-{n:07d}",
            at=now - timedelta(seconds=n),
            actor="legacy",
            action="subscriber.create",
            entity_type="subscriber",
            entity_id=subscriber.uid,
            after={"plan": subscriber.plan},
        )
        records += [entity("subscribers", subscriber), entity("audit", audit)]
    for start in range(0, len(records), 1000):
        assert source.transfer.write(records[start : start + 1000]) == []
    return len(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=store_copy.BATCH_SIZE)
    arguments = parser.parse_args()
    subscribers = arguments.subscribers
    one_backup_per_transaction()
    source = MongoStore(mongomock.MongoClient(tz_aware=True), "bench", CURSORS)
    records = fill(source, subscribers)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        target = DynamoStore(client, "bench-copy", CURSORS, serialize_calls=True)
        target.table.ensure_table()
        calls: Counter[str] = Counter()
        client.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.update([model.name]))
        state_path = Path(f"/tmp/bench-migrate-store-{os.getpid()}.json")  # noqa: S108 - scratch file
        started = time.perf_counter()
        state = store_copy.CopyState("bench source", "bench target")
        store_copy.copy(
            source.transfer,
            target.transfer,
            state,
            state_path,
            batch_size=arguments.batch_size,
            progress=lambda step, n: None,
        )
        copied = time.perf_counter() - started
        writes = dict(calls)
        started = time.perf_counter()
        verification = store_copy.verify(source.transfer, target.transfer, progress=lambda step, n: None)
        verified = time.perf_counter() - started
        state_path.unlink(missing_ok=True)
    assert verification.ok, verification.differences
    print(f"copied {records:,} records ({subscribers:,} subscribers + as many audit entries)")
    print(f"copy: {copied:.1f} s = {records / copied:,.0f} records/s; verify (both stores read): {verified:.1f} s")
    transactions, batches = writes.get("TransactWriteItems", 0), writes.get("BatchWriteItem", 0)
    print(f"DynamoDB requests of the copy: {writes}")
    print(
        f"per 1,000 subscribers: {1000 * transactions / subscribers:.1f} TransactWriteItems (floor 30.3); "
        f"per 1,000 audit entries: {1000 * batches / subscribers:.1f} BatchWriteItem (floor 40.0)"
    )


if __name__ == "__main__":
    main()
