# No `from __future__ import annotations`: FastAPI reads the signatures of these endpoints and
# dependencies for every route it builds, and would eval() each string annotation every time.

import re
import tempfile
from collections.abc import AsyncIterator
from typing import IO, Annotated

from fastapi import Depends, File, Form, Path, Query, Request, Response, UploadFile, status
from fastapi.responses import RedirectResponse, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from app.auth.deps import require
from app.auth.policy import Capability
from app.auth.service import Principal
from app.deps import PageParams, PageRequest, domain_router, pagination, route_path
from app.errors import FieldCode, InvalidInput, PayloadTooLargeError, ProblemType, as_field_error
from app.jsondepth import MAX_BODY_DEPTH, TooDeep, loads_bounded
from app.migration.deps import JobServiceDep
from app.migration.readers import kind_from_content, kind_from_name
from app.migration.schemas import (
    FORMAT_DETECTED,
    JobCreate,
    JobCreated,
    JobErrorOut,
    JobErrorPage,
    JobOut,
    JobPage,
    upload_options_schema,
)
from app.openapi import error_responses, invalid
from app.storage.records import JobStatus, JobType

router = domain_router(prefix="/migration", tags=["migration"])
Reader = Annotated[Principal, Depends(require(Capability.JOBS_READ))]
Runner = Annotated[Principal, Depends(require(Capability.JOBS_RUN))]
Admin = Annotated[Principal, Depends(require(Capability.JOBS_ADMIN))]
# Ids are 32 hex digits; bounded before they reach the store (DynamoDB refuses keys over 2 KB with an error).
JobId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
SPOOL_IN_MEMORY = 1024 * 1024
ACTING = (
    "Only the job's creator, or an admin, with what creating the job needed (users imports: users:admin; "
    "deletes: jobs:admin; others: jobs:run). 404 for a job the caller may not see, 403 for one they may not act on."
)
# Routes whose bodies are files, limited by MAX_UPLOAD_BYTES instead of MAX_REQUEST_BYTES.
UPLOAD_PATHS = re.compile(r"/migration/(jobs/[^/]+/input|upload)$")
# An error report pages longer than other lists: 100 rows by default, up to 1000.
ErrorPageParams = Annotated[PageRequest, pagination(default=100, maximum=1000)]


@router.post(
    "/jobs",
    operation_id="jobs_create",
    summary="Create a job; imports and deletes then take their file at `upload.url`",
    description="Exports start at once. For an import or a delete, PUT the file to `upload.url` (a presigned "
    "S3 URL in AWS, or the absolute path of this API's `/migration/jobs/{job_id}/input` elsewhere); the job "
    "starts when the file arrives.",
    response_model=JobCreated,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(invalid(("body.default_region", FieldCode.UNKNOWN_REGION))),
)
def create(body: JobCreate, principal: Runner, jobs: JobServiceDep, request: Request, response: Response) -> JobCreated:
    job = jobs.create_job(principal, body.root)
    response.headers["Location"] = route_path(request, "jobs_get", job_id=job.id)
    upload = None
    if job.input_key is not None:
        api_url = route_path(request, "jobs_put_input", job_id=job.id)
        upload = jobs.upload_instructions(job, api_url)
    return JobCreated(job=JobOut.of(job), upload=upload)


@router.put(
    "/jobs/{job_id}/input",
    operation_id="jobs_put_input",
    summary="Send the job's input file (streamed; up to MAX_UPLOAD_BYTES) and start the job",
    description=ACTING,
    response_model=JobOut,
    responses=error_responses(
        ProblemType.NOT_FOUND,
        ProblemType.CONFLICT,
        ProblemType.PAYLOAD_TOO_LARGE,
        invalid(("path.job_id", FieldCode.PATTERN_MISMATCH)),
    ),
    openapi_extra={
        "requestBody": {
            "required": False,  # no body, like an empty one, is a file with no rows
            "content": {
                media: {"schema": {"type": "string", "format": "binary"}}
                for media in ("text/csv", "application/json", "application/x-ndjson", "application/octet-stream")
            },
        }
    },
)
async def put_input(job_id: JobId, request: Request, principal: Runner, jobs: JobServiceDep) -> JobOut:
    jobs.job_for(principal, job_id, act=True)  # before reading a byte of the body
    limit = jobs.max_upload_bytes
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise PayloadTooLargeError(f"the file exceeds {limit} bytes")
            spool.write(chunk)
        spool.seek(0)
        job = await run_in_threadpool(jobs.receive_input, principal, job_id, spool)
    return JobOut.of(job)


@router.post(
    "/upload",
    operation_id="jobs_upload",
    summary="Create and start an import from a small multipart upload in one call",
    response_model=JobOut,
    status_code=status.HTTP_201_CREATED,
    # 400: a body the multipart parser can't split at all (e.g. no boundary in its Content-Type).
    responses=error_responses(
        ProblemType.BAD_REQUEST,
        invalid(
            ("form.options", FieldCode.JSON_INVALID),
            ("body.file", FieldCode.MISSING),
        ),
    ),
    # OpenAPI 3.1: a multipart part holding JSON says so, and generators then send the object as JSON.
    openapi_extra={
        "requestBody": {
            "content": {"multipart/form-data": {"encoding": {"options": {"contentType": "application/json"}}}}
        }
    },
)
def upload(
    principal: Runner,
    jobs: JobServiceDep,
    request: Request,
    response: Response,
    file: Annotated[
        UploadFile, File(description=f"CSV, JSON array or NDJSON. Unless `options` gives its format: {FORMAT_DETECTED}")
    ],
    # Read as text and parsed here (depth-bounded, errors named `form.options`); documented as the object.
    options: Annotated[str | None, Form(json_schema_extra=upload_options_schema)] = None,
) -> JobOut:
    try:
        given = loads_bounded(options, MAX_BODY_DEPTH) if options else {}
        if not isinstance(given, dict):
            raise InvalidInput("form.options", "must be a JSON object", code=FieldCode.INVALID_TYPE)
        given.setdefault("type", "import")
        if "format" not in given:
            given["format"] = kind_from_name(file.filename or "") or kind_from_content(file.file)
        job_request = JobCreate.model_validate(given).root
    except TooDeep as exc:
        raise InvalidInput("form.options", f"JSON {exc}", code=FieldCode.JSON_TOO_DEEP) from None
    except ValidationError as exc:
        first = as_field_error(exc.errors(include_url=False)[0])
        raise InvalidInput("form.options", first.message, code=first.code) from None
    except ValueError:  # malformed JSON
        raise InvalidInput("form.options", "is not valid JSON", code=FieldCode.JSON_INVALID) from None
    if job_request.type == "export":
        raise InvalidInput("form.options", "an upload creates an import or a delete job", code=FieldCode.INVALID_CHOICE)
    job = jobs.create_job(principal, job_request)
    response.headers["Location"] = route_path(request, "jobs_get", job_id=job.id)
    return JobOut.of(jobs.receive_input(principal, job.id, file.file))


@router.get(
    "/jobs",
    operation_id="jobs_list",
    summary="Jobs, newest first (users imports only for admins)",
    description="A page may hold fewer than `limit` jobs when some are hidden from the caller; follow "
    "`next_cursor` until it is null.",
    response_model=JobPage,
    responses=error_responses(ProblemType.INVALID_CURSOR, invalid(("query.status", FieldCode.INVALID_CHOICE))),
)
def list_jobs(
    principal: Reader,
    jobs: JobServiceDep,
    paging: PageParams,
    status_filter: Annotated[JobStatus | None, Query(alias="status")] = None,
    job_type: Annotated[JobType | None, Query(alias="type")] = None,
) -> JobPage:
    page = jobs.list_jobs(principal, status=status_filter, job_type=job_type, limit=paging.limit, cursor=paging.cursor)
    return JobPage.of(page, JobOut.of)


@router.get(
    "/jobs/{job_id}",
    operation_id="jobs_get",
    summary="One job with its live progress",
    response_model=JobOut,
    responses=error_responses(ProblemType.NOT_FOUND, invalid(("path.job_id", FieldCode.PATTERN_MISMATCH))),
)
def get(job_id: JobId, principal: Reader, jobs: JobServiceDep) -> JobOut:
    return JobOut.of(jobs.get_job(principal, job_id))


@router.post(
    "/jobs/{job_id}/cancel",
    operation_id="jobs_cancel",
    summary="Cancel a job; it stops at its next batch boundary",
    description=ACTING,
    response_model=JobOut,
    responses=error_responses(
        ProblemType.NOT_FOUND, ProblemType.CONFLICT, invalid(("path.job_id", FieldCode.PATTERN_MISMATCH))
    ),
)
def cancel(job_id: JobId, principal: Runner, jobs: JobServiceDep) -> JobOut:
    return JobOut.of(jobs.cancel(principal, job_id))


@router.get(
    "/jobs/{job_id}/errors",
    operation_id="jobs_errors",
    summary="The job's rejected rows: JSON pages, or the whole report as CSV with format=csv",
    description=f"{ACTING} Cells of the CSV that a spreadsheet would run as a formula are prefixed with `'`.",
    response_model=JobErrorPage,
    responses={
        **error_responses(
            ProblemType.INVALID_CURSOR, ProblemType.NOT_FOUND, invalid(("query.format", FieldCode.PATTERN_MISMATCH))
        ),
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "The rejected rows"},
    },
)
def errors(
    job_id: JobId,
    principal: Runner,
    jobs: JobServiceDep,
    paging: ErrorPageParams,
    output: Annotated[str, Query(alias="format", pattern="^(json|csv)$")] = "json",
) -> Response | JobErrorPage:
    if output == "csv":
        return StreamingResponse(
            jobs.errors_csv(principal, job_id),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="job-{job_id}-errors.csv"'},
        )
    page = jobs.errors_page(principal, job_id, limit=paging.limit, cursor=paging.cursor)
    return JobErrorPage.of(page, JobErrorOut.of)


@router.get(
    "/jobs/{job_id}/output",
    operation_id="jobs_output",
    summary="Download an export: a redirect to a presigned S3 URL in AWS, the file itself elsewhere",
    description=ACTING,
    response_class=StreamingResponse,
    responses={
        **error_responses(
            ProblemType.NOT_FOUND, ProblemType.CONFLICT, invalid(("path.job_id", FieldCode.PATTERN_MISMATCH))
        ),
        200: {"content": {"text/csv": {}, "application/x-ndjson": {}}, "description": "The exported file"},
        307: {"description": "Redirect to the file in S3"},
    },
)
def output(job_id: JobId, principal: Runner, jobs: JobServiceDep) -> Response:
    job, url = jobs.output_of(principal, job_id)
    if url:
        return RedirectResponse(url, status_code=307)
    assert job.output_key is not None
    name = job.output_key.rsplit("/", 1)[-1]
    media = "application/x-ndjson" if name.endswith(".ndjson") else "text/csv"
    return StreamingResponse(
        _chunks(jobs.open_output(job)),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def _chunks(stream: IO[bytes]) -> AsyncIterator[bytes]:
    with stream:
        while chunk := await run_in_threadpool(stream.read, 256 * 1024):
            yield chunk


@router.post(
    "/jobs/{job_id}/rollback",
    operation_id="jobs_rollback",
    summary="Undo a subscriber import (admin): deletes what it created and nobody changed since",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(
        ProblemType.NOT_FOUND, ProblemType.CONFLICT, invalid(("path.job_id", FieldCode.PATTERN_MISMATCH))
    ),
)
def rollback(job_id: JobId, admin: Admin, jobs: JobServiceDep) -> JobOut:
    return JobOut.of(jobs.rollback(admin, job_id))
