"""Contract tests of `SubscriberRepository.import_batch`, on every backend."""

from __future__ import annotations

from typing import Any

import pytest

from app.storage.base import Store
from app.storage.importing import ImportMode, ImportRow
from app.storage.records import SubscriberRecord, SubscriberStatus
from tests.subscribers.support import assert_consistent, audit_for, counts, imsi, msisdn, record

STATUS, PLAN = "subscribers.status", "subscribers.plan"
JOB = "job-1"


def imported(n: int, row: int | None = None, job: str = JOB, **overrides: Any) -> ImportRow:
    line = n if row is None else row
    return ImportRow(line, record(n, import_job_id=job, import_row=line, **overrides))


def results(store: Store, rows: list[ImportRow], mode: ImportMode = "create", **kwargs: Any) -> list[tuple[Any, ...]]:
    outcomes = store.subscribers.import_batch(rows, mode=mode, job_id=JOB, **kwargs)
    return sorted((o.row, o.result, o.field, o.code) for o in outcomes)


def test_creates_many_rows_with_claims_and_exact_counters(store: Store) -> None:
    rows = [imported(n, status=SubscriberStatus.ACTIVE if n % 2 else SubscriberStatus.SUSPENDED) for n in range(1, 81)]
    assert results(store, rows) == [(n, "created", "", "") for n in range(1, 81)]
    assert counts(store, STATUS) == {"ACTIVE": 40, "SUSPENDED": 40}
    assert store.subscribers.get_by_imsi(imsi(80)).uid == "sub-0080"  # type: ignore[union-attr]
    assert_consistent(store)


def test_taken_values_fail_only_their_row(store: Store) -> None:
    store.subscribers.create(record(100), audit_for(record(100)))
    rows = [
        imported(1),
        imported(2, msisdn=msisdn(100)),
        imported(3),
        imported(4, imsi=imsi(100)),
        imported(100, row=5),
    ]
    assert results(store, rows) == [
        (1, "created", "", ""),
        (2, "failed", "msisdn", "exists"),
        (3, "created", "", ""),
        (4, "failed", "imsi", "exists"),
        (5, "failed", "uid", "exists"),
    ]
    assert store.subscribers.get("sub-0002") is None
    assert counts(store, STATUS) == {"ACTIVE": 3}
    assert_consistent(store)


def test_a_value_held_by_another_row_of_the_job_is_a_duplicate_in_file(store: Store) -> None:
    assert results(store, [imported(1, row=1)]) == [(1, "created", "", "")]
    again = [imported(2, row=7, msisdn=msisdn(1)), imported(1, row=8, msisdn=msisdn(3), imsi=imsi(3))]
    outcomes = store.subscribers.import_batch(again, mode="create", job_id=JOB)
    assert sorted((o.row, o.code, o.message) for o in outcomes) == [
        (7, "duplicate_in_file", "msisdn also in row 1 of this file"),
        (8, "duplicate_in_file", "uid also in row 1 of this file"),
    ]


def test_a_redone_batch_counts_once_and_writes_nothing(store: Store) -> None:
    rows = [imported(n) for n in range(1, 6)]
    results(store, rows)
    assert results(store, rows) == [(n, "created", "", "") for n in range(1, 6)]
    assert counts(store, STATUS) == {"ACTIVE": 5}
    assert_consistent(store)


def test_a_batch_resumed_with_another_batch_size_counts_every_row_once(store: Store) -> None:
    """A worker wrote and counted rows 21-24 and died before its checkpoint; the resumer's batch
    starts at the same row but holds more rows (batch_rows changed meanwhile)."""
    rows = [imported(n, status=SubscriberStatus.ACTIVE if n % 2 else SubscriberStatus.SUSPENDED) for n in range(21, 51)]
    results(store, rows[:4])
    assert results(store, rows) == [(n, "created", "", "") for n in range(21, 51)]
    assert counts(store, STATUS) == {"ACTIVE": 15, "SUSPENDED": 15}
    assert_consistent(store)
    # ... and the other way round: a shorter batch redone over rows a longer one counted.
    results(store, rows[:10])
    assert counts(store, STATUS) == {"ACTIVE": 15, "SUSPENDED": 15}


def test_upsert_replaces_and_update_needs_an_existing_subscriber(store: Store) -> None:
    existing = record(1, plan="OLD")
    store.subscribers.create(existing, audit_for(existing))
    rows = [imported(1, plan="NEW", msisdn=msisdn(11)), imported(2)]
    assert results(store, rows, "upsert") == [(1, "updated", "", ""), (2, "created", "", "")]
    replaced = store.subscribers.get("sub-0001")
    assert replaced is not None
    assert (replaced.version, replaced.plan, replaced.created_at) == (2, "NEW", existing.created_at)
    assert store.subscribers.get_by_msisdn(msisdn(1)) is None
    assert counts(store, PLAN) == {"NEW": 1, "GOLD": 1}
    assert results(store, [imported(3, row=9)], "update") == [(9, "failed", "uid", "not_found")]
    assert_consistent(store)


@pytest.mark.parametrize("mode", ["create", "upsert"])
def test_dry_run_reports_without_writing(store: Store, mode: ImportMode) -> None:
    store.subscribers.create(record(100), audit_for(record(100)))
    rows = [imported(1), imported(2, imsi=imsi(100)), imported(100, row=3)]
    expected_last = (3, "failed", "uid", "exists") if mode == "create" else (3, "updated", "", "")
    assert results(store, rows, mode, dry_run=True) == [
        (1, "created", "", ""),
        (2, "failed", "imsi", "exists"),
        expected_last,
    ]
    assert store.subscribers.get("sub-0001") is None
    assert counts(store, STATUS) == {"ACTIVE": 1}


def test_bookkeeping_fields_round_trip(store: Store) -> None:
    results(store, [imported(1, row=42)])
    stored: SubscriberRecord | None = store.subscribers.get("sub-0001")
    assert stored is not None
    assert (stored.import_job_id, stored.import_row) == (JOB, 42)
