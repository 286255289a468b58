"""Availability cost scales with the window, not with a resource's history.

Two resources with the same schedule on in-process DynamoDB (moto): one holding 10,000 bookings
spread over a year, one holding 10. Times `BookingService.availability` for one week of each
(median of the calls) and prints both and their ratio: ~1 means the week is read through the
index, not the year.

    python bench/availability.py [--calls 30] [--bookings 10000]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

from app.bookings.availability import slots_between  # noqa: E402
from app.bookings.schemas import ResourceCreate  # noqa: E402
from app.bookings.service import BookingService  # noqa: E402
from app.storage.cursor import CursorCodec  # noqa: E402
from app.storage.dynamodb.bookings import booking_item, slot_key  # noqa: E402
from app.storage.dynamodb.store import DynamoStore  # noqa: E402
from app.storage.records import BookingRecord, ResourceRecord  # noqa: E402
from app.timeutil import sortable  # noqa: E402
from tests.support import TEST_SECRET, make_settings  # noqa: E402

SCHEDULE = {day: [{"open": "08:00", "close": "20:00"}] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def seed(store: DynamoStore, resource: ResourceRecord, count: int, start: datetime, days: int) -> float:
    """Writes `count` bookings and their slot seat counts straight into the table (batch writes)."""
    began = time.perf_counter()
    slots = slots_between(resource, start, start + timedelta(days=days))
    rng = random.Random(7)
    taken: dict[datetime, int] = {}
    items = []
    for index in range(count):
        slot = rng.choice(slots)
        while taken.get(slot.start, 0) >= resource.capacity:
            slot = rng.choice(slots)
        taken[slot.start] = taken.get(slot.start, 0) + 1
        booking = BookingRecord(
            id=f"{resource.id}-{index:05d}",
            resource_id=resource.id,
            subscriber_uid=f"sub-{index:05d}",
            start=slot.start,
            end=slot.end,
            local_date=slot.local_start.date().isoformat(),
            created_by="bench",
            created_at=start,
            updated_at=start,
        )
        items.append(booking_item(booking))
    for slot_start, booked in taken.items():
        pk, sk = slot_key(resource.id, slot_start)
        items.append({"PK": pk, "SK": sk, "booked": booked, "start": sortable(slot_start), "resource_id": resource.id})
    store.table.batch_write(items)
    return time.perf_counter() - began


def time_calls(service: BookingService, resource_id: str, start: datetime, calls: int) -> tuple[float, int]:
    samples, slot_count = [], 0
    for _ in range(calls):
        began = time.perf_counter()
        _, slots = service.availability(resource_id, start, 7)
        samples.append(time.perf_counter() - began)
        slot_count = len(slots)
    return statistics.median(samples) * 1000, slot_count


def items_read(store: DynamoStore, resource_id: str, start: datetime) -> int:
    """Items DynamoDB reads for the week's seat counts (what a real table would bill)."""
    pk = slot_key(resource_id, start)[0]
    response = store.table.call(
        "query",
        TableName=store.table.name,
        KeyConditionExpression="PK = :pk AND SK BETWEEN :from AND :to",
        ExpressionAttributeValues={
            ":pk": {"S": pk},
            ":from": {"S": f"SLOT#{sortable(start)}"},
            ":to": {"S": f"SLOT#{sortable(start + timedelta(days=7))}"},
        },
    )
    return int(response["ScannedCount"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--bookings", type=int, default=10_000)
    args = parser.parse_args()
    settings = make_settings()
    with mock_aws():
        store = DynamoStore(
            boto3.client("dynamodb", region_name="eu-west-1"),
            "bench-availability",
            CursorCodec(TEST_SECRET.encode()),
            serialize_calls=True,
        )
        store.table.ensure_table()
        service = BookingService(store, settings, lambda uid: "ACTIVE")
        body = {"kind": "store", "timezone": "Europe/London", "slot_minutes": 30, "capacity": 2}
        busy = service.create_resource(
            "bench", ResourceCreate.model_validate({**body, "name": "busy", "weekly_schedule": SCHEDULE})
        )
        quiet = service.create_resource(
            "bench", ResourceCreate.model_validate({**body, "name": "quiet", "weekly_schedule": SCHEDULE})
        )
        year_start = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        seeded = seed(store, busy, args.bookings, year_start, 365)
        seed(store, quiet, 10, year_start, 365)
        week = year_start + timedelta(days=180)
        time_calls(service, busy.id, week, 3)  # warm-up
        busy_ms, busy_slots = time_calls(service, busy.id, week, args.calls)
        quiet_ms, quiet_slots = time_calls(service, quiet.id, week, args.calls)
        taken = sum(store.resources.seats_taken(busy.id, week, week + timedelta(days=7)).values())
        read_busy = items_read(store, busy.id, week)
        read_quiet = items_read(store, quiet.id, week)
    print(f"seeded:                 {args.bookings} bookings over 365 days in {seeded:.1f} s (batch writes)")
    print(f"calls per resource:     {args.calls} (median), window 7 days = {busy_slots} slots")
    print("note:                   in-process moto answers a Query in time proportional to the whole table,")
    print("                        so both timings carry that cost; the ratio and items read are the point")
    print(f"busy resource:          {busy_ms:7.2f} ms  ({args.bookings} bookings, {taken} seats taken in the week)")
    print(f"quiet resource:         {quiet_ms:7.2f} ms  (10 bookings, {quiet_slots} slots)")
    print(f"items read per call:    busy {read_busy}, quiet {read_quiet} (the week's slot items only)")
    print(f"ratio busy/quiet:       {busy_ms / quiet_ms:7.2f}  (~1: cost follows the window, not the history)")


if __name__ == "__main__":
    main()
