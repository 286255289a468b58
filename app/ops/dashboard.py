"""Dashboard figures, read from counters kept exact by every write: a fixed number of small reads,
whatever the number of subscribers, bookings or jobs."""

from __future__ import annotations

from datetime import datetime, timedelta

from app.bookings.schemas import DayCount
from app.ops.schemas import DashboardStats, JobsLast24h
from app.storage.base import JOB_STATUS_SCOPE, SUBSCRIBER_PLAN_SCOPE, SUBSCRIBER_STATUS_SCOPE, Store
from app.storage.records import JobStatus
from app.timeutil import utcnow


def dashboard_stats(store: Store, now: datetime | None = None) -> DashboardStats:
    now = now or utcnow()
    by_status = _positive(store.counters.get(SUBSCRIBER_STATUS_SCOPE))
    by_plan = _positive(store.counters.get(SUBSCRIBER_PLAN_SCOPE))
    days = [(now + timedelta(days=offset)).date() for offset in range(8)]
    per_day = store.counters.get_keys("bookings.day", [day.isoformat() for day in days])
    return DashboardStats(
        subscribers_by_status=by_status,
        subscribers_by_plan=by_plan,
        subscribers_total=sum(by_status.values()),
        bookings_today=per_day[days[0].isoformat()],
        bookings_next_7_days=[DayCount(date=day, bookings=per_day[day.isoformat()]) for day in days],
        jobs_by_status=_positive(store.counters.get(JOB_STATUS_SCOPE)),
        jobs_last_24h=_jobs_last_24h(store, now),
        generated_at=now,
    )


def _positive(counts: dict[str, int]) -> dict[str, int]:
    return {name: count for name, count in sorted(counts.items()) if count > 0}


def _jobs_last_24h(store: Store, now: datetime) -> JobsLast24h:
    """Hourly buckets of today and yesterday, of which the 24 up to this hour count."""
    since = (now - timedelta(hours=23)).replace(minute=0, second=0, microsecond=0)
    totals = {status: 0 for status in JobStatus if status.finished}
    for day in {since.date(), now.date()}:
        for name, count in store.counters.get(f"jobs.finished.{day.isoformat()}").items():
            hour, status = name.split("|", 1)
            bucket = datetime.combine(day, datetime.min.time(), tzinfo=now.tzinfo).replace(hour=int(hour))
            if bucket >= since and status in totals:
                totals[JobStatus(status)] += count
    completed = totals[JobStatus.COMPLETED] + totals[JobStatus.COMPLETED_WITH_ERRORS]
    failed = totals[JobStatus.FAILED]
    return JobsLast24h(
        completed=completed,
        failed=failed,
        cancelled=totals[JobStatus.CANCELLED],
        success_rate=round(completed / (completed + failed), 4) if completed + failed else None,
    )
