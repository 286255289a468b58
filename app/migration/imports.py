"""What every file import shares: read, map and validate rows, in batches, resumably.

A concrete import (subscribers, users) supplies the target's field names, how one mapped row is
validated into a record, and how a batch of valid records is written (or, for a dry run, checked).
Row numbers are the file's data rows; the checkpoint is the last row of the last committed batch.

Batches are sized by time, so progress moves every few seconds on a slow store too: a job starts
with small batches and doubles them while they finish well within TARGET_BATCH_SECONDS (up to the
kind's `batch_rows`), and shrinks them in proportion when one takes longer. The size of the next
batch is kept in the checkpoint: a batch redone after a crash covers the same rows as the first
time (MongoDB's counter updates are keyed by a batch's first row and count its rows once).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from app.errors import field_code
from app.migration.engine import BatchResult, JobFailed
from app.migration.mapping import MappingSpec, RowMapper, mapping_of
from app.migration.readers import FileKind, SourceRow, check_file, read_rows
from app.runtime import Runtime
from app.storage.records import JobCounts, JobRecord, JobRowError

R = TypeVar("R")
TARGET_BATCH_SECONDS = 5.0  # progress every few seconds; long enough to fill whole transactions
START_BATCH_ROWS = 100
MIN_BATCH_ROWS = 20
Heartbeat = Callable[[], None]
MAX_RAW_VALUE = 200
DEFAULT_BATCH_ROWS = 500


@dataclass(frozen=True)
class ValidRow(Generic[R]):
    number: int
    record: R
    raw: dict[str, Any]


@dataclass
class WriteOutcome:
    """What a batch write did; `errors` are row-level refusals (e.g. a duplicate msisdn)."""

    created: int = 0
    updated: int = 0
    skipped: int = 0
    deleted: int = 0
    errors: list[JobRowError] | None = None


def next_batch_rows(size: int, *, seconds: float, ceiling: int) -> int:
    """Rows for the next batch after one of `size` rows took `seconds`, within [MIN_BATCH_ROWS, ceiling]."""
    if seconds > TARGET_BATCH_SECONDS:
        proposed = int(size * TARGET_BATCH_SECONDS / seconds)
    elif seconds < TARGET_BATCH_SECONDS / 2:
        proposed = 2 * size
    else:
        proposed = size
    return max(min(ceiling, MIN_BATCH_ROWS), min(ceiling, proposed))


def row_error(job_id: str, row: int, field: str, code: str, message: str, value: Any = None) -> JobRowError:
    text = None if value is None else str(value)[:MAX_RAW_VALUE]
    return JobRowError(job_id=job_id, row=row, field=field, code=code, message=message, value=text)


class FileImport(Generic[R]):
    """Base of the import job kinds. Subclasses set `fields` and implement `parse` and `write`."""

    fields: frozenset[str] = frozenset()
    batch_rows: int = DEFAULT_BATCH_ROWS

    # --- what a concrete import supplies ----------------------------------------------------------

    def parse(self, mapped: dict[str, Any], job: JobRecord, runtime: Runtime) -> R:
        """Validate one mapped row into a record with exactly the API's rules; raises ValidationError."""
        raise NotImplementedError

    def write(
        self, rows: list[ValidRow[R]], job: JobRecord, runtime: Runtime, *, dry_run: bool, heartbeat: Heartbeat
    ) -> WriteOutcome:
        """Write (or, for a dry run, check against the store) one batch of valid rows, calling
        `heartbeat` between writes."""
        raise NotImplementedError

    # --- the shared part --------------------------------------------------------------------------

    def mapper_for(self, spec: MappingSpec[Any]) -> RowMapper:
        return RowMapper(spec, self.fields)

    def mapper(self, job: JobRecord) -> RowMapper:
        return self.mapper_for(mapping_of(job.options.get("mapping") or {}))

    def _open(self, job: JobRecord, runtime: Runtime) -> Any:
        if not job.input_key:
            raise JobFailed("the job has no input file")
        return runtime.blobs.open(job.input_key)

    def validate(self, job: JobRecord, runtime: Runtime) -> int | None:
        kind: FileKind = job.options["format"]
        with self._open(job, runtime) as stream:
            summary = check_file(stream, kind, delimiter=job.options.get("delimiter"))
        mapper = self.mapper(job)
        if summary.columns is not None and mapper.spec.unmapped == "reject":
            unmapped = mapper.unmapped_columns(summary.columns)
            if unmapped:
                raise JobFailed(
                    f"columns not mapped to any field: {', '.join(unmapped)} "
                    "(map them, or set mapping.unmapped to 'attributes' or 'ignore')"
                )
        return summary.rows

    def batches(self, job: JobRecord, runtime: Runtime, heartbeat: Heartbeat) -> Iterator[BatchResult]:
        mapper = self.mapper(job)
        dry_run = bool(job.options.get("dry_run"))
        start_after = int(job.checkpoint.get("row", 0))
        with self._open(job, runtime) as stream:
            rows = read_rows(
                stream, job.options["format"], delimiter=job.options.get("delimiter"), start_after=start_after
            )
            size = int(job.checkpoint.get("batch_rows") or min(self.batch_rows, START_BATCH_ROWS))
            batch: list[SourceRow] = []
            started = time.monotonic()
            for row in rows:
                batch.append(row)
                if len(batch) >= size:
                    result = self._process(batch, mapper, job, runtime, dry_run, heartbeat)
                    size = next_batch_rows(size, seconds=time.monotonic() - started, ceiling=self.batch_rows)
                    result.checkpoint["batch_rows"] = size
                    yield result
                    batch = []
                    started = time.monotonic()
            if batch:
                yield self._process(batch, mapper, job, runtime, dry_run, heartbeat)

    def finish(self, job: JobRecord, runtime: Runtime) -> dict[str, Any]:
        return {}

    def _process(
        self,
        batch: list[SourceRow],
        mapper: RowMapper,
        job: JobRecord,
        runtime: Runtime,
        dry_run: bool,
        heartbeat: Heartbeat,
    ) -> BatchResult:
        errors: list[JobRowError] = []
        valid: list[ValidRow[R]] = []
        for row in batch:
            row_errors = self._check_row(row, mapper, job, runtime, valid)
            errors.extend(row_errors)
        outcome = WriteOutcome()
        if valid:
            outcome = self.write(valid, job, runtime, dry_run=dry_run, heartbeat=heartbeat)
        write_errors = outcome.errors or []
        errors.extend(write_errors)
        failed_rows = len({error.row for error in errors})
        counts = JobCounts(
            processed=len(batch),
            created=outcome.created,
            updated=outcome.updated,
            skipped=outcome.skipped,
            deleted=outcome.deleted,
            failed=failed_rows,
        )
        return BatchResult(counts=counts, errors=errors, checkpoint={**job.checkpoint, "row": batch[-1].number})

    def _check_row(
        self, row: SourceRow, mapper: RowMapper, job: JobRecord, runtime: Runtime, valid: list[ValidRow[R]]
    ) -> list[JobRowError]:
        if row.problem:
            return [row_error(job.id, row.number, "row", "malformed_row", row.problem)]
        mapped, problems = mapper.apply(row.values)
        if problems:
            return [row_error(job.id, row.number, p.field, p.code, p.message, p.value) for p in problems]
        try:
            record = self.parse(mapped, job, runtime)
        except ValidationError as exc:
            return [
                row_error(
                    job.id,
                    row.number,
                    ".".join(str(part) for part in item["loc"]) or "row",
                    field_code(str(item["type"])).value,
                    str(item["msg"]).removeprefix("Value error, "),
                    _raw_value(mapped, item["loc"]),
                )
                for item in exc.errors(include_url=False)
            ]
        valid.append(ValidRow(row.number, record, mapped))
        return []


def _raw_value(mapped: dict[str, Any], location: tuple[int | str, ...]) -> Any:
    value: Any = mapped
    for part in location:
        if isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return None
    return value
