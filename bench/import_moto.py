"""End-to-end subscriber import into in-process moto DynamoDB, through the job engine.

Creates the job with the migration service, stores a generated CSV (see import_data.py) as its
input and runs it inline. Reports rows/s and the DynamoDB write requests per 1,000 rows, counted
with botocore's `before-call.dynamodb.*` events, next to the minimum the design allows.

Each imported row is 3 items (subscriber + msisdn claim + imsi claim) that must be written
atomically with their uniqueness conditions, so BatchWriteItem (no conditions) can't be used:
the floor is transactions of at most 100 actions, i.e. 3 x rows / (100 - counter actions) calls.
With 4 statuses x 3 plans here, a transaction carries up to 7 counter ADDs, so 31 rows (93 + 7
actions) per transaction: 32.3 TransactWriteItems per 1,000 rows, + 1 BatchGetItem per 100 rows
(the existing subscribers of a batch are read first, for modes and resumes).

moto's TransactWriteItems backs up the table before applying a transaction, to undo it on a failed
condition, but it deep-copies the whole table once per *action*: 100 copies for a 100-action
transaction, ~3 s each here (1,000 rows took over 280 s). This benchmark makes that backup one
copy per table per transaction (`one_backup_per_transaction`): the same backup, since nothing
writes between the copies. Each transaction still copies the whole table, so moto's time grows
with the square of the rows: 10,000 rows take ~6 minutes and 100,000 would take hours. The rate is
moto's, not DynamoDB's; the request counts are what carries over to AWS.

    python bench/import_moto.py [--rows 1000]
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "eu-west-1"})

import boto3  # noqa: E402
import moto.dynamodb.models  # noqa: E402
from moto import mock_aws  # noqa: E402
from moto.dynamodb.models import DynamoDBBackend  # noqa: E402

from app.auth.service import Principal  # noqa: E402
from app.migration.schemas import SubscriberImportJobCreate  # noqa: E402
from app.migration.service import JobService  # noqa: E402
from app.migration.worker import InlineDispatcher  # noqa: E402
from app.runtime import Runtime  # noqa: E402
from app.storage.blobs import LocalBlobStore  # noqa: E402
from app.storage.cursor import CursorCodec  # noqa: E402
from app.storage.dynamodb.store import DynamoStore  # noqa: E402
from app.storage.records import Role  # noqa: E402
from bench.import_data import MAPPING, write  # noqa: E402
from tests.support import make_settings  # noqa: E402


class _BackupOnce:
    """Stands in for the `copy` module inside moto's DynamoDB models: while a transaction runs, every
    deep copy of the same object is the first one (moto copies the table once per action)."""

    def __init__(self) -> None:
        self.copies: dict[int, Any] | None = None

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        if self.copies is None:
            return copy.deepcopy(value, memo)
        if id(value) not in self.copies:
            self.copies[id(value)] = copy.deepcopy(value)
        return self.copies[id(value)]


def one_backup_per_transaction() -> None:
    backup = _BackupOnce()
    transact = DynamoDBBackend.transact_write_items

    def transact_with_one_backup(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        backup.copies = {}
        try:
            transact(self, transact_items)
        finally:
            backup.copies = None

    moto.dynamodb.models.copy = backup  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = transact_with_one_backup  # type: ignore[method-assign]


def run(rows: int) -> dict[str, Any]:
    with mock_aws(), tempfile.TemporaryDirectory() as folder:
        client = boto3.client("dynamodb", region_name="eu-west-1")
        store = DynamoStore(
            client, "bench-import", CursorCodec(b"bench-secret-0123456789abcdef0123"), serialize_calls=True
        )
        store.table.ensure_table()
        calls: Counter[str] = Counter()
        client.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.update([model.name]))
        runtime = Runtime(make_settings(), store)
        runtime.provide("blobs", LocalBlobStore(Path(folder) / "files"))
        runtime.provide("job_dispatcher", InlineDispatcher(runtime))
        principal = Principal(username="bench", role=Role.ADMIN)
        request = SubscriberImportJobCreate.model_validate({"type": "import", "format": "csv", "mapping": MAPPING})
        job = JobService(runtime).create_job(principal, request)
        assert job.input_key is not None
        runtime.blobs.put_file(job.input_key, write(Path(folder) / "in.csv", rows), content_type="text/csv")
        calls.clear()
        started = time.perf_counter()
        JobService(runtime).start(job)
        elapsed = time.perf_counter() - started
        done = store.jobs.get(job.id)
        assert done is not None
    writes = {
        name: n
        for name, n in calls.items()
        if name in ("TransactWriteItems", "BatchWriteItem", "PutItem", "UpdateItem")
    }
    return {"rows": rows, "seconds": elapsed, "counts": done.counts, "calls": dict(calls), "writes": writes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1000)
    one_backup_per_transaction()
    result = run(parser.parse_args().rows)
    rows = result["rows"]
    print(f"imported {rows:,} rows in {result['seconds']:.1f} s = {rows / result['seconds']:,.0f} rows/s")
    print(f"job counts: {result['counts'].model_dump()}")
    print(f"DynamoDB calls during the job: {result['calls']}")
    transactions = result["calls"].get("TransactWriteItems", 0)
    print(
        f"TransactWriteItems per 1,000 rows: {1000 * transactions / rows:.1f} "
        f"(floor with 7 counter keys: {1000 / 31:.1f}; 3 items/row / 25 per BatchWriteItem would be "
        f"{3 * 1000 / 25:.0f} but can't carry the uniqueness conditions)"
    )
    other = sum(result["writes"].values()) - transactions
    print(f"other write requests (job record, checkpoints, audit): {other} = {1000 * other / rows:.1f} per 1,000 rows")


if __name__ == "__main__":
    main()
