"""Where jobs run: an SQS queue in AWS, a background thread locally. Same engine in both.

- `submit(runtime, job_id)` hands a job to the configured dispatcher.
- In Lambda, the `migration.job` SQS message runs the job until Lambda's deadline and, if it is
  not finished, sends itself a new message to continue from the checkpoint.
- The `sweep-jobs` scheduled task resumes jobs whose worker went silent (a crash, a timeout) and
  fails those that keep stalling; jobs still waiting for their file are left alone (for a day).
- Locally, a single background thread runs jobs and sweeps every 30 seconds, so a job of a process
  that was killed resumes when the server starts again.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, Protocol

from app import events
from app.aws import SqsQueue
from app.migration.engine import STALE_AFTER, JobEngine, JobKind, stale_jobs
from app.runtime import Runtime

logger = logging.getLogger("app.migration")
MESSAGE_KIND = "migration.job"
SWEEP_TASK = "sweep-jobs"
LOCAL_SWEEP_SECONDS = 30.0

# Job kinds register a factory here (see app.migration.kinds); key: "import:subscribers", "export", ...
KIND_FACTORIES: dict[str, Callable[[], JobKind]] = {}


def register_kind(key: str) -> Callable[[Callable[[], JobKind]], Callable[[], JobKind]]:
    def register(factory: Callable[[], JobKind]) -> Callable[[], JobKind]:
        KIND_FACTORIES[key] = factory
        return factory

    return register


def engine(runtime: Runtime) -> JobEngine:
    def build() -> JobEngine:
        import app.migration.kinds  # noqa: F401 - registers the job kinds

        return JobEngine(runtime, {key: factory() for key, factory in KIND_FACTORIES.items()})

    return runtime.memo("job_engine", build)


class Dispatcher(Protocol):
    def submit(self, job_id: str) -> None: ...


class SqsDispatcher:
    def __init__(self, runtime: Runtime, queue_url: str) -> None:
        self.queue = SqsQueue(queue_url, region=runtime.settings.aws_region)

    def submit(self, job_id: str) -> None:
        self.queue.send(json.dumps({"kind": MESSAGE_KIND, "job_id": job_id}))


class LocalDispatcher:
    """One background thread: jobs run one after another, as they would from a queue."""

    def __init__(self, runtime: Runtime, *, sweep_seconds: float = LOCAL_SWEEP_SECONDS) -> None:
        self.runtime = runtime
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jobs")
        self._stop = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep_forever, args=(sweep_seconds,), daemon=True)
        self._sweeper.start()

    def submit(self, job_id: str) -> None:
        self.executor.submit(self._run, job_id)

    def _run(self, job_id: str) -> None:
        try:
            engine(self.runtime).run(job_id)
        except Exception:
            logger.exception("job run failed; the sweeper will resume it", extra={"job_id": job_id})

    def _sweep_forever(self, interval: float) -> None:
        while True:
            try:
                # Locally a job is stalled as soon as its lease lapsed: this process is its only worker.
                sweep(self.runtime, self, stale_after=timedelta(seconds=self.runtime.settings.job_lease_seconds))
            except Exception:
                logger.exception("job sweep failed")
            if self._stop.wait(interval):
                return

    def shutdown(self) -> None:
        """Within a few seconds: the running job stops at its next heartbeat (between two writes),
        resumable; queued ones stay as they are for the sweeper of the next start."""
        self._stop.set()
        engine(self.runtime).stop()
        self.executor.shutdown(wait=True, cancel_futures=True)


class InlineDispatcher:
    """Runs the job to its end in the caller's thread (tests, the CLI)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def submit(self, job_id: str) -> None:
        engine(self.runtime).run(job_id)


def dispatcher(runtime: Runtime) -> Dispatcher:
    def build() -> Dispatcher:
        if runtime.settings.jobs_queue_url:
            return SqsDispatcher(runtime, runtime.settings.jobs_queue_url)
        return LocalDispatcher(runtime)

    return runtime.memo("job_dispatcher", build)


def submit(runtime: Runtime, job_id: str) -> None:
    dispatcher(runtime).submit(job_id)


def sweep(
    runtime: Runtime, target: Dispatcher | None = None, *, stale_after: timedelta = STALE_AFTER
) -> dict[str, Any]:
    resume, to_fail = stale_jobs(runtime, stale_after=stale_after)
    jobs = runtime.store.jobs
    fail = [job for job, why in to_fail if engine(runtime).give_up(job.id, why) is not None]
    for job in resume:
        checkpoint = {**job.checkpoint, "resumes": int(job.checkpoint.get("resumes", 0)) + 1}
        jobs.replace(job, job.model_copy(update={"checkpoint": checkpoint}))
        (target or dispatcher(runtime)).submit(job.id)
    if resume or fail:
        logger.warning("swept stalled jobs", extra={"resumed": [j.id for j in resume], "failed": [j.id for j in fail]})
    return {"resumed": [job.id for job in resume], "failed": [job.id for job in fail]}


@events.message_worker(MESSAGE_KIND)
def run_from_queue(body: dict[str, Any], runtime: Runtime, deadline: float | None) -> None:
    job_id = str(body["job_id"])
    job = engine(runtime).run(job_id, deadline=deadline)
    if job is not None and not job.status.finished:
        submit(runtime, job_id)  # continue from the checkpoint in a fresh invocation


@events.scheduled_task(SWEEP_TASK)
def sweep_task(runtime: Runtime) -> dict[str, Any]:
    return sweep(runtime)


@events.object_worker("uploads/")
def start_uploaded(bucket: str, key: str, runtime: Runtime) -> None:
    """A browser PUT the job's file to its presigned URL: S3 tells us, the job starts."""
    from app.migration.service import JobService

    job = JobService(runtime).start_from_upload(key)
    logger.info("upload received", extra={"key": key, "job_id": job.id if job else None})
