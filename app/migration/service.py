"""Bulk job rules: who may start what, where input goes, and reading progress, errors and output."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import IO

from app import csvsafe
from app.auth.policy import Capability
from app.auth.service import Principal
from app.errors import ConflictError, FieldCode, Forbidden, InvalidInput, NotFoundError
from app.migration import worker
from app.migration.imports import FileImport
from app.migration.mapping import stored_mapping
from app.migration.schemas import ExportJobCreate, ImportRequest, JobRequest, UploadInstructions
from app.runtime import Runtime
from app.storage.base import Page
from app.storage.records import JobRecord, JobRowError, JobStatus, JobType
from app.subscribers.schemas import MASKED_FIELDS, SubscriberOut, mask_values
from app.timeutil import utcnow

UPLOAD_PREFIX = "uploads/"
EXPORT_PREFIX = "exports/"
PRESIGN_SECONDS = 3600
CONTENT_TYPES = {"csv": "text/csv", "json": "application/json", "ndjson": "application/x-ndjson"}


# --- who may do what with a job: the one home of the rule (routes, the S3 trigger, the CLI) ---------


def required_capability(job_type: JobType, target: str | None) -> Capability:
    """What creating a job of this kind needs; acting on such a job needs it too."""
    if job_type in (JobType.DELETE, JobType.ROLLBACK):
        return Capability.JOBS_ADMIN
    if job_type is JobType.IMPORT and target == "users":
        return Capability.USERS_ADMIN
    return Capability.JOBS_RUN


def _required_for(job: JobRecord) -> Capability:
    return required_capability(job.type, job.options.get("target"))


def may_see(principal: Principal, job: JobRecord) -> bool:
    """Listing and getting a job. A users import (usernames, roles, hashes in its file and report)
    exists only for those who may create one; other jobs are visible to every `jobs:read` holder."""
    needed = Capability.USERS_ADMIN if _required_for(job) is Capability.USERS_ADMIN else Capability.JOBS_READ
    return principal.can(needed)


def may_act(principal: Principal, job: JobRecord) -> bool:
    """Sending the input, cancelling, reading the error report or the output, rolling back: what
    creating the job needed, and being its creator or a `jobs:admin` holder."""
    mine = job.created_by == principal.username and job.created_by_id == principal.user_id
    return principal.can(_required_for(job)) and (mine or principal.can(Capability.JOBS_ADMIN))


def authorise(principal: Principal, job: JobRecord, *, act: bool) -> JobRecord:
    """The job if `principal` may see it (and act on it, with `act`): 404 for a job they may not
    see (its existence is not confirmed), 403 for one they see but may not act on."""
    if not may_see(principal, job):
        raise NotFoundError(f"job {job.id!r} not found")
    if act and not may_act(principal, job):
        raise Forbidden(
            f"only the job's creator or an admin may do this, with {_required_for(job).value} "
            f"(job by {job.created_by!r}; you are {principal.username!r}, role {principal.role.value!r})"
        )
    return job


# A page of jobs is refilled from the next ones when some are hidden from the caller, this many
# store pages at most (the few users imports); past that a page may hold fewer than `limit` items.
LIST_FETCHES = 5


# A row error's value is raw input. Without subscribers:unmasked a caller sees it as the API would
# show that field; the value of a field the API does not have (an unmapped column, a whole row, a
# username) could hold anything, so it is withheld.
_PLAIN_FIELDS = frozenset(SubscriberOut.model_fields) - MASKED_FIELDS


def _masked_error(error: JobRowError) -> JobRowError:
    field = error.field.split(".")[0]
    if field in MASKED_FIELDS:
        value = mask_values({field: error.value})[field]
    else:
        value = error.value if field in _PLAIN_FIELDS else None
    return error.model_copy(update={"value": value})


# --- creating, running and reading jobs ------------------------------------------------------------


class JobService:
    """Jobs as the API, the S3 upload trigger and the CLI handle them, on one process's runtime
    (the job dispatcher and file store live there, shared with the workers that run the jobs)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @property
    def max_upload_bytes(self) -> int:
        return self.runtime.settings.max_upload_bytes

    def job_for(self, principal: Principal, job_id: str, *, act: bool) -> JobRecord:
        job = self.runtime.store.jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"job {job_id!r} not found")
        return authorise(principal, job, act=act)

    def creator_of(self, job: JobRecord) -> Principal | None:
        """The job's creator as the store knows them now (None once deleted or disabled), for paths
        that act on a job without a caller (the S3 upload trigger)."""
        user = self.runtime.store.users.get(job.created_by)
        if user is None or not user.active or user.user_id != job.created_by_id:
            return None
        return Principal(username=user.username, role=user.role, user_id=user.user_id)

    def create_job(self, principal: Principal, request: JobRequest) -> JobRecord:
        """The new job; exports start at once, imports and deletes when their input arrives (see
        `upload_instructions`)."""
        needed = required_capability(JobType(request.type), request.target)
        if not principal.can(needed):
            raise Forbidden(f"role {principal.role.value!r} may not start this job (needs {needed.value})")
        job_id = uuid.uuid4().hex
        options = request.model_dump(mode="json", exclude_none=True, exclude={"type"})
        if isinstance(request, ImportRequest):
            self._check_available(request)
            if request.mapping is not None:
                options["mapping"] = stored_mapping(request.mapping)
        if isinstance(request, ExportJobCreate):
            options.pop("target")  # an export's options say what it wrote, not what it read
            # Written as its creator may see it: whoever may download it then sees no more than they did.
            options["mask"] = request.mask or not principal.can(Capability.SUBSCRIBERS_UNMASKED)
        job = JobRecord(
            id=job_id,
            type=JobType(request.type),
            options=options,
            created_by=principal.username,
            created_by_id=principal.user_id,
            created_at=utcnow(),
            input_key=None
            if isinstance(request, ExportJobCreate)
            else f"{UPLOAD_PREFIX}{job_id}/input.{request.format}",
        )
        self.runtime.store.jobs.create(job)
        if job.input_key is None:  # exports need no input: start now
            worker.submit(self.runtime, job.id)
        return job

    def _check_available(self, request: ImportRequest) -> None:
        kind = worker.engine(self.runtime).kinds.get(f"import:{request.target}")
        if not isinstance(kind, FileImport):
            raise InvalidInput(
                "body.target", f"imports of {request.target} are not available", code=FieldCode.NOT_AVAILABLE
            )

    def upload_instructions(self, job: JobRecord, api_url: str) -> UploadInstructions:
        """Where the job's input goes: a presigned S3 URL where the store has one, else `api_url` (the
        API's own input route, built by the caller, which knows the request's path prefix)."""
        assert job.input_key is not None
        content_type = CONTENT_TYPES[job.options["format"]]
        presigned = self.runtime.blobs.presigned_put(
            job.input_key, expires_seconds=PRESIGN_SECONDS, content_type=content_type
        )
        return UploadInstructions(
            url=presigned or api_url,
            headers={"Content-Type": content_type},
            max_bytes=self.max_upload_bytes,
            expires_at=utcnow() + timedelta(seconds=PRESIGN_SECONDS) if presigned else None,
        )

    def get_job(self, principal: Principal, job_id: str) -> JobRecord:
        return self.job_for(principal, job_id, act=False)

    def receive_input(self, principal: Principal, job_id: str, stream: IO[bytes]) -> JobRecord:
        """Store the job's input file (streamed, size-limited) and start the job."""
        job = self.job_for(principal, job_id, act=True)
        if job.input_key is None:
            raise ConflictError("this job takes no input file")
        if job.input_received_at is not None or job.status is not JobStatus.PENDING:
            raise ConflictError("this job already has its input")
        content_type = CONTENT_TYPES[job.options["format"]]
        self.runtime.blobs.put_stream(job.input_key, stream, max_bytes=self.max_upload_bytes, content_type=content_type)
        return self.start(job)

    def start(self, job: JobRecord) -> JobRecord:
        started = self.runtime.store.jobs.replace(job, job.model_copy(update={"input_received_at": utcnow()}))
        worker.submit(self.runtime, job.id)
        return started

    def start_from_upload(self, key: str) -> JobRecord | None:
        """An object arrived under uploads/<job id>/ (S3 event): start that job if it waits for it.

        Only the creator got the presigned URL, but the file may arrive after they lost the right to
        run such a job (demoted, disabled, deleted): then the job ends FAILED instead of running."""
        parts = key.removeprefix(UPLOAD_PREFIX).split("/")
        job = self.runtime.store.jobs.get(parts[0]) if len(parts) == 2 else None
        if job is None or job.input_key != key or job.input_received_at is not None:
            return None
        creator = self.creator_of(job)
        if creator is None or not may_act(creator, job):
            reason = f"its creator {job.created_by!r} may no longer run it (needs {_required_for(job).value})"
            worker.engine(self.runtime).give_up(job.id, reason)
            return None
        return self.start(job)

    def list_jobs(
        self,
        principal: Principal,
        *,
        status: JobStatus | None,
        job_type: JobType | None,
        limit: int,
        cursor: str | None,
    ) -> Page[JobRecord]:
        """The jobs `principal` may see, newest first."""
        items: list[JobRecord] = []
        for _ in range(LIST_FETCHES):
            page = self.runtime.store.jobs.list_newest(
                status=status, job_type=job_type, limit=limit - len(items), cursor=cursor
            )
            items += [job for job in page.items if may_see(principal, job)]
            cursor = page.next_cursor
            if cursor is None or len(items) >= limit:
                break
        return Page(items=items, next_cursor=cursor)

    def cancel(self, principal: Principal, job_id: str) -> JobRecord:
        self.job_for(principal, job_id, act=True)
        job = self.runtime.store.jobs.request_cancel(job_id)
        if job.status is JobStatus.PENDING and job.input_received_at is None:
            worker.engine(self.runtime).run(job.id)  # nothing will run it: end it now
            return self.runtime.store.jobs.get(job_id) or job
        return job

    def errors_page(self, principal: Principal, job_id: str, *, limit: int, cursor: str | None) -> Page[JobRowError]:
        self.job_for(principal, job_id, act=True)
        page = self.runtime.store.jobs.list_errors(job_id, limit=limit, cursor=cursor)
        if principal.can(Capability.SUBSCRIBERS_UNMASKED):
            return page
        return Page(items=[_masked_error(error) for error in page.items], next_cursor=page.next_cursor)

    def errors_csv(self, principal: Principal, job_id: str) -> Iterator[str]:
        """The job's whole error report as CSV text, as `errors_page` shows it to `principal`. Checked
        at once; the rows then come page by page (constant memory however many rows were rejected)."""
        self.job_for(principal, job_id, act=True)
        return self._error_report(principal, job_id)

    def _error_report(self, principal: Principal, job_id: str) -> Iterator[str]:
        buffer = io.StringIO()
        writer = csvsafe.writer(buffer)
        writer.writerow(["row", "field", "code", "message", "value"])
        cursor = None
        while True:
            page = self.errors_page(principal, job_id, limit=500, cursor=cursor)
            for error in page.items:
                writer.writerow([error.row, error.field, error.code, error.message, error.value])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def output_of(self, principal: Principal, job_id: str) -> tuple[JobRecord, str | None]:
        """(job, presigned URL or None when the file is served by the API)."""
        job = self.job_for(principal, job_id, act=True)
        if job.output_key is None:
            # The job exists: asking a job that writes no file for one is a conflict with its kind, not a 404.
            raise ConflictError("this job has no output file: only an export writes one")
        if not job.options.get("mask") and not principal.can(Capability.SUBSCRIBERS_UNMASKED):
            raise Forbidden("this export holds unmasked imsi, iccid and email: it needs subscribers:unmasked")
        if not job.status.finished:
            raise ConflictError("the output is ready when the job has finished")
        url = self.runtime.blobs.presigned_get(
            job.output_key, expires_seconds=PRESIGN_SECONDS, filename=job.output_key.rsplit("/", 1)[-1]
        )
        return job, url

    def open_output(self, job: JobRecord) -> IO[bytes]:
        """The output file of a job `output_of` allowed, to stream through the API."""
        assert job.output_key is not None
        return self.runtime.blobs.open(job.output_key)

    def rollback(self, principal: Principal, job_id: str) -> JobRecord:
        job = self.job_for(principal, job_id, act=True)
        if not principal.can(required_capability(JobType.ROLLBACK, "subscribers")):
            raise Forbidden("rolling back an import needs jobs:admin")
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
            created_by_id=principal.user_id,
            created_at=utcnow(),
            related_job_id=job.id,
        )
        self.runtime.store.jobs.create(rollback_job)
        worker.submit(self.runtime, rollback_job.id)
        return rollback_job
