from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from app.storage.base import (
    JOB_STATUS_SCOPE,
    ConditionFailed,
    Page,
    RecordMissing,
    StaleVersion,
    ValueTaken,
    job_outcome_counters,
)
from app.storage.cursor import CursorCodec
from app.storage.mongo import codec, outbox
from app.storage.mongo.paging import find_page
from app.storage.records import AuditEntry, JobRecord, JobRowError, JobStatus, JobType
from app.timeutil import sortable

FINISHED = [status.value for status in JobStatus if status.finished]
SWEEP_ORDER = [JobStatus.RUNNING.value, JobStatus.VALIDATING.value, JobStatus.PENDING.value]
_SIDE_FIELDS = ("lease_owner", "lease_until", "cancel_requested")


def job_document(job: JobRecord) -> dict[str, Any]:
    """The job without its side fields, and its place in the newest-first lists (`order`)."""
    return {**codec.document(job, "id", exclude=_SIDE_FIELDS), "order": f"{sortable(job.created_at)}#{job.id}"}


def stored_job_document(job: JobRecord) -> dict[str, Any]:
    """The whole document, side fields included (`create` stores a job with none set)."""
    side = {"cancel_requested": job.cancel_requested, "lease_owner": job.lease_owner, "lease_until": job.lease_until}
    return {**job_document(job), **side}


def error_id(job_id: str, row: int, field: str) -> str:
    return f"{job_id}:{row:012d}:{field}"


def to_error(document: dict[str, Any]) -> JobRowError:
    return codec.load(JobRowError, document)


def error_document(error: JobRowError) -> dict[str, Any]:
    return {"_id": error_id(error.job_id, error.row, error.field), **codec.dump(error)}


def to_job(document: dict[str, Any]) -> JobRecord:
    return codec.load(JobRecord, document, "id")


class MongoJobRepository:
    def __init__(self, db: Any, cursors: CursorCodec, counters: Any) -> None:
        self.db = db
        self.counters = counters
        self.jobs = db["jobs"]
        self.errors = db["job_errors"]
        self.cursors = cursors

    def create(self, job: JobRecord) -> None:
        try:
            self.jobs.insert_one(stored_job_document(job))
        except DuplicateKeyError:
            raise ValueTaken(f"job {job.id!r} already exists", attribute="id") from None
        self.counters.increment(JOB_STATUS_SCOPE, {job.status.value: 1})

    def get(self, job_id: str) -> JobRecord | None:
        document = self.jobs.find_one({"_id": job_id})
        return to_job(document) if document else None

    def list_newest(
        self, *, status: JobStatus | None, job_type: JobType | None, limit: int, cursor: str | None = None
    ) -> Page[JobRecord]:
        query: dict[str, Any] = {}
        if status:
            query["status"] = status.value
        if job_type:
            query["type"] = job_type.value
        return find_page(
            self.jobs,
            query,
            to_job,
            limit=limit,
            cursor=cursor,
            scope=f"jobs|{status}|{job_type}",
            cursors=self.cursors,
            order_field="order",
            descending=True,
        )

    def replace(self, current: JobRecord, updated: JobRecord, audit: AuditEntry | None = None) -> JobRecord:
        written = updated.model_copy(update={"version": current.version + 1})
        fields = job_document(written)
        fields.pop("_id")
        history = {"$push": {outbox.PENDING: outbox.pending(audit)}} if audit else {}
        document = self.jobs.find_one_and_update(
            {"_id": current.id, "version": current.version},
            {"$set": fields, **history},
            return_document=ReturnDocument.AFTER,
        )
        if document is None:
            raise StaleVersion(f"job {current.id!r} changed meanwhile")
        if audit:
            outbox.flush(self.db, "jobs", current.id)
        if written.status is not current.status:
            # After the job write (no multi-document transaction): a crash in between leaves the
            # dashboard's job counters one off, never the job itself.
            self.counters.increment(JOB_STATUS_SCOPE, {current.status.value: -1, written.status.value: 1})
            for scope, name in job_outcome_counters(written):
                self.counters.increment(scope, {name: 1})
        return to_job(document)

    def claim(self, job_id: str, *, owner: str, now: datetime, lease_until: datetime) -> JobRecord | None:
        document = self.jobs.find_one_and_update(
            {
                "_id": job_id,
                "status": {"$nin": FINISHED},
                "$or": [{"lease_until": None}, {"lease_until": {"$lt": now}}, {"lease_owner": owner}],
            },
            {"$set": {"lease_owner": owner, "lease_until": lease_until}},
            return_document=ReturnDocument.AFTER,
        )
        return to_job(document) if document else None

    def request_cancel(self, job_id: str) -> JobRecord:
        document = self.jobs.find_one_and_update(
            {"_id": job_id, "status": {"$nin": FINISHED}},
            {"$set": {"cancel_requested": True}},
            return_document=ReturnDocument.AFTER,
        )
        if document is None:
            if self.get(job_id) is None:
                raise RecordMissing(f"job {job_id!r} not found")
            raise ConditionFailed(f"job {job_id!r} has already finished")
        return to_job(document)

    def add_errors(self, errors: list[JobRowError]) -> None:
        # One upsert per error, keyed by (job, row, field): replaying a batch writes no duplicate.
        # (Bulk UpdateOne is avoided: mongomock mishandles it with current pymongo.)
        for error in errors:
            document = error_document(error)
            self.errors.replace_one({"_id": document["_id"]}, document, upsert=True)

    def list_errors(self, job_id: str, *, limit: int, cursor: str | None = None) -> Page[JobRowError]:
        return find_page(
            self.errors,
            {"job_id": job_id},
            to_error,
            limit=limit,
            cursor=cursor,
            scope=f"job-errors|{job_id}",
            cursors=self.cursors,
        )

    def list_unfinished(self, *, limit: int) -> list[JobRecord]:
        jobs: list[JobRecord] = []
        for status in SWEEP_ORDER:  # working jobs first, then those that may be waiting for their upload
            jobs += [to_job(document) for document in self.jobs.find({"status": status}).limit(limit - len(jobs))]
            if len(jobs) >= limit:
                break
        return jobs
