"""The job kinds, registered with the worker by importing this module."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from app import csvsafe
from app.auth.deps import auth_service_of
from app.auth.schemas import UserCreate, UserImport
from app.concurrency import Versions
from app.errors import ConflictError, DomainError, FieldError, NotFoundError, PreconditionFailedError
from app.migration.engine import BatchResult, JobFailed
from app.migration.filekeys import FileKeys
from app.migration.imports import FileImport, Heartbeat, ValidRow, WriteOutcome, row_error
from app.migration.mapping import RowMapper
from app.migration.readers import SourceRow, read_rows
from app.migration.service import CONTENT_TYPES, EXPORT_PREFIX
from app.migration.worker import register_kind
from app.runtime import Runtime
from app.storage.base import SUBSCRIBER_PLAN_SCOPE, SUBSCRIBER_STATUS_SCOPE, RecordMissing, StaleVersion
from app.storage.importing import PREFERENCE_FIELDS, ImportRow
from app.storage.records import (
    JobCounts,
    JobRecord,
    JobRowError,
    SubscriberRecord,
    SubscriberStatus,
)
from app.subscribers.schemas import SubscriberIn, Uid, mask_values, parse_subscriber
from app.subscribers.service import SubscriberService
from app.timeutil import utcnow


class UserFileImport(FileImport[UserImport]):
    """Users of a legacy system with their password hashes (argon2, bcrypt, Django pbkdf2_sha256).

    Create-only: an existing username is a row error, unless this very job created it (a batch
    processed again after a crash), which counts once as created.
    """

    fields = frozenset(UserImport.model_fields)
    batch_rows = 100  # one conditional write per user; users are few

    def parse(self, mapped: dict[str, Any], job: JobRecord, runtime: Runtime) -> UserImport:
        return UserImport.model_validate(mapped)

    def write(
        self, rows: list[ValidRow[UserImport]], job: JobRecord, runtime: Runtime, *, dry_run: bool, heartbeat: Heartbeat
    ) -> WriteOutcome:
        auth = auth_service_of(runtime)
        outcome = WriteOutcome(errors=[])
        assert outcome.errors is not None
        for row in rows:
            heartbeat()
            user = row.record
            existing = runtime.store.users.get(user.username)
            if existing is not None:
                if existing.import_job_id == job.id:
                    outcome.created += 1
                else:
                    outcome.errors.append(
                        row_error(
                            job.id, row.number, "username", "exists", "a user with this name exists", user.username
                        )
                    )
                continue
            if not auth.hasher.is_known_hash(user.password_hash):
                outcome.errors.append(
                    row_error(
                        job.id,
                        row.number,
                        "password_hash",
                        "unknown_hash_scheme",
                        "not a hash of a supported scheme (argon2, bcrypt, Django pbkdf2_sha256)",
                    )
                )
                continue
            if dry_run:
                outcome.created += 1
                continue
            request = UserCreate.model_construct(
                username=user.username, password="", role=user.role, email=user.email, full_name=user.full_name
            )
            try:
                auth.create_user(f"job:{job.id}", request, password_hash=user.password_hash, import_job_id=job.id)
            except DomainError as exc:
                outcome.errors.append(row_error(job.id, row.number, "username", "rejected", str(exc), user.username))
                continue
            outcome.created += 1
        return outcome


register_kind("import:users")(UserFileImport)


# --- subscribers --------------------------------------------------------------------------------------

KEY_FIELDS = ("uid", "msisdn", "imsi")


def row_uid(job_id: str, row: int) -> str:
    """The uid of a row that has none: derived from the job and row, so a redone batch (and a
    rollback re-reading the file) finds the same subscriber."""
    return f"{job_id[:16]}-{row}"


def job_actor(job_id: str) -> str:
    return f"job:{job_id}"


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def attributes_cell(text: str) -> Any:
    """An `attributes` CSV cell as the export writes it (a JSON object) read back; anything else is
    left as it is for validation to refuse. Only a flat object is parsed (attributes hold scalars):
    outside its strings it has one `{` and no `[`, so a crafted cell can't nest at all."""
    skeleton = _JSON_STRING.sub("", text).strip()
    if not skeleton.startswith("{") or skeleton.count("{") != 1 or "[" in skeleton:
        return text
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, dict) else text


class SubscriberFileImport(FileImport[SubscriberIn]):
    """Subscribers from a legacy file: modes create / upsert / update, dry run, duplicates reported.

    Each batch is de-duplicated before it is written (a later row repeating a uid, msisdn or imsi
    of an earlier row is an error naming it); across batches the store's uniqueness catches
    repeats, which it reports as `duplicate_in_file` because the holder was written by this job.
    A dry run writes nothing, so it remembers every key of the file (see filekeys.py).
    """

    fields = frozenset(SubscriberIn.model_fields)
    # At most: 1,000 rows are 33 full transactions and one checkpoint (docs/performance.md).
    batch_rows = 1000

    def __init__(self) -> None:
        self._dry_run_keys: dict[str, FileKeys] = {}

    def parse(self, mapped: dict[str, Any], job: JobRecord, runtime: Runtime) -> SubscriberIn:
        region = job.options.get("default_region") or runtime.settings.default_phone_region
        if job.options["format"] == "csv" and isinstance(mapped.get("attributes"), str):
            mapped = {**mapped, "attributes": attributes_cell(mapped["attributes"])}
        return parse_subscriber(mapped, phone_region=region)

    def record(self, row: ValidRow[SubscriberIn], job: JobRecord, now: datetime) -> SubscriberRecord:
        data = row.record
        actor = job_actor(job.id)
        return SubscriberRecord(
            uid=data.uid or row_uid(job.id, row.number),
            **data.stored_fields(),
            created_at=now,
            updated_at=now,
            created_by=actor,
            updated_by=actor,
            import_job_id=job.id,
            import_row=row.number,
        )

    def batches(self, job: JobRecord, runtime: Runtime, heartbeat: Heartbeat) -> Iterator[BatchResult]:
        if job.options.get("dry_run") and job.id not in self._dry_run_keys:
            self._dry_run_keys[job.id] = FileKeys()
            self._replay(job, runtime, heartbeat)
        try:
            yield from super().batches(job, runtime, heartbeat)
        finally:
            self._dry_run_keys.pop(job.id, None)

    def _replay(self, job: JobRecord, runtime: Runtime, heartbeat: Heartbeat) -> None:
        """A resumed dry run checks the rows it already reported again (reads only, results
        dropped) to learn which keys they hold."""
        done = int(job.checkpoint.get("row", 0))
        if not done:
            return
        mapper = self.mapper(job)
        valid: list[ValidRow[SubscriberIn]] = []
        with self._open(job, runtime) as stream:
            for row in read_rows(stream, job.options["format"], delimiter=job.options.get("delimiter")):
                if row.number > done:
                    break
                self._check_row(row, mapper, job, runtime, valid)
                if row.number % self.batch_rows == 0 and valid:
                    self.write(valid, job, runtime, dry_run=True, heartbeat=heartbeat)
                    valid = []
        if valid:
            self.write(valid, job, runtime, dry_run=True, heartbeat=heartbeat)

    def write(
        self,
        rows: list[ValidRow[SubscriberIn]],
        job: JobRecord,
        runtime: Runtime,
        *,
        dry_run: bool,
        heartbeat: Heartbeat,
    ) -> WriteOutcome:
        now = utcnow()
        errors: list[JobRowError] = []
        file_keys = self._dry_run_keys.get(job.id) if dry_run else None
        seen: dict[tuple[str, str], int] = {}
        batch: list[ImportRow] = []
        for row in rows:
            record = self.record(row, job, now)
            values = [(name, str(getattr(record, name))) for name in KEY_FIELDS]
            earlier = next(
                (
                    (name, value, first)
                    for name, value in values
                    if (first := self._first(seen, file_keys, name, value))
                ),
                None,
            )
            if earlier is not None:
                name, value, first = earlier
                errors.append(
                    row_error(job.id, row.number, name, "duplicate_in_file", f"{name} also in row {first}", value)
                )
                continue
            for name, value in values:
                seen[(name, value)] = row.number
            batch.append(ImportRow(row.number, record, PREFERENCE_FIELDS & row.record.model_fields_set))
        mode = job.options.get("mode", "create")
        outcomes = runtime.store.subscribers.import_batch(
            batch,
            mode=mode,
            job_id=job.id,
            dry_run=dry_run,
            between_writes=heartbeat,
            event_retention_days=runtime.settings.event_retention_days,
        )
        result = WriteOutcome(errors=errors)
        by_row = {item.row: item.record for item in batch}
        for outcome in outcomes:
            if file_keys is not None and outcome.result != "failed":
                # Only rows a real run would write hold their keys (as the store would).
                for name in KEY_FIELDS:
                    file_keys.add(name, str(getattr(by_row[outcome.row], name)), outcome.row)
            if outcome.result == "created":
                result.created += 1
            elif outcome.result == "updated":
                result.updated += 1
            else:
                errors.append(
                    row_error(job.id, outcome.row, outcome.field, outcome.code, outcome.message, outcome.value)
                )
        errors.sort(key=lambda error: error.row)
        return result

    @staticmethod
    def _first(seen: dict[tuple[str, str], int], keys: FileKeys | None, name: str, value: str) -> int | None:
        first = seen.get((name, value))
        if first is None and keys is not None:
            first = keys.first_row(name, value)
        return first


class UidRow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    uid: Uid


def _deleted_by(service: SubscriberService, uid: str, actor: str) -> bool:
    """Whether `actor` deleted the subscriber (a row redone after a crash): its newest history entry."""
    newest = service.history(uid, limit=1, cursor=None).items
    return bool(newest) and newest[0].action == "subscriber.delete" and newest[0].actor == actor


def _delete(service: SubscriberService, job: JobRecord, uid: str, versions: Versions | None) -> FieldError | None:
    """Delete as the API does, as the job's actor: the same refusal while the subscriber has future
    confirmed bookings (returned, to become the row's error) and the same history entry, stamped
    after the subscriber's last change. NotFoundError and the precondition failures go to the caller."""
    try:
        service.delete(job_actor(job.id), uid, versions)
    except ConflictError as exc:
        if not exc.errors:
            raise
        return exc.errors[0]
    return None


class SubscriberDeleteFile(FileImport[UidRow]):
    """Bulk delete by a file of uids (CSV `uid` column, or JSON/NDJSON objects with `uid`).

    Each delete frees the msisdn and imsi and moves the counters like an API delete, and keeps an
    audit entry per subscriber (its history says which job deleted it)."""

    fields = frozenset({"uid"})
    batch_rows = 200

    def parse(self, mapped: dict[str, Any], job: JobRecord, runtime: Runtime) -> UidRow:
        return UidRow.model_validate(mapped)

    def write(
        self, rows: list[ValidRow[UidRow]], job: JobRecord, runtime: Runtime, *, dry_run: bool, heartbeat: Heartbeat
    ) -> WriteOutcome:
        outcome = WriteOutcome(errors=[])
        assert outcome.errors is not None
        service = SubscriberService(runtime.store, runtime.settings)
        for row in rows:
            heartbeat()
            uid = row.record.uid
            try:
                refused = _delete(service, job, uid, versions=None)
            except NotFoundError:
                if _deleted_by(service, uid, job_actor(job.id)):
                    outcome.deleted += 1
                else:
                    outcome.errors.append(row_error(job.id, row.number, "uid", "not_found", "no such subscriber", uid))
                continue
            except (PreconditionFailedError, StaleVersion, RecordMissing):
                outcome.errors.append(
                    row_error(job.id, row.number, "uid", "changed_concurrently", "changed while deleting; retry", uid)
                )
                continue
            if refused is not None:
                outcome.errors.append(row_error(job.id, row.number, "uid", refused.code, refused.message, uid))
                continue
            outcome.deleted += 1
        return outcome


class SubscriberRollback:
    """Undo a subscriber import: delete what it created and nobody changed since.

    Re-reads the import's file (same mapping, same uids) and deletes each row's subscriber if it
    still carries the import's job id and row and is at version 1. Others are skipped with a
    reason row: `not_created_by_job` (the import replaced or never wrote it), `changed_since_import`,
    `not_found` (already gone), `has_bookings`.
    """

    batch_rows = 200

    def __init__(self) -> None:
        self.importer = SubscriberFileImport()

    def _import_job(self, job: JobRecord, runtime: Runtime) -> JobRecord:
        related = runtime.store.jobs.get(job.related_job_id or "")
        if related is None:
            raise JobFailed("the import to roll back no longer exists")
        return related

    def validate(self, job: JobRecord, runtime: Runtime) -> int | None:
        return self._import_job(job, runtime).counts.processed

    def batches(self, job: JobRecord, runtime: Runtime, heartbeat: Heartbeat) -> Iterator[BatchResult]:
        imported = self._import_job(job, runtime)
        mapper = self.importer.mapper(imported)
        done = int(job.checkpoint.get("row", 0))
        with self.importer._open(imported, runtime) as stream:
            rows = read_rows(
                stream, imported.options["format"], delimiter=imported.options.get("delimiter"), start_after=done
            )
            batch: list[SourceRow] = []
            for row in rows:
                batch.append(row)
                if len(batch) >= self.batch_rows:
                    yield self._process(batch, mapper, job, imported, runtime, heartbeat)
                    batch = []
            if batch:
                yield self._process(batch, mapper, job, imported, runtime, heartbeat)

    def _process(
        self,
        batch: list[SourceRow],
        mapper: RowMapper,
        job: JobRecord,
        imported: JobRecord,
        runtime: Runtime,
        heartbeat: Heartbeat,
    ) -> BatchResult:
        counts = JobCounts(processed=len(batch))
        reasons: list[JobRowError] = []
        service = SubscriberService(runtime.store, runtime.settings)
        for row in batch:
            heartbeat()
            valid: list[ValidRow[SubscriberIn]] = []
            if self.importer._check_row(row, mapper, imported, runtime, valid) or not valid:
                continue  # the import refused this row: nothing to undo
            uid = valid[0].record.uid or row_uid(imported.id, row.number)
            reason = self._undo(service, job, imported, row.number, uid)
            if reason is None:
                counts.deleted += 1
            else:
                counts.skipped += 1
                reasons.append(row_error(job.id, row.number, "uid", reason[0], reason[1], uid))
        return BatchResult(counts=counts, errors=reasons, checkpoint={**job.checkpoint, "row": batch[-1].number})

    def _undo(
        self, service: SubscriberService, job: JobRecord, imported: JobRecord, row: int, uid: str
    ) -> tuple[str, str] | None:
        try:
            current = service.get(uid)
        except NotFoundError:
            if _deleted_by(service, uid, job_actor(job.id)):
                return None  # deleted by this rollback before a crash
            return "not_found", "no longer exists"
        created_here = current.created_by == job_actor(imported.id) and current.import_row == row
        if current.import_job_id != imported.id or not created_here:
            return "not_created_by_job", "the import did not create this subscriber"
        if current.version != 1:
            return "changed_since_import", f"changed since the import (version {current.version})"
        try:  # If-Match 1: nobody may change it between this read and the delete either
            refused = _delete(service, job, uid, versions=frozenset({1}))
        except (NotFoundError, PreconditionFailedError, StaleVersion, RecordMissing):
            return "changed_since_import", "changed while rolling back"
        return (refused.code, refused.message) if refused is not None else None

    def finish(self, job: JobRecord, runtime: Runtime) -> dict[str, Any]:
        return {}


EXPORT_COLUMNS = (
    "uid",
    "msisdn",
    "imsi",
    "iccid",
    "email",
    "first_name",
    "last_name",
    "status",
    "plan",
    "attributes",
    "notifications_opt_out",
    "notification_channel",
    "created_at",
    "updated_at",
    "version",
)


class SubscriberExport:
    """Subscribers (optionally by status and/or plan, through the indexed lists) to CSV or NDJSON.

    Each page is written as its own part file `exports/<job>/part-NNNNNN` and the checkpoint keeps
    the list cursor and the number of parts; a resumed export rewrites the part that was not
    checkpointed and goes on. `finish` concatenates the parts (streamed through a temporary file,
    constant memory) into `exports/<job>/subscribers.<csv|ndjson>` and removes them.
    """

    page_rows = 500

    def validate(self, job: JobRecord, runtime: Runtime) -> int | None:
        filters = job.options.get("filters") or {}
        status, plan = filters.get("status"), filters.get("plan")
        if status and plan:
            return None
        if plan:
            return runtime.store.counters.get_keys(SUBSCRIBER_PLAN_SCOPE, [plan])[plan]
        counts = runtime.store.counters.get(SUBSCRIBER_STATUS_SCOPE)
        return counts.get(status, 0) if status else sum(counts.values())

    def batches(self, job: JobRecord, runtime: Runtime, heartbeat: Heartbeat) -> Iterator[BatchResult]:
        filters = job.options.get("filters") or {}
        status = SubscriberStatus(filters["status"]) if filters.get("status") else None
        checkpoint = dict(job.checkpoint)
        while not checkpoint.get("done"):
            part = int(checkpoint.get("parts", 0))
            page = runtime.store.subscribers.list(
                status=status, plan=filters.get("plan"), limit=self.page_rows, cursor=checkpoint.get("cursor")
            )
            heartbeat()  # a page is read and written as one batch
            self._write_part(job, runtime, part, page.items)
            checkpoint = {**checkpoint, "parts": part + 1, "cursor": page.next_cursor, "done": page.next_cursor is None}
            yield BatchResult(counts=JobCounts(processed=len(page.items)), checkpoint=checkpoint)

    def _write_part(self, job: JobRecord, runtime: Runtime, part: int, items: list[SubscriberRecord]) -> None:
        kind = job.options.get("format") or "csv"
        mask = bool(job.options.get("mask"))
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "part"
            with path.open("w", encoding="utf-8", newline="") as out:
                writer = csvsafe.writer(out, lineterminator="\r\n")
                if kind == "csv" and part == 0:
                    writer.writerow(EXPORT_COLUMNS)
                for item in items:
                    values = item.model_dump(mode="json", include=set(EXPORT_COLUMNS))
                    if mask:
                        values = mask_values(values)
                    if kind == "csv":
                        values["attributes"] = json.dumps(values["attributes"], sort_keys=True)
                        writer.writerow(values[name] for name in EXPORT_COLUMNS)
                    else:
                        out.write(json.dumps({name: values[name] for name in EXPORT_COLUMNS}) + "\n")
            runtime.blobs.put_file(_part_key(job.id, part), path, content_type="application/octet-stream")

    def finish(self, job: JobRecord, runtime: Runtime) -> dict[str, Any]:
        kind = job.options.get("format") or "csv"
        key = f"{EXPORT_PREFIX}{job.id}/subscribers.{kind}"
        parts = int(job.checkpoint.get("parts", 0))
        if runtime.blobs.size(key) is None or runtime.blobs.size(_part_key(job.id, 0)) is not None:
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "export"
                with path.open("wb") as out:
                    for part in range(parts):
                        with runtime.blobs.open(_part_key(job.id, part)) as source:
                            shutil.copyfileobj(source, out)
                runtime.blobs.put_file(key, path, content_type=CONTENT_TYPES[kind])
        for part in range(parts):
            runtime.blobs.delete(_part_key(job.id, part))
        return {"output_key": key}


def _part_key(job_id: str, part: int) -> str:
    return f"{EXPORT_PREFIX}{job_id}/part-{part:06d}"


register_kind("export")(SubscriberExport)
register_kind("import:subscribers")(SubscriberFileImport)
register_kind("delete:subscribers")(SubscriberDeleteFile)
register_kind("rollback:subscribers")(SubscriberRollback)
