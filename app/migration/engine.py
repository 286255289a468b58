"""Runs bulk jobs: validate, then batches with a checkpoint after each, resumable anywhere.

The same code runs in Lambda (an SQS message per run; the run stops before the function's time
limit and a new message continues it) and locally (a background thread in the uvicorn process).

Guarantees:
- one worker at a time per job (a lease in the store). A working worker keeps it: the kinds call
  the run's `Heartbeat` between writes inside a batch, which renews the lease once a quarter of it
  has passed, so a batch may take longer than the lease (a slow engine) without another worker
  taking the job over;
- a checkpoint (position + counts) is written after each committed batch; a worker that dies
  between a batch and its checkpoint leaves that batch to be processed again, and the job kinds
  make that harmless (rows already written by this job are recognised, errors are keyed by row);
- cancellation is honoured at the next batch boundary;
- an unexpected error costs one of MAX_ATTEMPTS runs (counted in the job record, so across
  processes); the last ends the job FAILED with the error as its reason, never a job left running;
- a process shutting down (`stop()`) stops its run at the next heartbeat, between two writes, and
  frees the lease: the job stays RUNNING, resumable at once from its checkpoint;
- one audit entry per job, when it ends.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from app.audit import audit_entry
from app.changefeed.drain import after_commit
from app.observability import embedded_metrics
from app.runtime import Runtime
from app.storage.base import StaleVersion
from app.storage.records import JobCounts, JobRecord, JobRowError, JobStatus
from app.timeutil import utcnow

logger = logging.getLogger("app.migration")
STALE_AFTER = timedelta(minutes=5)
MAX_RESUMES = 5
MAX_ATTEMPTS = 3  # runs in a row ending on an unexpected error, with no progress between them
MAX_REASON = 200
INPUT_WAIT = timedelta(hours=24)  # a job whose file has not arrived by then is abandoned
GAVE_UP = "the job's worker stopped repeatedly; giving up"
NO_INPUT = "its input file was never uploaded (waited 24 hours)"


class JobFailed(Exception):
    """The job can't go on (e.g. its file is not what it claims); the message is the job's error summary."""


class LeaseLost(StaleVersion):
    """Another worker took the job over (this one was too slow to renew): not the job's fault."""


class Interrupted(Exception):
    """The process is shutting down: the run stops between two writes, the job stays resumable."""


class Heartbeat:
    """Called by a job kind between the writes of a batch (and by the engine after each checkpoint).

    Cheap when nothing is due: it renews the worker's lease once a quarter of it has passed since
    the last renewal, and raises `Interrupted` when the engine is stopping. A renewal refused means
    another worker took the job: LeaseLost, the run stops.
    """

    def __init__(self, engine: JobEngine, job_id: str, *, renewed: datetime) -> None:
        self.engine = engine
        self.job_id = job_id
        self.renewed = renewed  # on the clock the lease is written with

    def __call__(self) -> None:
        if self.engine.stopping.is_set():
            raise Interrupted(self.job_id)
        if utcnow() - self.renewed >= self.engine.lease / 4:
            self.renew()

    def renew(self) -> None:
        now = utcnow()
        if self.engine.jobs.claim(self.job_id, owner=self.engine.owner, now=now, lease_until=now + self.engine.lease):
            self.renewed = now
            return
        raise LeaseLost(f"job {self.job_id} lost its lease")

    def checkpointed(self, job: JobRecord) -> None:
        """After a checkpoint: the job as written says whether the lease is still ours."""
        if job.lease_owner != self.engine.owner:
            raise LeaseLost(f"job {job.id} lost its lease")
        self()


@dataclass
class BatchResult:
    counts: JobCounts
    errors: list[JobRowError] = field(default_factory=list)
    checkpoint: dict[str, Any] = field(default_factory=dict)


class JobKind(Protocol):
    """What one kind of job does. The engine owns status, checkpoints, leases and cancellation."""

    def validate(self, job: JobRecord, runtime: Runtime) -> int | None:
        """Check the input before anything is written; returns the number of items if known.
        Raises JobFailed (or readers.FileFormatError) with a reason for the user."""
        ...

    def batches(self, job: JobRecord, runtime: Runtime, heartbeat: Callable[[], None]) -> Iterator[BatchResult]:
        """Do the work from `job.checkpoint` on, yielding after each committed batch, and calling
        `heartbeat` between the writes inside a batch (it may raise to stop the run there)."""
        ...

    def finish(self, job: JobRecord, runtime: Runtime) -> dict[str, Any]:
        """Last step after the final batch (e.g. publish an export file); returns job fields to set."""
        ...


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class JobEngine:
    def __init__(self, runtime: Runtime, kinds: dict[str, JobKind], *, owner: str | None = None) -> None:
        self.runtime = runtime
        self.kinds = kinds
        self.owner = owner or worker_id()
        self.stopping = threading.Event()

    def stop(self) -> None:
        """Shutting down: runs stop at their next heartbeat, leaving their jobs resumable."""
        self.stopping.set()

    @property
    def jobs(self) -> Any:
        return self.runtime.store.jobs

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.runtime.settings.job_lease_seconds)

    def run(
        self,
        job_id: str,
        *,
        deadline: float | None = None,
        progress: Callable[[JobRecord], None] | None = None,
    ) -> JobRecord | None:
        """Run the job until it ends or the deadline passes. Returns the job as left, or None when
        another worker holds it (or it already ended). `job.status.finished` says whether to continue.
        `progress` sees the job after validation and after every committed batch (the CLI's bar).

        An unexpected error (a bug, a parser's RecursionError, a blob store that failed) costs the
        job one of MAX_ATTEMPTS, counted in the job record and restarted by progress; the next
        attempt starts at once from the checkpoint while time is left, else in the next run."""
        while True:
            job = self._run_once(job_id, deadline, progress)
            if job is None or job.status.finished or not job.attempts:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                return job

    def _run_once(
        self, job_id: str, deadline: float | None, progress: Callable[[JobRecord], None] | None
    ) -> JobRecord | None:
        now = utcnow()
        job = self.jobs.claim(job_id, owner=self.owner, now=now, lease_until=now + self.lease)
        if job is None:
            return None
        heartbeat = Heartbeat(self, job.id, renewed=now)
        kind = self.kinds.get(kind_key(job))
        if kind is None:
            return self._end(job, JobStatus.FAILED, summary=f"no worker for jobs of kind {kind_key(job)!r}")
        try:
            if job.cancel_requested:
                return self._end(job, JobStatus.CANCELLED, summary="cancelled before it started")
            if job.status is JobStatus.PENDING:
                job = self._save(job, status=JobStatus.VALIDATING, started_at=utcnow(), heartbeat_at=utcnow())
                heartbeat()
            if job.status is JobStatus.VALIDATING:
                total = kind.validate(job, self.runtime)
                counts = job.counts.model_copy(update={"total": total})
                job = self._save(job, status=JobStatus.RUNNING, counts=counts, heartbeat_at=utcnow(), attempts=0)
                heartbeat()
            if progress is not None:
                progress(job)
            for result in kind.batches(job, self.runtime, heartbeat):
                job = self._commit(job, result)
                heartbeat.checkpointed(job)
                if progress is not None:
                    progress(job)
                if job.cancel_requested:  # as read back by the checkpoint's write
                    return self._end(job, JobStatus.CANCELLED, summary="cancelled by request")
                if deadline is not None and time.monotonic() >= deadline:
                    # Free the lease at once: the continuation may run in another execution environment.
                    self.release(job.id)
                    logger.info("job paused at the deadline", extra={"job_id": job.id, "checkpoint": job.checkpoint})
                    return job
            extra = kind.finish(job, self.runtime)
            status = JobStatus.COMPLETED_WITH_ERRORS if job.counts.failed else JobStatus.COMPLETED
            return self._end(job, status, **extra)
        except Interrupted:
            self.release(job.id)
            logger.info("job stopped by a shutdown", extra={"job_id": job.id, "checkpoint": job.checkpoint})
            return self._reload(job)
        except JobFailed as exc:
            return self._end(self._reload(job), JobStatus.FAILED, summary=str(exc))
        except ValueError as exc:  # readers.FileFormatError and other input problems found while running
            return self._end(self._reload(job), JobStatus.FAILED, summary=str(exc))
        except LeaseLost:
            logger.warning("job lost its lease; its new holder goes on", extra={"job_id": job.id})
            return None
        except Exception as exc:
            return self._failed_attempt(self._reload(job), exc)

    def _failed_attempt(self, job: JobRecord, exc: Exception) -> JobRecord:
        """Count the attempt; the last one ends the job. Otherwise free the lease for the next one.
        If the store itself fails here, the error goes up and the sweeper's resumes bound the job."""
        attempts = job.attempts + 1
        logger.exception("job attempt failed", extra={"job_id": job.id, "attempts": attempts})
        if attempts >= MAX_ATTEMPTS:
            reason = f"{type(exc).__name__}: {exc}"[:MAX_REASON]
            summary = f"stopped after {attempts} attempts, each on an unexpected error: {reason}"
            return self._end(job, JobStatus.FAILED, summary=summary, attempts=attempts)
        job = self._save(job, attempts=attempts)
        self.release(job.id)
        return self._reload(job)

    def give_up(self, job_id: str, summary: str) -> JobRecord | None:
        """End a stalled job as FAILED (the sweeper, when it keeps stalling) like any job that ends:
        finished time, its one audit entry, the dashboard's finished-jobs counter.
        Takes the lease first, so no worker is running it; None when one is (or it already ended)."""
        now = utcnow()
        job = self.jobs.claim(job_id, owner=self.owner, now=now, lease_until=now + self.lease)
        if job is None:
            return None
        return self._end(job, JobStatus.FAILED, summary=summary)

    def _reload(self, job: JobRecord) -> JobRecord:
        return self.jobs.get(job.id) or job

    def _save(self, job: JobRecord, **changes: Any) -> JobRecord:
        saved: JobRecord = self.jobs.replace(job, job.model_copy(update=changes))
        return saved

    def release(self, job_id: str) -> None:
        """Free this worker's lease now, so the job can be resumed at once (another execution
        environment, `portal jobs run`, the next start's sweeper). Set in the past: stores keep
        milliseconds, so `now` itself could still look held."""
        now = utcnow()
        self.jobs.claim(job_id, owner=self.owner, now=now, lease_until=now - timedelta(seconds=1))

    def _commit(self, job: JobRecord, result: BatchResult) -> JobRecord:
        self.jobs.add_errors(result.errors)
        counts = job.counts.plus(result.counts)
        saved = self._save(job, counts=counts, checkpoint=result.checkpoint, heartbeat_at=utcnow(), attempts=0)
        after_commit(self.runtime)  # the batch's events (one per row written)
        return saved

    def _end(self, job: JobRecord, status: JobStatus, *, summary: str | None = None, **changes: Any) -> JobRecord:
        now = utcnow()
        changes = {
            "status": status,
            "finished_at": now,
            "heartbeat_at": now,
            "error_summary": summary,
            "lease_owner": None,
            **changes,
        }
        counts = changes.get("counts", job.counts)
        entry = audit_entry(
            actor=job.created_by,
            action=f"job.{job.type.value}.{status.value.lower()}",
            entity_type="job",
            entity_id=job.id,
            at=now,
            retention_days=self.runtime.settings.audit_retention_days,
            event_retention_days=self.runtime.settings.event_retention_days,
            after={"status": status.value, "counts": counts.model_dump(), "options": job.options},
            diff=False,
        )
        ended: JobRecord = self.jobs.replace(job, job.model_copy(update=changes), audit=entry)
        after_commit(self.runtime)
        started = job.started_at or job.created_at
        seconds = max((now - started).total_seconds(), 0.001)
        metrics = embedded_metrics(
            {"Service": "subscriber-portal", "JobType": job.type.value},
            {
                "JobsFinished": (1, "Count"),
                "JobsFailed": (int(status is JobStatus.FAILED), "Count"),
                "JobRowsProcessed": (ended.counts.processed, "Count"),
                "JobRowsFailed": (ended.counts.failed, "Count"),
                "JobRowsPerSecond": (round(ended.counts.processed / seconds, 1), "Count/Second"),
            },
        )
        logger.info(
            "job ended",
            extra={"job_id": job.id, "status": status.value, "counts": ended.counts.model_dump(), **metrics},
        )
        return ended


def kind_key(job: JobRecord) -> str:
    """Jobs are dispatched by type and, for imports, target (`import:subscribers`, `export`...)."""
    target = job.options.get("target")
    return f"{job.type.value}:{target}" if target else job.type.value


def awaits_input(job: JobRecord) -> bool:
    """Created with an input file that has not arrived yet: PENDING until the upload starts it."""
    return job.status is JobStatus.PENDING and job.input_key is not None and job.input_received_at is None


def stale_jobs(
    runtime: Runtime, *, stale_after: timedelta = STALE_AFTER, now: datetime | None = None
) -> tuple[list[JobRecord], list[tuple[JobRecord, str]]]:
    """(jobs to resume, (jobs to fail, why)) among unfinished jobs whose worker went silent.

    A job waiting for its upload has no worker yet: running it would fail on the missing file and
    then refuse the upload. It is left alone until INPUT_WAIT has passed, and then ended."""
    now = now or utcnow()
    resume: list[JobRecord] = []
    fail: list[tuple[JobRecord, str]] = []
    for job in runtime.store.jobs.list_unfinished(limit=100):
        if awaits_input(job):
            if now - job.created_at > INPUT_WAIT:
                fail.append((job, NO_INPUT))
            continue
        last_sign = job.heartbeat_at or job.created_at
        lease_free = job.lease_until is None or job.lease_until < now
        if lease_free and now - last_sign > stale_after:
            if int(job.checkpoint.get("resumes", 0)) >= MAX_RESUMES:
                fail.append((job, GAVE_UP))
            else:
                resume.append(job)
    return resume, fail
