"""Bulk job rules: who may start what, where input goes, and reading progress, errors and output."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import IO

from app.auth.policy import Capability
from app.auth.service import Principal
from app.errors import ConflictError, Forbidden, InvalidInput, NotFoundError
from app.migration import worker
from app.migration.imports import FileImport
from app.migration.schemas import JobCreate, UploadInstructions
from app.runtime import Runtime
from app.storage.base import Conflict, NotFound, Page
from app.storage.records import JobRecord, JobRowError, JobStatus, JobType
from app.timeutil import utcnow

UPLOAD_PREFIX = "uploads/"
EXPORT_PREFIX = "exports/"
PRESIGN_SECONDS = 3600
CONTENT_TYPES = {"csv": "text/csv", "json": "application/json", "ndjson": "application/x-ndjson"}


def input_path(job_id: str) -> str:
    """The API route that takes a job's input (relative, so it also works behind a stage prefix)."""
    return f"jobs/{job_id}/input"


def _required(principal: Principal, request: JobCreate) -> Capability:
    if request.type == "delete":
        return Capability.JOBS_ADMIN
    if request.type == "import" and request.target == "users":
        return Capability.USERS_ADMIN
    return Capability.JOBS_RUN


def create_job(
    runtime: Runtime, principal: Principal, request: JobCreate
) -> tuple[JobRecord, UploadInstructions | None]:
    needed = _required(principal, request)
    if not principal.can(needed):
        raise Forbidden(f"role {principal.role.value!r} may not start this job (needs {needed.value})")
    job_id = uuid.uuid4().hex
    options = request.model_dump(mode="json", exclude_none=True, exclude={"type"})
    if request.type == "import":
        _check_mapping(runtime, request)
    else:
        options.pop("target", None)
    if request.type == "delete":
        options["target"] = "subscribers"
    job = JobRecord(
        id=job_id,
        type=JobType(request.type),
        options=options,
        created_by=principal.username,
        created_at=utcnow(),
        input_key=f"{UPLOAD_PREFIX}{job_id}/input.{request.format}" if request.type != "export" else None,
    )
    runtime.store.jobs.create(job)
    if job.input_key is None:  # exports need no input: start now
        worker.submit(runtime, job.id)
        return job, None
    return job, upload_instructions(runtime, job)


def _check_mapping(runtime: Runtime, request: JobCreate) -> None:
    kind = worker.engine(runtime).kinds.get(f"import:{request.target}")
    if not isinstance(kind, FileImport):
        raise InvalidInput("body.target", f"imports of {request.target} are not available", code="unsupported")
    if request.mapping is not None:
        problems = kind.mapper_for(request.mapping).check_spec()
        if problems:
            first = problems[0]
            raise InvalidInput(f"body.{first.field}", first.message, code=first.code)


def upload_instructions(runtime: Runtime, job: JobRecord) -> UploadInstructions:
    assert job.input_key is not None
    content_type = CONTENT_TYPES[job.options["format"]]
    presigned = runtime.blobs.presigned_put(job.input_key, expires_seconds=PRESIGN_SECONDS, content_type=content_type)
    return UploadInstructions(
        url=presigned or input_path(job.id),
        headers={"Content-Type": content_type},
        max_bytes=runtime.settings.max_upload_bytes,
        expires_at=utcnow() + timedelta(seconds=PRESIGN_SECONDS) if presigned else None,
    )


def get_job(runtime: Runtime, job_id: str) -> JobRecord:
    job = runtime.store.jobs.get(job_id)
    if job is None:
        raise NotFoundError(f"job {job_id!r} not found")
    return job


def receive_input(runtime: Runtime, job_id: str, stream: IO[bytes]) -> JobRecord:
    """Store the job's input file (streamed, size-limited) and start the job."""
    job = get_job(runtime, job_id)
    if job.input_key is None:
        raise ConflictError("this job takes no input file")
    if job.input_received_at is not None or job.status is not JobStatus.PENDING:
        raise ConflictError("this job already has its input")
    content_type = CONTENT_TYPES[job.options["format"]]
    runtime.blobs.put_stream(
        job.input_key, stream, max_bytes=runtime.settings.max_upload_bytes, content_type=content_type
    )
    return start(runtime, job)


def start(runtime: Runtime, job: JobRecord) -> JobRecord:
    started = runtime.store.jobs.replace(job, job.model_copy(update={"input_received_at": utcnow()}))
    worker.submit(runtime, job.id)
    return started


def start_from_upload(runtime: Runtime, key: str) -> JobRecord | None:
    """An object arrived under uploads/<job id>/ (S3 event): start that job if it waits for it."""
    parts = key.removeprefix(UPLOAD_PREFIX).split("/")
    job = runtime.store.jobs.get(parts[0]) if len(parts) == 2 else None
    if job is None or job.input_key != key or job.input_received_at is not None:
        return None
    return start(runtime, job)


def list_jobs(
    runtime: Runtime, *, status: JobStatus | None, job_type: JobType | None, limit: int, cursor: str | None
) -> Page[JobRecord]:
    return runtime.store.jobs.list_newest(status=status, job_type=job_type, limit=limit, cursor=cursor)


def cancel(runtime: Runtime, job_id: str) -> JobRecord:
    try:
        job = runtime.store.jobs.request_cancel(job_id)
    except NotFound as exc:
        raise NotFoundError(str(exc)) from None
    except Conflict as exc:
        raise ConflictError(str(exc)) from None
    if job.status is JobStatus.PENDING and job.input_received_at is None:
        worker.engine(runtime).run(job.id)  # nothing will run it: end it now
        return get_job(runtime, job_id)
    return job


def errors_page(runtime: Runtime, job_id: str, *, limit: int, cursor: str | None) -> Page[JobRowError]:
    get_job(runtime, job_id)
    return runtime.store.jobs.list_errors(job_id, limit=limit, cursor=cursor)


def output_of(runtime: Runtime, job_id: str) -> tuple[JobRecord, str | None]:
    """(job, presigned URL or None when the file is served by the API)."""
    job = get_job(runtime, job_id)
    if job.output_key is None:
        raise NotFoundError("this job has no output file")
    if not job.status.finished:
        raise ConflictError("the output is ready when the job has finished")
    url = runtime.blobs.presigned_get(
        job.output_key, expires_seconds=PRESIGN_SECONDS, filename=job.output_key.rsplit("/", 1)[-1]
    )
    return job, url


def rollback(runtime: Runtime, principal: Principal, job_id: str) -> JobRecord:
    job = get_job(runtime, job_id)
    if job.type is not JobType.IMPORT or job.options.get("target") != "subscribers" or job.options.get("dry_run"):
        raise ConflictError("only a subscriber import that wrote data can be rolled back")
    if not job.status.finished:
        raise ConflictError("the import must have finished before it can be rolled back")
    if not job.counts.created:
        raise ConflictError("the import created no subscriber: nothing to roll back")
    rollback_job = JobRecord(
        id=uuid.uuid4().hex,
        type=JobType.ROLLBACK,
        options={"target": "subscribers"},
        created_by=principal.username,
        created_at=utcnow(),
        related_job_id=job.id,
    )
    runtime.store.jobs.create(rollback_job)
    worker.submit(runtime, rollback_job.id)
    return rollback_job
