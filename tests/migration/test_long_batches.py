"""Jobs on a slow store, on both backends: a worker busy in a batch longer than its lease keeps the
lease (the sweeper and another worker are refused while it works), and a process shutting down
stops its job between two writes, leaving it resumable.

The store is made slow on the jobs' clock: each subscriber write moves a fake clock on (leases,
heartbeats and the sweeper all read it), and another worker tries to take the job after each one."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from app.auth.service import Principal
from app.config import Settings
from app.migration import engine as engine_module
from app.migration import imports, worker
from app.migration.engine import JobEngine
from app.migration.schemas import SubscriberImportJobCreate
from app.migration.service import JobService
from app.runtime import Runtime
from app.storage.base import SUBSCRIBER_STATUS_SCOPE, Store
from app.storage.blobs import LocalBlobStore
from app.storage.dynamodb.store import DynamoStore
from app.storage.mongo.store import MongoStore
from app.storage.records import JobStatus, Role
from app.timeutil import utcnow
from tests.migration.conftest import RecordingQueue
from tests.subscribers.support import assert_consistent, audit_for, record
from tests.support import make_settings

ROWS = 60
LEASE_SECONDS = 4
# How long each subscriber write takes on the store's clock: DynamoDB writes the 60 rows in 4
# transactions (19 rows of 5 actions and 2 counter ADDs; the job's status changes are transactions
# too), MongoDB in 60 single-document updates. Either way the one batch takes over two leases,
# each write well under one.
WRITE_SECONDS = {"dynamodb": 1.5, "mongo": 0.2}


class Clock:
    """The jobs' clock (leases, heartbeats, the sweeper's staleness), moved by the slow store."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def settings() -> Settings:
    return make_settings(job_lease_seconds=LEASE_SECONDS)


@pytest.fixture
def runtime(app: FastAPI, tmp_path: Path) -> Runtime:
    runtime: Runtime = app.state.runtime
    runtime.provide("blobs", LocalBlobStore(tmp_path / "files"))
    runtime.provide("job_dispatcher", RecordingQueue())
    return runtime


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(engine_module, "utcnow", clock)
    return clock


def after_each_write(store: Store, monkeypatch: pytest.MonkeyPatch, hook: Callable[[], None]) -> None:
    """Call `hook` after every subscriber write request of the store (what another process might
    do at that moment)."""
    target: Any
    match store:
        case DynamoStore():
            target, name = store.table, "transact"
        case MongoStore():
            target, name = store.subscribers.collection, "update_one"
        case _:
            raise TypeError(f"no write hook for a {store.backend!r} store")
    original: Callable[..., Any] = getattr(target, name)

    def write_then_hook(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        hook()
        return result

    monkeypatch.setattr(target, name, write_then_hook)


def upsert_job(runtime: Runtime) -> str:
    """An upsert of the existing subscribers, each getting a new msisdn, imsi and status."""
    store = runtime.store
    for n in range(1, ROWS + 1):
        subscriber = record(n)
        store.subscribers.create(subscriber, audit_for(subscriber))
    lines = ["uid,msisdn,imsi,first_name,last_name,status,plan"]
    lines += [f"sub-{n:04d},+4479112{n:05d},23416{n:010d},Jane,Doe {n},SUSPENDED,GOLD" for n in range(1, ROWS + 1)]
    principal = Principal(username="olga", role=Role.ADMIN)
    request = SubscriberImportJobCreate.model_validate({"type": "import", "format": "csv", "mode": "upsert"})
    job = JobService(runtime).create_job(principal, request)
    assert job.input_key is not None
    content = io.BytesIO(("\r\n".join(lines) + "\r\n").encode())
    runtime.blobs.put_stream(job.input_key, content, max_bytes=1 << 20, content_type="text/csv")
    JobService(runtime).start(job)
    return job.id


def assert_imported_exactly(store: Store, job_id: str) -> None:
    done = store.jobs.get(job_id)
    assert done is not None
    assert done.status is JobStatus.COMPLETED
    assert (done.counts.processed, done.counts.updated, done.counts.failed) == (ROWS, ROWS, 0)
    statuses = store.counters.get(SUBSCRIBER_STATUS_SCOPE)
    assert (statuses.get("SUSPENDED"), statuses.get("ACTIVE") or 0) == (ROWS, 0)
    assert_consistent(store)


def test_a_lease_is_not_taken_over_while_its_worker_is_busy_in_a_long_batch(
    runtime: Runtime, store: Store, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = upsert_job(runtime)
    began = clock()
    taken_over: list[bool] = []

    def slow_write_then_another_worker_tries() -> None:
        clock.advance(WRITE_SECONDS[store.backend])
        now = clock()
        taken_over.append(
            store.jobs.claim(job_id, owner="another-worker", now=now, lease_until=now + timedelta(minutes=5))
            is not None
        )
        taken_over.append(bool(worker.sweep(runtime, stale_after=timedelta(0))["resumed"]))

    after_each_write(store, monkeypatch, slow_write_then_another_worker_tries)
    done = worker.engine(runtime).run(job_id)

    assert done is not None
    assert clock() - began > timedelta(seconds=2 * LEASE_SECONDS)  # the batch outlasted the lease
    assert len(taken_over) >= 8
    assert not any(taken_over)
    assert_imported_exactly(store, job_id)


def test_a_shutdown_stops_the_job_at_its_next_write_and_leaves_it_resumable(
    runtime: Runtime, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = upsert_job(runtime)
    engine = worker.engine(runtime)
    writes_before_stop = 4 if store.backend == "dynamodb" else 20  # (2 of DynamoDB's are the job's own)
    writes: list[bool] = []

    def count_and_stop() -> None:
        writes.append(engine.stopping.is_set())
        if len(writes) == writes_before_stop:
            engine.stop()  # what the server's shutdown (or its dispatcher's) does

    after_each_write(store, monkeypatch, count_and_stop)
    paused = engine.run(job_id)

    assert writes == [False] * writes_before_stop  # no write after the stop
    assert paused is not None
    assert paused.status is JobStatus.RUNNING
    assert paused.checkpoint.get("row", 0) == 0  # the batch was not finished: nothing checkpointed
    assert store.subscribers.get("sub-0001").status.value == "SUSPENDED"  # type: ignore[union-attr]
    # The lease is free at once: a worker of the next start resumes the job and finishes it exactly.
    after_each_write(store, monkeypatch, lambda: None)
    done = JobEngine(runtime, engine.kinds, owner="after-restart").run(job_id)
    assert done is not None
    assert_imported_exactly(store, job_id)


def test_batch_sizes_follow_the_store_speed() -> None:
    target = imports.TARGET_BATCH_SECONDS
    assert imports.next_batch_rows(100, seconds=0.1 * target, ceiling=1000) == 200  # fast: grow
    assert imports.next_batch_rows(800, seconds=0.1 * target, ceiling=1000) == 1000  # up to the kind's size
    assert imports.next_batch_rows(300, seconds=0.8 * target, ceiling=1000) == 300  # on target: keep
    assert imports.next_batch_rows(800, seconds=4 * target, ceiling=1000) == 200  # slow: in proportion
    assert imports.next_batch_rows(100, seconds=60 * target, ceiling=1000) == imports.MIN_BATCH_ROWS
    assert imports.next_batch_rows(10, seconds=60 * target, ceiling=10) == 10  # a kind's smaller batches stay


def test_a_slow_store_gets_small_batches_and_a_resume_redoes_the_same_ones(
    runtime: Runtime, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each batch's size is chosen after the one before and kept in its checkpoint: progress moves
    every TARGET_BATCH_SECONDS or so, and a batch redone after a crash covers the same rows."""
    job_id = upsert_job(runtime)
    monkeypatch.setattr(imports, "TARGET_BATCH_SECONDS", 0.0)  # every batch is too slow
    monkeypatch.setattr(imports, "START_BATCH_ROWS", 20)
    monkeypatch.setattr(imports, "MIN_BATCH_ROWS", 10)
    engine = worker.engine(runtime)
    original_commit = engine._commit
    checkpoints: list[dict[str, Any]] = []

    def commit_then_crash_at_the_third(job: Any, result: Any) -> Any:
        checkpoints.append(result.checkpoint)
        if len(checkpoints) == 3:
            raise KeyboardInterrupt("worker killed")
        return original_commit(job, result)

    monkeypatch.setattr(engine, "_commit", commit_then_crash_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        engine.run(job_id)
    assert [(c["row"], c["batch_rows"]) for c in checkpoints] == [(20, 10), (30, 10), (40, 10)]
    monkeypatch.setattr(engine, "_commit", original_commit)
    engine.release(job_id)
    resumed: list[dict[str, Any]] = []
    other = JobEngine(runtime, engine.kinds, owner="second")
    second_commit = other._commit

    def recording_commit(job: Any, result: Any) -> Any:
        resumed.append(result.checkpoint)
        return second_commit(job, result)

    monkeypatch.setattr(other, "_commit", recording_commit)
    other.run(job_id)
    assert resumed[0]["row"] == checkpoints[2]["row"]  # the crashed batch, exactly
    assert_imported_exactly(store, job_id)


def test_the_local_dispatcher_shuts_down_within_a_write_of_its_running_job(
    runtime: Runtime, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What uvicorn's shutdown (Ctrl-C) runs: the job thread stops at its next write, not at its end."""
    job_id = upsert_job(runtime)
    writing = threading.Event()
    writes: list[None] = []

    def slow_write() -> None:
        writes.append(None)
        if len(writes) == (4 if store.backend == "dynamodb" else 20):  # inside the batch
            writing.set()
        time.sleep(WRITE_SECONDS[store.backend])

    after_each_write(store, monkeypatch, slow_write)
    dispatcher = worker.LocalDispatcher(runtime, sweep_seconds=3600)
    dispatcher.submit(job_id)
    assert writing.wait(timeout=60)
    asked = time.monotonic()
    dispatcher.shutdown()

    assert time.monotonic() - asked < 3 * WRITE_SECONDS[store.backend] + 2
    paused = store.jobs.get(job_id)
    assert paused is not None
    assert paused.status is JobStatus.RUNNING
    assert paused.lease_until is not None
    assert paused.lease_until < utcnow()  # free: the next start resumes it
