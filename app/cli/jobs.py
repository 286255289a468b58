"""`portal import`, `portal export` and `portal jobs ...`: bulk jobs, the same job records as the API's,
run inline in this process with a progress bar."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from app.cli import common
from app.cli.common import ERRORS_SHOWN, console, private_file, stdout
from app.runtime import Runtime
from app.storage.records import JobStatus, JobType

if TYPE_CHECKING:
    from rich.table import Table

    from app.storage.base import Page
    from app.storage.records import JobRecord, JobRowError

app = typer.Typer(help="Bulk jobs.", no_args_is_help=True)


class _Deferred:
    """Dispatcher of the CLI: jobs are run right here, with a progress bar, not handed off."""

    def submit(self, job_id: str) -> None:
        return None


def _cli_principal() -> Any:
    from app.auth.service import Principal
    from app.storage.records import Role

    # The operator at the console administers the store (like `users create-admin`).
    return Principal(username="cli", role=Role.ADMIN)


def _job_request(values: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    from app.migration.schemas import JobCreate

    try:
        return JobCreate.model_validate(values).root
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            where = ".".join(str(part) for part in error["loc"]) or "options"
            console.print(f"[red]{where}: {str(error['msg']).removeprefix('Value error, ')}[/red]")
        raise typer.Exit(2) from None


# What a job's progress and summary count, by kind: (label, JobCounts field).
COUNTS_SHOWN: dict[str, tuple[tuple[str, str], ...]] = {
    "import": (("created", "created"), ("updated", "updated"), ("errors", "failed")),
    "export": (("exported", "processed"),),
    "delete": (("deleted", "deleted"), ("errors", "failed")),
    "rollback": (("deleted", "deleted"), ("kept", "skipped"), ("errors", "failed")),  # kept: changed since
}


def _counted(job: JobRecord) -> str:
    """The counts that matter for the job's kind: `created 2, updated 0, errors 1`."""
    return ", ".join(f"{label} {getattr(job.counts, field)}" for label, field in COUNTS_SHOWN[job.type.value])


def _rows(job: JobRecord) -> str:
    c = job.counts
    if c.total is None:
        return str(c.processed)
    percent = f" ({job.percent:.0f}%)" if job.percent is not None else ""
    return f"{c.processed}/{c.total}{percent}"


def _kind(job: JobRecord) -> str:
    target = job.options.get("target")
    return f"{job.type.value} {target}" if target else job.type.value


@contextmanager
def _progress(job_id: str) -> Iterator[Callable[[JobRecord], None]]:
    """What the engine calls after validation and after every batch: a bar on a terminal; elsewhere
    (a log, a pipe), where a bar would only show its end, one line per call."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if not console.is_terminal:
        yield lambda job: console.print(
            f"job {job.id[:8]} {job.status.value} rows {_rows(job)}, {_counted(job)}", soft_wrap=True
        )
        return
    columns = (BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[counted]}"), TimeElapsedColumn())
    with Progress(TextColumn("[bold]{task.description}"), *columns, console=console) as bar:
        task = bar.add_task(f"job {job_id[:8]}", total=None, counted="")

        def show(job: JobRecord) -> None:
            bar.update(task, total=job.counts.total, completed=job.counts.processed, counted=_counted(job))

        yield show


def _run_with_progress(runtime: Runtime, job_id: str) -> JobRecord | None:
    from app.migration import worker

    engine = worker.engine(runtime)
    try:
        with _progress(job_id) as show:
            return engine.run(job_id, progress=show)
    except KeyboardInterrupt:
        # Ctrl-C: what was written stays written (each write is atomic, rows are idempotent);
        # the lease is freed so the job resumes at once from its last checkpoint.
        engine.release(job_id)
        console.print(f"[yellow]interrupted; resume with: portal jobs run {job_id}[/yellow]")
        raise typer.Exit(130) from None


def _summary(runtime: Runtime, job: JobRecord) -> None:
    from rich.table import Table
    from rich.text import Text

    from app.migration.service import JobService

    table = Table("", "", title="Job summary", show_header=False)
    table.add_row("job", job.id)
    table.add_row("kind", _kind(job))
    table.add_row("status", job.status.value)
    table.add_row("rows", _rows(job))
    table.add_row("counts", _counted(job))
    if job.output_key:
        table.add_row("file", job.output_key)
    table.add_row("submitted", f"{job.created_at:%Y-%m-%d %H:%M:%S} by {job.created_by}")
    for label, at in (("started", job.started_at), ("finished", job.finished_at)):
        if at is not None:
            table.add_row(label, f"{at:%Y-%m-%d %H:%M:%S}")
    stdout().print(table)
    if job.error_summary:
        console.print(Text(job.error_summary, style="red"))  # may quote the input: no [markup]
    errors = JobService(runtime).errors_page(_cli_principal(), job.id, limit=ERRORS_SHOWN, cursor=None)
    if errors.items:
        stdout().print(_errors_table(errors.items, title=f"First {len(errors.items)} row report(s)"))
        console.print(f"full report: portal jobs errors {job.id} --format csv -o errors.csv")


def _errors_table(errors: list[JobRowError], *, title: str) -> Table:
    from rich.table import Table
    from rich.text import Text

    report = Table("row", "field", "code", "message", "value", title=title)
    for error in errors:
        # Raw input: shown as plain text (Text drops control codes and reads no [markup]).
        cells = (error.field, error.code, error.message, error.value or "")
        report.add_row(str(error.row), *(Text(cell) for cell in cells))
    return report


def _finish(runtime: Runtime, job: JobRecord | None) -> None:
    if job is None:
        console.print("[yellow]another worker holds this job (or it already ended); nothing run[/yellow]")
        raise typer.Exit(1)
    _summary(runtime, job)
    if job.status is not JobStatus.COMPLETED:
        raise typer.Exit(1)


def import_file(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV, JSON or NDJSON.")],
    target: Annotated[Literal["subscribers", "users"], typer.Option(help="What the rows are.")] = "subscribers",
    mapping: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="Mapping JSON (columns, transforms, defaults).")
    ] = None,
    mode: Annotated[Literal["create", "upsert", "update"], typer.Option(help="Subscribers: import mode.")] = "create",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check everything, write nothing.")] = False,
    file_format: Annotated[
        Literal["csv", "json", "ndjson"] | None, typer.Option("--format", help="Default: from the file name.")
    ] = None,
    delimiter: Annotated[str | None, typer.Option(help="CSV delimiter; detected when omitted.")] = None,
    region: Annotated[str | None, typer.Option(help="Region of national MSISDNs (ISO 3166, e.g. GB).")] = None,
) -> None:
    """Import a file of subscribers (or users) as a job, run here with a progress bar."""
    import json

    from app.migration.readers import kind_from_name
    from app.migration.service import CONTENT_TYPES, JobService

    kind = file_format or kind_from_name(file.name)
    if kind is None:
        console.print("[red]--format: can't tell the format from the file name; give csv, json or ndjson[/red]")
        raise typer.Exit(2)
    values: dict[str, Any] = {
        "type": "import",
        "target": target,
        "format": kind,
        "delimiter": delimiter,
        "mode": mode,
        "dry_run": dry_run,
        "file_name": file.name,
    }
    if region:
        values["default_region"] = region
    if mapping is not None:
        try:
            values["mapping"] = json.loads(mapping.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            console.print(f"[red]--mapping: not valid JSON ({exc})[/red]")
            raise typer.Exit(2) from None
    request = _job_request(values)
    runtime = common.open_runtime()
    try:
        runtime.provide("job_dispatcher", _Deferred())
        job = _create(runtime, request)
        assert job.input_key is not None
        runtime.blobs.put_file(job.input_key, file, content_type=CONTENT_TYPES[kind])
        JobService(runtime).start(job)
        _finish(runtime, _run_with_progress(runtime, job.id))
    finally:
        runtime.close()


def _create(runtime: Runtime, request: Any) -> JobRecord:
    from app.errors import DomainError
    from app.migration.service import JobService

    try:
        return JobService(runtime).create_job(_cli_principal(), request)
    except DomainError as exc:
        raise _refused(exc) from None


def export(
    status: Annotated[
        Literal["ACTIVE", "INACTIVE", "SUSPENDED", "TERMINATED"] | None, typer.Option(help="Only this status.")
    ] = None,
    plan: Annotated[str | None, typer.Option(help="Only this plan.")] = None,
    file_format: Annotated[Literal["csv", "ndjson"], typer.Option("--format")] = "csv",
    mask: Annotated[bool, typer.Option("--mask", help="Mask IMSI, ICCID and email.")] = False,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write the file here too.")] = None,
) -> None:
    """Export subscribers as a job; the file is kept with the job and, with -o, copied here."""
    import shutil

    filters = {name: value for name, value in (("status", status), ("plan", plan)) if value}
    request = _job_request({"type": "export", "format": file_format, "filters": filters or None, "mask": mask})
    runtime = common.open_runtime()
    try:
        runtime.provide("job_dispatcher", _Deferred())
        job = _create(runtime, request)
        done = _run_with_progress(runtime, job.id)
        if done is not None and done.output_key and output is not None:
            with runtime.blobs.open(done.output_key) as source, private_file(output) as target:
                shutil.copyfileobj(source, target)
            console.print(f"[green]wrote {output}[/green]")
        _finish(runtime, done)
    finally:
        runtime.close()


@app.command("run")
def run_job(job_id: Annotated[str, typer.Argument(help="The job to run or resume.")]) -> None:
    """Run a job, or resume a stalled one from its checkpoint once its worker's lease lapsed."""
    runtime = common.open_runtime()
    try:
        runtime.provide("job_dispatcher", _Deferred())
        job = runtime.store.jobs.get(job_id)
        if job is None:
            console.print(f"[red]no job {job_id!r}[/red]")
            raise typer.Exit(2)
        if job.status.finished:
            _finish(runtime, job)
            return
        _finish(runtime, _run_with_progress(runtime, job_id))
    finally:
        runtime.close()


def _job(runtime: Runtime, job_id: str) -> JobRecord:
    from app.errors import DomainError
    from app.migration.service import JobService

    try:
        return JobService(runtime).get_job(_cli_principal(), job_id)
    except DomainError as exc:
        raise _refused(exc) from None


def _refused(exc: Exception) -> typer.Exit:
    """A service's refusal as one red line (its field errors, else its detail); exit status 2."""
    fields = [f"{e.field}: {e.message}" for e in getattr(exc, "errors", None) or []]
    console.print(f"[red]{'; '.join(fields) or getattr(exc, 'detail', None) or exc}[/red]")
    return typer.Exit(2)


@app.command("list")
def list_jobs(
    status: Annotated[JobStatus | None, typer.Option(help="Only jobs in this status.")] = None,
    kind: Annotated[JobType | None, typer.Option(help="Only jobs of this kind.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many, newest first.")] = 20,
) -> None:
    """List jobs newest first: kind, status, rows done and the counts that matter for the kind."""
    from rich.table import Table

    from app.migration.service import JobService

    runtime = common.open_runtime()
    try:
        page: Page[JobRecord] = JobService(runtime).list_jobs(
            _cli_principal(), status=status, job_type=kind, limit=limit, cursor=None
        )
    finally:
        runtime.close()
    table = Table(title="Jobs, newest first")
    table.add_column("job", no_wrap=True, min_width=32)  # whole, to copy into `portal jobs show`
    for name in ("kind", "status", "rows", "counts", "submitted"):
        table.add_column(name)
    for job in page.items:
        submitted = f"{job.created_at:%Y-%m-%d %H:%M} by {job.created_by}"
        table.add_row(job.id, _kind(job), job.status.value, _rows(job), _counted(job), submitted)
    stdout().print(table)
    if page.next_cursor:
        console.print(f"more jobs than these {len(page.items)}: raise --limit (at most 1000) or filter")


@app.command("show")
def show_job(job_id: Annotated[str, typer.Argument(help="The job.")]) -> None:
    """One job: its kind, status, progress, the counts of its kind, its file and its first row reports."""
    runtime = common.open_runtime()
    try:
        _summary(runtime, _job(runtime, job_id))
    finally:
        runtime.close()


@app.command("errors")
def job_errors(
    job_id: Annotated[str, typer.Argument(help="The job.")],
    file_format: Annotated[
        Literal["table", "csv"], typer.Option("--format", help="table: the first --limit; csv: every one.")
    ] = "table",
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Rows of the table.")] = 100,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="CSV: write it here (owner-only).")] = None,
) -> None:
    """The job's row reports (rows refused, with field, code, message and raw value), unmasked as
    the operator sees them in the API. CSV cells a spreadsheet would run are neutralised."""
    from app.migration.service import JobService

    runtime = common.open_runtime()
    try:
        job = _job(runtime, job_id)
        if file_format == "table":
            page = JobService(runtime).errors_page(_cli_principal(), job.id, limit=limit, cursor=None)
            stdout().print(_errors_table(page.items, title=f"Row reports of job {job.id}"))
            if page.next_cursor:
                console.print(f"more than {limit}: the whole report with --format csv")
            return
        chunks = JobService(runtime).errors_csv(_cli_principal(), job.id)
        if output is None:
            for chunk in chunks:
                typer.echo(chunk, nl=False)
            return
        with private_file(output) as target:
            for chunk in chunks:
                target.write(chunk.encode("utf-8"))
        console.print(f"[green]wrote {output}[/green]")
    finally:
        runtime.close()


class _Collected:
    """Dispatcher of `jobs sweep`: keeps the jobs the sweep resumes, to run them here afterwards."""

    def __init__(self) -> None:
        self.job_ids: list[str] = []

    def submit(self, job_id: str) -> None:
        self.job_ids.append(job_id)


@app.command("sweep")
def sweep_jobs(
    stale_after: Annotated[
        int | None,
        typer.Option(
            "--stale-after",
            min=0,
            help="Seconds since a job's last checkpoint after which it counts as stalled (its lease must have "
            "lapsed too). Default: the scheduled sweep's, 300.",
        ),
    ] = None,
) -> None:
    """Resume stalled jobs from their checkpoints, run here with a progress bar, and fail those that keep stalling.

    The same sweep as the scheduled `sweep-jobs` task. Exit status 1: it failed a job, or a resumed job had errors.
    """
    from datetime import timedelta

    from app.migration import worker
    from app.migration.engine import STALE_AFTER

    runtime = common.open_runtime()
    collected = _Collected()
    clean = True
    try:
        runtime.provide("job_dispatcher", collected)
        after = STALE_AFTER if stale_after is None else timedelta(seconds=stale_after)
        result = worker.sweep(runtime, collected, stale_after=after)
        for job_id in result["failed"]:
            clean = False
            job = runtime.store.jobs.get(job_id)
            console.print(f"[red]job {job_id}: {job.error_summary if job else 'failed'}[/red]")
        if not result["resumed"] and not result["failed"]:
            console.print("[green]no stalled jobs[/green]")
        for job_id in collected.job_ids:
            console.print(f"resuming job {job_id}")
            done = _run_with_progress(runtime, job_id)
            if done is None:
                console.print("[yellow]another worker took it meanwhile; not run here[/yellow]")
                continue
            _summary(runtime, done)
            clean = clean and done.status is JobStatus.COMPLETED
    finally:
        runtime.close()
    if not clean:
        raise typer.Exit(1)
