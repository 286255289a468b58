"""Contract tests for jobs and their row errors, on every backend."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.storage.base import ConditionFailed, RecordMissing, StaleVersion, Store
from app.storage.records import JobCounts, JobRecord, JobRowError, JobStatus, JobType
from app.timeutil import utcnow
from tests.support import race


def make_job(n: int, **overrides: object) -> JobRecord:
    values: dict[str, object] = {
        "id": f"job{n:03d}",
        "type": JobType.IMPORT,
        "options": {"mode": "create", "mapping": {"columns": {"A": "uid"}}},
        "input_key": f"uploads/job{n:03d}/input",
        "created_by": "olga",
        "created_at": utcnow() + timedelta(seconds=n),
    }
    values.update(overrides)
    return JobRecord.model_validate(values)


def test_create_get_and_duplicate(store: Store) -> None:
    job = make_job(1)
    store.jobs.create(job)
    assert store.jobs.get("job001") == job
    assert store.jobs.get("nope") is None
    with pytest.raises(ConditionFailed):
        store.jobs.create(job)


def test_list_newest_first_by_status_and_type(store: Store) -> None:
    for n in range(6):
        store.jobs.create(make_job(n, type=JobType.EXPORT if n % 3 == 0 else JobType.IMPORT))
    running = store.jobs.get("job004")
    assert running is not None
    store.jobs.replace(running, running.model_copy(update={"status": JobStatus.RUNNING}))

    everything = store.jobs.list_newest(status=None, job_type=None, limit=4)
    rest = store.jobs.list_newest(status=None, job_type=None, limit=4, cursor=everything.next_cursor)
    assert [job.id for job in everything.items + rest.items] == [f"job{n:03d}" for n in (5, 4, 3, 2, 1, 0)]
    assert rest.next_cursor is None
    assert [j.id for j in store.jobs.list_newest(status=JobStatus.RUNNING, job_type=None, limit=10).items] == ["job004"]
    pending = store.jobs.list_newest(status=JobStatus.PENDING, job_type=None, limit=10).items
    assert [job.id for job in pending] == ["job005", "job003", "job002", "job001", "job000"]
    exports = store.jobs.list_newest(status=None, job_type=JobType.EXPORT, limit=1)
    exports_rest = store.jobs.list_newest(status=None, job_type=JobType.EXPORT, limit=1, cursor=exports.next_cursor)
    assert [job.id for job in exports.items + exports_rest.items] == ["job003", "job000"]


def test_replace_is_optimistic(store: Store) -> None:
    job = make_job(1)
    store.jobs.create(job)
    counts = JobCounts(total=10, processed=5, created=4, failed=1)
    updated = store.jobs.replace(job, job.model_copy(update={"status": JobStatus.RUNNING, "counts": counts}))
    assert updated.version == 2
    assert store.jobs.get("job001") == updated
    with pytest.raises(StaleVersion):
        store.jobs.replace(job, job.model_copy(update={"status": JobStatus.FAILED}))


def test_lease_is_exclusive_until_it_expires(store: Store) -> None:
    store.jobs.create(make_job(1))
    now = utcnow()
    first = store.jobs.claim("job001", owner="w1", now=now, lease_until=now + timedelta(minutes=5))
    assert first is not None
    assert first.lease_owner == "w1"
    assert first.version == 1  # the lease is not a change of the job
    assert store.jobs.claim("job001", owner="w2", now=now, lease_until=now + timedelta(minutes=5)) is None
    assert store.jobs.claim("job001", owner="w1", now=now, lease_until=now + timedelta(minutes=6)) is not None
    later = now + timedelta(minutes=7)
    taken = store.jobs.claim("job001", owner="w2", now=later, lease_until=later + timedelta(minutes=5))
    assert taken is not None
    assert taken.lease_owner == "w2"
    assert store.jobs.claim("nope", owner="w1", now=now, lease_until=now) is None


def test_replace_keeps_lease_and_cancel_flag(store: Store) -> None:
    store.jobs.create(make_job(1))
    now = utcnow()
    claimed = store.jobs.claim("job001", owner="w1", now=now, lease_until=now + timedelta(minutes=5))
    assert claimed is not None
    store.jobs.request_cancel("job001")
    stale_copy = claimed.model_copy(update={"cancel_requested": False, "lease_owner": None})
    updated = store.jobs.replace(claimed, stale_copy.model_copy(update={"status": JobStatus.RUNNING}))
    assert updated.cancel_requested is True
    assert updated.lease_owner == "w1"


def test_concurrent_claims_have_one_winner(store: Store) -> None:
    store.jobs.create(make_job(1))
    now = utcnow()

    def claim(index: int) -> JobRecord | None:
        return store.jobs.claim("job001", owner=f"w{index}", now=now, lease_until=now + timedelta(minutes=5))

    winners = [job for job in race(8, claim) if job]
    assert len(winners) == 1


def test_finished_jobs_cannot_be_claimed_or_cancelled(store: Store) -> None:
    job = make_job(1)
    store.jobs.create(job)
    done = store.jobs.replace(job, job.model_copy(update={"status": JobStatus.COMPLETED}))
    assert done.status is JobStatus.COMPLETED
    now = utcnow()
    assert store.jobs.claim("job001", owner="w1", now=now, lease_until=now + timedelta(minutes=1)) is None
    with pytest.raises(ConditionFailed):
        store.jobs.request_cancel("job001")
    with pytest.raises(RecordMissing):
        store.jobs.request_cancel("nope")


def test_row_errors_are_idempotent_and_in_row_order(store: Store) -> None:
    store.jobs.create(make_job(1))
    store.jobs.create(make_job(2))
    errors = [
        JobRowError(job_id="job001", row=row, field=field, code="invalid", message=f"bad {field}", value="x")
        for row in (12, 3, 100)
        for field in ("msisdn", "imsi")
    ]
    store.jobs.add_errors(errors)
    store.jobs.add_errors(errors[:2])  # a replayed batch
    store.jobs.add_errors([JobRowError(job_id="job002", row=1, field="uid", code="x", message="y")])
    first = store.jobs.list_errors("job001", limit=4)
    second = store.jobs.list_errors("job001", limit=4, cursor=first.next_cursor)
    listed = [(e.row, e.field) for e in first.items + second.items]
    assert listed == [(3, "imsi"), (3, "msisdn"), (12, "imsi"), (12, "msisdn"), (100, "imsi"), (100, "msisdn")]
    assert second.next_cursor is None
    assert first.items[0] == JobRowError(
        job_id="job001", row=3, field="imsi", code="invalid", message="bad imsi", value="x"
    )


def test_unfinished_jobs_for_the_sweeper(store: Store) -> None:
    for n in range(3):
        store.jobs.create(make_job(n))
    finished = store.jobs.get("job001")
    assert finished is not None
    store.jobs.replace(finished, finished.model_copy(update={"status": JobStatus.FAILED}))
    assert sorted(job.id for job in store.jobs.list_unfinished(limit=10)) == ["job000", "job002"]


def test_the_sweeper_sees_working_jobs_before_waiting_ones(store: Store) -> None:
    """Jobs still waiting for their upload (PENDING) come last, so many of them can't hide a stalled run."""
    for n in range(4):
        store.jobs.create(make_job(n))
    for job_id, status in (("job001", JobStatus.RUNNING), ("job003", JobStatus.VALIDATING)):
        job = store.jobs.get(job_id)
        assert job is not None
        store.jobs.replace(job, job.model_copy(update={"status": status}))
    assert [job.id for job in store.jobs.list_unfinished(limit=2)] == ["job001", "job003"]
    assert len(store.jobs.list_unfinished(limit=10)) == 4


def test_status_counters_follow_every_change(store: Store) -> None:
    for n in range(3):
        store.jobs.create(make_job(n))
    job = store.jobs.get("job000")
    assert job is not None
    running = store.jobs.replace(job, job.model_copy(update={"status": JobStatus.RUNNING}))
    store.jobs.replace(running, running.model_copy(update={"status": JobStatus.FAILED, "finished_at": utcnow()}))
    assert {k: v for k, v in store.counters.get("jobs.status").items() if v} == {"PENDING": 2, "FAILED": 1}
    with pytest.raises(StaleVersion):  # a refused change moves no counter
        store.jobs.replace(job, job.model_copy(update={"status": JobStatus.COMPLETED}))
    assert {k: v for k, v in store.counters.get("jobs.status").items() if v} == {"PENDING": 2, "FAILED": 1}
