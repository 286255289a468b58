"""The job sweeper on both backends: which unfinished jobs it resumes, which it ends, and how."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.migration import worker
from app.migration.engine import INPUT_WAIT, MAX_RESUMES, NO_INPUT
from app.runtime import Runtime
from app.storage.base import JOB_STATUS_SCOPE, Store
from app.storage.records import JobRecord, JobStatus, JobType
from app.timeutil import utcnow
from tests.migration.conftest import RecordingQueue


@pytest.fixture
def runtime(app: FastAPI) -> Runtime:
    runtime: Runtime = app.state.runtime
    runtime.provide("job_dispatcher", RecordingQueue())
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


def test_a_job_waiting_for_its_file_is_not_stalled(
    app: FastAPI, client: TestClient, role_headers: dict[str, dict[str, str]], store: Store
) -> None:
    runtime = app.state.runtime  # jobs run inline here (conftest), so the upload runs the import
    admin = role_headers["admin"]
    body = {"type": "import", "target": "subscribers", "format": "csv"}
    job_id = client.post("/migration/jobs", json=body, headers=admin).json()["job"]["id"]

    assert worker.sweep(runtime, stale_after=timedelta(0)) == {"resumed": [], "failed": []}
    waiting = store.jobs.get(job_id)
    assert waiting is not None
    assert (waiting.status, waiting.checkpoint) == (JobStatus.PENDING, {})

    content = (
        b"uid,msisdn,imsi,first_name,last_name,status,plan\r\ns1,+447911100001,234150000000001,A,B,ACTIVE,GOLD\r\n"
    )
    sent = client.put(f"/migration/jobs/{job_id}/input", content=content, headers=admin)
    assert sent.status_code == 200, sent.text
    done = store.jobs.get(job_id)
    assert done is not None
    assert (done.status, done.counts.created) == (JobStatus.COMPLETED, 1)


def test_a_job_whose_file_never_came_is_ended_after_a_day(runtime: Runtime, store: Store) -> None:
    long_ago = utcnow() - INPUT_WAIT - timedelta(minutes=1)
    for job_id, created_at in (("abandoned", long_ago), ("waiting", utcnow() - timedelta(hours=23))):
        store.jobs.create(
            JobRecord(
                id=job_id,
                type=JobType.IMPORT,
                options={"target": "subscribers", "format": "csv"},
                input_key=f"uploads/{job_id}/input.csv",
                created_by="olga",
                created_at=created_at,
            )
        )

    assert worker.sweep(runtime, stale_after=timedelta(0)) == {"resumed": [], "failed": ["abandoned"]}
    abandoned = store.jobs.get("abandoned")
    assert abandoned is not None
    assert (abandoned.status, abandoned.error_summary) == (JobStatus.FAILED, NO_INPUT)
    assert [e.action for e in store.audit.list_for_entity("job", "abandoned", limit=5).items] == ["job.import.failed"]
    assert store.jobs.get("waiting").status is JobStatus.PENDING  # type: ignore[union-attr]
    assert runtime.memo("job_dispatcher", RecordingQueue).submitted == []
