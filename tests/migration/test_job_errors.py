"""Jobs that hit an unexpected error, through the job engine on both stores: a bounded number of
attempts (counted in the job record), then FAILED with a readable reason; never a job left
VALIDATING or RUNNING for the sweeper to resume forever."""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI

from app.migration import worker
from app.migration.engine import MAX_ATTEMPTS, BatchResult, Heartbeat, JobEngine
from app.runtime import Runtime
from app.storage.base import Store
from app.storage.records import JobCounts, JobRecord, JobStatus, JobType
from app.timeutil import utcnow


class Flaky:
    """A job kind whose validation or batches raise `error` for the first `failures` calls."""

    def __init__(self, error: Exception, *, failures: int = 1_000, in_batch: int | None = None) -> None:
        self.error = error
        self.failures = failures
        self.in_batch = in_batch  # None: validation fails; n: the n-th batch of a run fails
        self.calls = 0

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise type(self.error)(*self.error.args)  # a fresh one each time, as a real failure

    def validate(self, job: JobRecord, runtime: Runtime) -> int | None:
        if self.in_batch is None:
            self._maybe_fail()
        return 4

    def batches(self, job: JobRecord, runtime: Runtime, heartbeat: Heartbeat) -> Iterator[BatchResult]:
        for number in range(int(job.checkpoint.get("batch", 0)) + 1, 5):
            if number == self.in_batch:
                self._maybe_fail()
            yield BatchResult(counts=JobCounts(processed=1), checkpoint={**job.checkpoint, "batch": number})

    def finish(self, job: JobRecord, runtime: Runtime) -> dict[str, Any]:
        return {}


class Nowhere:
    def submit(self, job_id: str) -> None:
        raise AssertionError(f"the sweeper resumed {job_id}")


@pytest.fixture
def runtime(app: FastAPI) -> Runtime:
    runtime: Runtime = app.state.runtime
    return runtime


def engine_with(runtime: Runtime, kind: Flaky) -> JobEngine:
    return JobEngine(runtime, {"import:flaky": kind}, owner="test-worker")


def new_job(store: Store, job_id: str = "job-1") -> JobRecord:
    job = JobRecord(id=job_id, type=JobType.IMPORT, options={"target": "flaky"}, created_by="olga", created_at=utcnow())
    store.jobs.create(job)
    return job


UNEXPECTED = [
    RecursionError("maximum recursion depth exceeded while decoding a JSON array from a unicode string"),
    csv.Error("field larger than field limit (131072)"),
    RuntimeError("a bug"),
    KeyError("format"),
]


@pytest.mark.parametrize("error", UNEXPECTED, ids=lambda error: type(error).__name__)
def test_an_unexpected_error_ends_the_job_failed_after_bounded_attempts(
    error: Exception, runtime: Runtime, store: Store
) -> None:
    kind = Flaky(error)
    job = new_job(store)

    ended = engine_with(runtime, kind).run(job.id)

    assert ended is not None
    assert ended.status is JobStatus.FAILED
    assert kind.calls == MAX_ATTEMPTS
    assert ended.attempts == MAX_ATTEMPTS
    assert ended.error_summary is not None
    assert ended.error_summary.startswith(f"stopped after {MAX_ATTEMPTS} attempts, each on an unexpected error: ")
    assert type(error).__name__ in ended.error_summary
    assert ended.finished_at is not None
    assert [entry.action for entry in store.audit.list_for_entity("job", job.id, limit=5).items] == [
        "job.import.failed"
    ]
    assert worker.sweep(runtime, Nowhere(), stale_after=timedelta(0)) == {"resumed": [], "failed": []}


def test_a_passing_error_is_retried_and_the_job_completes(runtime: Runtime, store: Store) -> None:
    kind = Flaky(RuntimeError("the blob store hiccupped"), failures=1)
    job = new_job(store)

    ended = engine_with(runtime, kind).run(job.id)

    assert ended is not None
    assert (ended.status, ended.counts.processed, ended.attempts) == (JobStatus.COMPLETED, 4, 0)
    assert ended.error_summary is None


def test_progress_between_errors_restarts_the_count(runtime: Runtime, store: Store) -> None:
    """A batch that fails after earlier ones committed: the attempts resume at the checkpoint and
    the count is of attempts in a row without progress."""
    kind = Flaky(RuntimeError("batch 3 is broken"), in_batch=3)
    job = new_job(store)

    ended = engine_with(runtime, kind).run(job.id)

    assert ended is not None
    assert ended.status is JobStatus.FAILED
    assert ended.counts.processed == 2  # batches 1 and 2 committed, once each
    assert ended.checkpoint["batch"] == 2
    assert kind.calls == MAX_ATTEMPTS
    assert "batch 3 is broken" in (ended.error_summary or "")


def test_a_run_out_of_time_leaves_the_retry_to_the_next_run(runtime: Runtime, store: Store) -> None:
    """In Lambda the deadline stops the retries within one invocation; the next message (or the
    sweeper) takes the next attempt, and the count lives in the job record, not the process."""
    job = new_job(store)
    for attempt in range(1, MAX_ATTEMPTS):
        left = engine_with(runtime, Flaky(RuntimeError("down"))).run(job.id, deadline=time.monotonic())
        assert left is not None
        assert (left.status, left.attempts) == (JobStatus.VALIDATING, attempt)
        assert left.lease_until is not None
        assert left.lease_until < utcnow()  # free for the next attempt at once

    ended = engine_with(runtime, Flaky(RuntimeError("down"))).run(job.id, deadline=time.monotonic())

    assert ended is not None
    assert (ended.status, ended.attempts) == (JobStatus.FAILED, MAX_ATTEMPTS)


class TakenOver(Flaky):
    """Another worker takes the job over during the second batch (this one was too slow)."""

    def __init__(self) -> None:
        super().__init__(RuntimeError("unused"), failures=0)

    def batches(self, job: JobRecord, runtime: Runtime, heartbeat: Heartbeat) -> Iterator[BatchResult]:
        for result in super().batches(job, runtime, heartbeat):
            if result.checkpoint["batch"] == 2:
                later = utcnow() + timedelta(hours=1)
                assert runtime.store.jobs.claim(job.id, owner="other", now=later, lease_until=later)
            yield result


def test_a_lost_lease_is_not_an_attempt(runtime: Runtime, store: Store) -> None:
    job = new_job(store)

    assert engine_with(runtime, TakenOver()).run(job.id) is None  # the other worker goes on

    left = store.jobs.get(job.id)
    assert left is not None
    assert (left.status, left.attempts, left.lease_owner) == (JobStatus.RUNNING, 0, "other")
