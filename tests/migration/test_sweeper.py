"""The job sweeper on both backends: which unfinished jobs it resumes, which it ends, and how."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi import FastAPI

from app.migration import worker
from app.migration.engine import MAX_RESUMES
from app.runtime import Runtime
from app.storage.base import JOB_STATUS_SCOPE, Store
from app.storage.records import JobRecord, JobStatus, JobType
from app.timeutil import utcnow


class Queue:
    def __init__(self) -> None:
        self.submitted: list[str] = []

    def submit(self, job_id: str) -> None:
        self.submitted.append(job_id)


@pytest.fixture
def runtime(app: FastAPI) -> Runtime:
    runtime: Runtime = app.state.runtime
    runtime.provide("job_dispatcher", Queue())
    return runtime


def live(store: Store, scope: str) -> dict[str, int]:
    return {name: n for name, n in store.counters.get(scope).items() if n}


def stalled_job(job_id: str, *, resumes: int = 0, minutes_ago: int = 30) -> JobRecord:
    then = utcnow() - timedelta(minutes=minutes_ago)
    return JobRecord(
        id=job_id,
        type=JobType.IMPORT,
        status=JobStatus.RUNNING,
        options={"target": "subscribers", "format": "csv"},
        input_key=f"uploads/{job_id}/input.csv",
        input_received_at=then,
        created_by="olga",
        created_at=then,
        started_at=then,
        heartbeat_at=then,
        checkpoint={"row": 500, "resumes": resumes},
    )


def create_stalled(store: Store, job: JobRecord) -> None:
    """The job as its worker left it when it died: its lease, taken at the last checkpoint, has lapsed."""
    store.jobs.create(job)
    assert job.heartbeat_at is not None
    lapsed = job.heartbeat_at + timedelta(minutes=2)
    assert store.jobs.claim(job.id, owner="a-worker-that-died", now=job.heartbeat_at, lease_until=lapsed)


def test_a_job_that_keeps_stalling_ends_failed_like_any_job(runtime: Runtime, store: Store) -> None:
    create_stalled(store, stalled_job("hopeless", resumes=MAX_RESUMES))

    assert worker.sweep(runtime) == {"resumed": [], "failed": ["hopeless"]}

    failed = store.jobs.get("hopeless")
    assert failed is not None
    assert failed.status is JobStatus.FAILED
    assert failed.error_summary == "the job's worker stopped repeatedly; giving up"
    assert failed.finished_at is not None
    audit = store.audit.list_for_entity("job", "hopeless", limit=10).items
    assert [entry.action for entry in audit] == ["job.import.failed"]
    assert live(store, JOB_STATUS_SCOPE) == {"FAILED": 1}
    finished_today = live(store, f"jobs.finished.{failed.finished_at.date().isoformat()}")
    assert finished_today == {f"{failed.finished_at.hour:02d}|FAILED": 1}
    assert worker.sweep(runtime) == {"resumed": [], "failed": []}  # ended once, never again
    assert len(store.audit.list_for_entity("job", "hopeless", limit=10).items) == 1
