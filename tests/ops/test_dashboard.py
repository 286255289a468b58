from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.ops.dashboard import dashboard_stats
from app.storage.base import Store
from app.storage.records import JobRecord, JobStatus, JobType
from app.timeutil import utcnow
from tests.bookings.conftest import add_subscriber


def finish(store: Store, job_id: str, status: JobStatus, hours_ago: float) -> None:
    job = store.jobs.get(job_id)
    assert job is not None
    finished_at = utcnow() - timedelta(hours=hours_ago)
    store.jobs.replace(job, job.model_copy(update={"status": status, "finished_at": finished_at}))


def test_dashboard_reads_the_maintained_counters(
    app: FastAPI, client: TestClient, role_headers: dict[str, dict[str, str]], store: Store
) -> None:
    for n, status in enumerate(["ACTIVE", "ACTIVE", "SUSPENDED"]):
        add_subscriber(app, f"dash-{n}", status)
    for n in range(5):
        store.jobs.create(JobRecord(id=f"j{n}", type=JobType.IMPORT, created_by="x", created_at=utcnow()))
    finish(store, "j0", JobStatus.COMPLETED, 1)
    finish(store, "j1", JobStatus.COMPLETED_WITH_ERRORS, 2)
    finish(store, "j2", JobStatus.FAILED, 3)
    finish(store, "j3", JobStatus.COMPLETED, 30)  # outside the last 24 hours

    response = client.get("/dashboard/stats", headers=role_headers["viewer"])
    assert response.status_code == 200
    stats = response.json()
    assert stats["subscribers_by_status"] == {"ACTIVE": 2, "SUSPENDED": 1}
    assert stats["subscribers_by_plan"] == {"BASIC": 3}
    assert stats["subscribers_total"] == 3
    assert stats["bookings_today"] == 0
    assert len(stats["bookings_next_7_days"]) == 8
    assert stats["jobs_by_status"] == {"COMPLETED": 2, "COMPLETED_WITH_ERRORS": 1, "FAILED": 1, "PENDING": 1}
    assert stats["jobs_last_24h"] == {"completed": 2, "failed": 1, "cancelled": 0, "success_rate": 0.6667}


def test_empty_dashboard(store: Store) -> None:
    stats = dashboard_stats(store)
    assert stats.subscribers_total == 0
    assert stats.jobs_last_24h.success_rate is None
