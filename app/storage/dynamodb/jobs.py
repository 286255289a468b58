from __future__ import annotations

from datetime import datetime
from typing import Any

from app.storage.base import (
    JOB_STATUS_SCOPE,
    ConditionFailed,
    Page,
    RecordMissing,
    StaleVersion,
    StorageError,
    ValueTaken,
    job_outcome_counters,
)
from app.storage.dynamodb.audit import audit_puts
from app.storage.dynamodb.codec import dump, load
from app.storage.dynamodb.counters import counter_updates
from app.storage.dynamodb.table import DynamoTable, key, serialize, serialize_values
from app.storage.records import AuditEntry, JobRecord, JobRowError, JobStatus, JobType
from app.timeutil import sortable

# The sweeper's order: working jobs first, then those that may be waiting for their upload.
UNFINISHED = (JobStatus.RUNNING, JobStatus.VALIDATING, JobStatus.PENDING)
FINISHED_VALUES = {f":finished{n}": status.value for n, status in enumerate(JobStatus) if status.finished}
NOT_FINISHED = f"NOT #status IN ({', '.join(FINISHED_VALUES)})"
# Written only by `claim` and `request_cancel`, which leave the version alone; `replace` keeps them.
_SIDE_FIELDS = ("lease_owner", "lease_until", "cancel_requested")


def job_key(job_id: str) -> tuple[str, str]:
    return f"JOB#{job_id}", "JOB"


def job_fields(job: JobRecord) -> dict[str, Any]:
    order = f"{sortable(job.created_at)}#{job.id}"
    fields = dump(job, exclude=_SIDE_FIELDS)
    # Jobs are few (a handful a day): one partition per status, and one for all, newest first.
    fields.update({"GSI1PK": f"JOBSTATUS#{job.status.value}", "GSI1SK": order, "GSI2PK": "JOBS", "GSI2SK": order})
    return fields


def job_item(job: JobRecord) -> dict[str, Any]:
    """The whole job item, side fields included (`create` writes a job with none set)."""
    pk, sk = job_key(job.id)
    item = {"PK": pk, "SK": sk, "item_type": "job", "cancel_requested": job.cancel_requested, **job_fields(job)}
    if job.lease_owner and job.lease_until:
        # Compared as text by `claim`: the sortable form, like `claim` writes it.
        item.update(lease_owner=job.lease_owner, lease_until=sortable(job.lease_until))
    return item


def error_key(job_id: str, row: int, field: str) -> tuple[str, str]:
    return f"JOB#{job_id}", f"ERR#{row:012d}#{field}"


def error_item(error: JobRowError) -> dict[str, Any]:
    pk, sk = error_key(error.job_id, error.row, error.field)
    return {
        "PK": pk,
        "SK": sk,
        "type": "job_error",
        **dump(error),
    }


class DynamoJobRepository:
    def __init__(self, table: DynamoTable) -> None:
        self.table = table

    def create(self, job: JobRecord) -> None:
        put = {"Put": {"Item": serialize(job_item(job)), "ConditionExpression": "attribute_not_exists(PK)"}}
        self.table.transact(
            [put, *counter_updates(JOB_STATUS_SCOPE, {job.status.value: 1})],
            on_cancel=lambda codes: ValueTaken(f"job {job.id!r} already exists", attribute="id"),
        )

    def get(self, job_id: str) -> JobRecord | None:
        item = self.table.get(*job_key(job_id))
        return load(JobRecord, item) if item else None

    def list_newest(
        self, *, status: JobStatus | None, job_type: JobType | None, limit: int, cursor: str | None = None
    ) -> Page[JobRecord]:
        filter_args: dict[str, Any] = {}
        values: dict[str, Any] = {}
        if job_type:
            filter_args = {"filter_expression": "#type = :type", "filter_names": {"#type": "type"}}
            values = {":type": job_type.value}
        items, next_cursor = self.table.query_page(
            scope=f"jobs|{status}|{job_type}",
            partition=f"JOBSTATUS#{status.value}" if status else "JOBS",
            index="GSI1" if status else "GSI2",
            limit=limit,
            cursor=cursor,
            forward=False,
            values=values,
            **filter_args,
        )
        return Page([load(JobRecord, item) for item in items], next_cursor)

    def replace(self, current: JobRecord, updated: JobRecord, audit: AuditEntry | None = None) -> JobRecord:
        """The job and, when its status changes, the job counters (dashboard) in one transaction.
        A checkpoint (same status) is one UpdateItem that returns the job as written."""
        written = updated.model_copy(update={"version": current.version + 1})
        fields = job_fields(written)
        names = {f"#f{n}": name for n, name in enumerate(fields)}
        values = {f":f{n}": value for n, value in enumerate(fields.values())}
        expression = "SET " + ", ".join(f"#f{n} = :f{n}" for n in range(len(fields)))
        condition = "attribute_exists(PK) AND #version = :expected"
        names["#version"] = "version"
        values[":expected"] = current.version

        def changed() -> StorageError:
            return StaleVersion(f"job {current.id!r} changed meanwhile")

        if written.status is current.status and audit is None:
            pk, sk = job_key(current.id)
            item = self.table.update(
                pk, sk, expression, condition=condition, names=names, values=values, on_condition_failed=changed
            )
            return load(JobRecord, item)
        update = {
            "Update": {
                "Key": key(*job_key(current.id)),
                "UpdateExpression": expression,
                "ConditionExpression": condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": serialize_values(values),
            }
        }
        counters = counter_updates(JOB_STATUS_SCOPE, {current.status.value: -1, written.status.value: 1})
        for scope, name in job_outcome_counters(written):
            counters += counter_updates(scope, {name: 1})
        history = audit_puts(audit) if audit else []
        self.table.transact([update, *counters, *history], on_cancel=lambda codes: changed())
        stored = self.get(current.id)
        if stored is None:
            raise RecordMissing(f"job {current.id!r} not found")
        return stored

    def claim(self, job_id: str, *, owner: str, now: datetime, lease_until: datetime) -> JobRecord | None:
        pk, sk = job_key(job_id)
        try:
            item = self.table.update(
                pk,
                sk,
                "SET lease_owner = :owner, lease_until = :until",
                condition=f"attribute_exists(PK) AND {NOT_FINISHED} AND "
                "(attribute_not_exists(lease_until) OR lease_until < :now OR lease_owner = :owner)",
                names={"#status": "status"},
                values={":owner": owner, ":until": sortable(lease_until), ":now": sortable(now), **FINISHED_VALUES},
            )
        except ConditionFailed:
            return None
        return load(JobRecord, item)

    def request_cancel(self, job_id: str) -> JobRecord:
        pk, sk = job_key(job_id)
        try:
            item = self.table.update(
                pk,
                sk,
                "SET cancel_requested = :true",
                condition=f"attribute_exists(PK) AND {NOT_FINISHED}",
                names={"#status": "status"},
                values={":true": True, **FINISHED_VALUES},
            )
        except ConditionFailed:
            if self.get(job_id) is None:
                raise RecordMissing(f"job {job_id!r} not found") from None
            raise ConditionFailed(f"job {job_id!r} has already finished") from None
        return load(JobRecord, item)

    def add_errors(self, errors: list[JobRowError]) -> None:
        if errors:
            self.table.batch_write(error_item(error) for error in errors)

    def list_errors(self, job_id: str, *, limit: int, cursor: str | None = None) -> Page[JobRowError]:
        items, next_cursor = self.table.query_page(
            scope=f"job-errors|{job_id}",
            partition=f"JOB#{job_id}",
            sort_condition="begins_with(#sk, :prefix)",
            values={":prefix": "ERR#"},
            limit=limit,
            cursor=cursor,
        )
        return Page([load(JobRowError, item) for item in items], next_cursor)

    def list_unfinished(self, *, limit: int) -> list[JobRecord]:
        jobs: list[JobRecord] = []
        for status in UNFINISHED:
            for item in self.table.query_all(partition=f"JOBSTATUS#{status.value}", index="GSI1"):
                jobs.append(load(JobRecord, item))
                if len(jobs) >= limit:
                    return jobs
        return jobs
