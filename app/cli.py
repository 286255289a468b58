"""`portal` command line: administration against the configured store.

portal users create-admin USERNAME        # password from a prompt, or stdin with --password-stdin
portal reconcile-counters [--fix]         # recount subscribers by status and plan; report (and fix) drift
portal import FILE [--target ...] [--mapping mapping.json] [--mode ...] [--dry-run]
portal export [--status ...] [--plan ...] [--format csv|ndjson] [--mask] [-o FILE]
portal jobs list [--status ...] [--kind ...] [--limit N]   # newest first
portal jobs show JOB_ID                   # progress, the counts of its kind, its file, first row reports
portal jobs errors JOB_ID [--format table|csv] [-o FILE]  # the row reports (CSV: all, neutralised)
portal jobs run JOB_ID                    # resume a stalled job (its lease must have lapsed)
portal jobs sweep [--stale-after SECONDS] # what the scheduled sweep does, resumed jobs run here
portal migrate-store --source mongo --target dynamodb [--source-mongodb-uri ...] [--target-dynamodb-table ...]
                                          # copy every record to another store, resumable, then verify
portal local-db status|start|stop         # the local DynamoDB engine of DATA_DIR (local mode)

Jobs started here are the same job records as the API's (listed, reported and rolled back there);
they run inline in this process with a progress bar (on a terminal; elsewhere a line per batch).
The CLI acts as an admin of the store it is configured for (it holds the store's credentials), so
row reports show raw values, as they are to operators in the API.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console

from app.config import ConfigurationError, Settings, load_settings
from app.localfiles import open_private
from app.runtime import Runtime
from app.storage.records import JobStatus, JobType

app = typer.Typer(help="Subscriber Portal administration.", no_args_is_help=True, add_completion=False)
users_app = typer.Typer(help="User accounts.", no_args_is_help=True)
app.add_typer(users_app, name="users")
jobs_app = typer.Typer(help="Bulk jobs.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
local_db_app = typer.Typer(help="The local DynamoDB engine of DATA_DIR (local mode).", no_args_is_help=True)
app.add_typer(local_db_app, name="local-db")
console = Console(stderr=True)

if TYPE_CHECKING:
    from rich.table import Table

    from app.storage.base import Page
    from app.storage.records import JobRecord, JobRowError


def cli_settings() -> Settings:
    """The same settings the API would use (environment / .env), minus demo data: the CLI administers
    whatever store is configured and never seeds it."""
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    return settings.model_copy(update={"seed_demo_data": False})


def open_runtime() -> Runtime:
    return Runtime(cli_settings())


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@users_app.command("create-admin")
def create_admin(
    username: Annotated[str, typer.Argument(help="Login name of the new admin.")],
    email: Annotated[str | None, typer.Option(help="Email address.")] = None,
    full_name: Annotated[str | None, typer.Option("--full-name", help="Display name.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input (for scripts).")
    ] = False,
) -> None:
    """Create an admin account (e.g. the first one). The password is never taken from the command line."""
    from pydantic import ValidationError

    from app.auth.deps import auth_service_of
    from app.auth.schemas import UserCreate
    from app.errors import DomainError
    from app.storage.base import StorageError
    from app.storage.records import Role

    runtime = open_runtime()
    try:
        request = UserCreate(
            username=username,
            password=_read_password(password_stdin),
            role=Role.ADMIN,
            email=email,
            full_name=full_name,
        )
        user = auth_service_of(runtime).create_user("cli", request)
    except ValidationError as exc:
        for error in exc.errors():
            console.print(f"[red]{'.'.join(map(str, error['loc']))}: {error['msg']}[/red]")
        raise typer.Exit(1) from None
    except (DomainError, StorageError) as exc:
        detail = getattr(exc, "detail", None) or str(exc)
        fields = [f"{e.field}: {e.message}" for e in getattr(exc, "errors", None) or []]
        console.print(f"[red]{'; '.join(fields) or detail}[/red]")
        raise typer.Exit(1) from None
    finally:
        runtime.close()
    console.print(f"[green]created admin {user.username!r}[/green]")


@app.command("migrate-indexes")
def migrate_indexes() -> None:
    """MongoDB only: rebuild the indexes whose keys or options changed in a release, and drop
    those it no longer names (readiness lists them). Run it before or right after an upgrade."""
    from app.storage.mongo import database
    from app.storage.mongo.store import MongoStore

    runtime = open_runtime()
    try:
        store = runtime.store
        if not isinstance(store, MongoStore):
            console.print("[red]migrate-indexes: the store is not MongoDB[/red]")
            raise typer.Exit(1)
        done = database.migrate_indexes(store.db)
    finally:
        runtime.close()
    for line in done:
        console.print(line)
    console.print("[green]every index matches the model[/green]")


@app.command("reconcile-counters")
def reconcile_counters(
    fix: Annotated[bool, typer.Option("--fix", help="Overwrite drifted counters with the recounted values.")] = False,
) -> None:
    """Recount subscribers by status and plan and compare with the dashboard counters.

    Reads every subscriber: run it when writes are quiet (a write during the recount shows up as drift).

    Without --fix it only reports, and exits with status 1 when it found drift (so a scheduled run can alert).
    """
    from rich.table import Table

    from app.storage.base import StorageError
    from app.subscribers.service import SubscriberService

    runtime = open_runtime()
    try:
        drift = SubscriberService(runtime.store, runtime.settings).reconcile_counters(fix=fix)
    except StorageError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    finally:
        runtime.close()
    if not drift:
        console.print("[green]subscriber counters match the data[/green]")
        return
    table = Table("scope", "key", "stored", "actual", title="Counter drift")
    for item in drift:
        table.add_row(item.scope, item.key, str(item.stored), str(item.actual))
    Console().print(table)
    if fix:
        console.print(f"[green]fixed {len(drift)} counter(s)[/green]")
        return
    console.print(f"[yellow]{len(drift)} counter(s) drifted; run again with --fix to repair them[/yellow]")
    raise typer.Exit(1)


# --- bulk jobs ----------------------------------------------------------------------------------------

ERRORS_SHOWN = 10


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

    from app.migration import service

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
    _stdout().print(table)
    if job.error_summary:
        console.print(Text(job.error_summary, style="red"))  # may quote the input: no [markup]
    errors = service.errors_page(runtime, _cli_principal(), job.id, limit=ERRORS_SHOWN, cursor=None)
    if errors.items:
        _stdout().print(_errors_table(errors.items, title=f"First {len(errors.items)} row report(s)"))
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


def _stdout() -> Console:
    """Tables go to standard output (messages and progress to standard error)."""
    return Console()


def _private_file(path: Path) -> IO[bytes]:
    """A file the CLI writes for the user holds personal data: created owner-only (0600)."""
    return os.fdopen(open_private(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "wb")


def _finish(runtime: Runtime, job: JobRecord | None) -> None:
    if job is None:
        console.print("[yellow]another worker holds this job (or it already ended); nothing run[/yellow]")
        raise typer.Exit(1)
    _summary(runtime, job)
    if job.status is not JobStatus.COMPLETED:
        raise typer.Exit(1)


@app.command("import")
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

    from app.migration import service
    from app.migration.readers import kind_from_name

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
    runtime = open_runtime()
    try:
        runtime.provide("job_dispatcher", _Deferred())
        job = _create(runtime, request)
        assert job.input_key is not None
        runtime.blobs.put_file(job.input_key, file, content_type=service.CONTENT_TYPES[kind])
        service.start(runtime, job)
        _finish(runtime, _run_with_progress(runtime, job.id))
    finally:
        runtime.close()


def _create(runtime: Runtime, request: Any) -> JobRecord:
    from app.errors import DomainError
    from app.migration import service

    try:
        return service.create_job(runtime, _cli_principal(), request)
    except DomainError as exc:
        fields = [f"{e.field}: {e.message}" for e in getattr(exc, "errors", None) or []]
        console.print(f"[red]{'; '.join(fields) or getattr(exc, 'detail', None) or exc}[/red]")
        raise typer.Exit(2) from None


@app.command("export")
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
    runtime = open_runtime()
    try:
        runtime.provide("job_dispatcher", _Deferred())
        job = _create(runtime, request)
        done = _run_with_progress(runtime, job.id)
        if done is not None and done.output_key and output is not None:
            with runtime.blobs.open(done.output_key) as source, _private_file(output) as target:
                shutil.copyfileobj(source, target)
            console.print(f"[green]wrote {output}[/green]")
        _finish(runtime, done)
    finally:
        runtime.close()


@jobs_app.command("run")
def run_job(job_id: Annotated[str, typer.Argument(help="The job to run or resume.")]) -> None:
    """Run a job, or resume a stalled one from its checkpoint once its worker's lease lapsed."""
    runtime = open_runtime()
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
    from app.migration import service

    try:
        return service.get_job(runtime, _cli_principal(), job_id)
    except DomainError as exc:
        console.print(f"[red]{getattr(exc, 'detail', None) or exc}[/red]")
        raise typer.Exit(2) from None


@jobs_app.command("list")
def list_jobs(
    status: Annotated[JobStatus | None, typer.Option(help="Only jobs in this status.")] = None,
    kind: Annotated[JobType | None, typer.Option(help="Only jobs of this kind.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many, newest first.")] = 20,
) -> None:
    """List jobs newest first: kind, status, rows done and the counts that matter for the kind."""
    from rich.table import Table

    from app.migration import service

    runtime = open_runtime()
    try:
        page: Page[JobRecord] = service.list_jobs(
            runtime, _cli_principal(), status=status, job_type=kind, limit=limit, cursor=None
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
    _stdout().print(table)
    if page.next_cursor:
        console.print(f"more jobs than these {len(page.items)}: raise --limit (at most 1000) or filter")


@jobs_app.command("show")
def show_job(job_id: Annotated[str, typer.Argument(help="The job.")]) -> None:
    """One job: its kind, status, progress, the counts of its kind, its file and its first row reports."""
    runtime = open_runtime()
    try:
        _summary(runtime, _job(runtime, job_id))
    finally:
        runtime.close()


@jobs_app.command("errors")
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
    from app.migration import service

    runtime = open_runtime()
    try:
        job = _job(runtime, job_id)
        if file_format == "table":
            page = service.errors_page(runtime, _cli_principal(), job.id, limit=limit, cursor=None)
            _stdout().print(_errors_table(page.items, title=f"Row reports of job {job.id}"))
            if page.next_cursor:
                console.print(f"more than {limit}: the whole report with --format csv")
            return
        chunks = service.errors_csv(runtime, _cli_principal(), job.id)
        if output is None:
            for chunk in chunks:
                typer.echo(chunk, nl=False)
            return
        with _private_file(output) as target:
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


@jobs_app.command("sweep")
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

    runtime = open_runtime()
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


# --- store-to-store migration ---------------------------------------------------------------------

Backend = Literal["dynamodb", "mongo"]
_CREDENTIALS = re.compile(r"://[^@/]*@")


def _side(name: str, option: str, help_text: str) -> Any:
    """An option of one side of migrate-store, also read from e.g. SOURCE_MONGODB_URI."""
    side = name.upper()
    return typer.Option(f"--{name}-{option}", envvar=f"{side}_{option.upper().replace('-', '_')}", help=help_text)


def _side_settings(
    base: Settings,
    backend: Backend,
    *,
    table: str | None,
    endpoint_url: str | None,
    region: str | None,
    mongodb_uri: str | None,
    database: str | None,
    side: str,
) -> Settings:
    from pydantic import SecretStr

    changes: dict[str, Any] = {"storage_backend": backend}
    if backend == "dynamodb":
        changes.update(
            dynamodb_table=table or base.dynamodb_table,
            dynamodb_endpoint_url=endpoint_url or base.dynamodb_endpoint_url,
            aws_region=region or base.aws_region,
        )
    else:
        uri = mongodb_uri or (base.mongodb_uri.get_secret_value() if base.mongodb_uri else None)
        if not uri:
            console.print(f"[red]--{side}-mongodb-uri (or {side.upper()}_MONGODB_URI) is required for mongo[/red]")
            raise typer.Exit(2)
        changes.update(mongodb_uri=SecretStr(uri), mongodb_database=database or base.mongodb_database)
    return base.model_copy(update=changes)


def _label(settings: Settings) -> str:
    """Names a store without its credentials (state files and reports)."""
    if settings.backend == "mongo":
        assert settings.mongodb_uri is not None
        uri = _CREDENTIALS.sub("://", settings.mongodb_uri.get_secret_value())
        return f"mongo {uri} database {settings.mongodb_database}"
    where = settings.dynamodb_endpoint_url or (
        f"local engine of {settings.data_dir.resolve()}" if settings.uses_local_engine else "AWS"
    )
    return f"dynamodb {settings.aws_region} table {settings.dynamodb_table} ({where})"


@app.command("migrate-store")
def migrate_store(
    source: Annotated[Backend, typer.Option(help="The store to copy from.")],
    target: Annotated[Backend, typer.Option(help="The store to copy into.")],
    source_dynamodb_table: Annotated[str | None, _side("source", "dynamodb-table", "Default: DYNAMODB_TABLE.")] = None,
    source_dynamodb_endpoint_url: Annotated[
        str | None, _side("source", "dynamodb-endpoint-url", "E.g. DynamoDB Local.")
    ] = None,
    source_aws_region: Annotated[str | None, _side("source", "aws-region", "Default: AWS_REGION.")] = None,
    source_mongodb_uri: Annotated[
        str | None, _side("source", "mongodb-uri", "Prefer the env var: a password on the command line is visible.")
    ] = None,
    source_mongodb_database: Annotated[
        str | None, _side("source", "mongodb-database", "Default: MONGODB_DATABASE.")
    ] = None,
    target_dynamodb_table: Annotated[str | None, _side("target", "dynamodb-table", "Default: DYNAMODB_TABLE.")] = None,
    target_dynamodb_endpoint_url: Annotated[
        str | None, _side("target", "dynamodb-endpoint-url", "E.g. DynamoDB Local.")
    ] = None,
    target_aws_region: Annotated[str | None, _side("target", "aws-region", "Default: AWS_REGION.")] = None,
    target_mongodb_uri: Annotated[
        str | None, _side("target", "mongodb-uri", "Prefer the env var: a password on the command line is visible.")
    ] = None,
    target_mongodb_database: Annotated[
        str | None, _side("target", "mongodb-database", "Default: MONGODB_DATABASE.")
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, max=1000, help="Records read and written per batch.")
    ] = 99,  # store_copy.BATCH_SIZE, not imported here to keep `portal --help` quick
    state: Annotated[Path | None, typer.Option(help="State file (resume point). Default: under DATA_DIR.")] = None,
    restart: Annotated[
        bool, typer.Option("--restart", help="Ignore the saved state and copy everything again.")
    ] = False,
    allow_nonempty_target: Annotated[
        bool, typer.Option("--allow-nonempty-target", help="Copy into a store that already holds data (merge by key).")
    ] = False,
    verify_only: Annotated[bool, typer.Option("--verify-only", help="Compare the two stores; copy nothing.")] = False,
) -> None:
    """Copy every record (users with their hashes, subscribers, resources, bookings, jobs, audit, counters,
    sessions) from one store to another in batches, resumably, then verify counts and checksums.

    Stop the API's writes first: what changes during the copy shows up as differences. Exits 0 only when
    every kind matches and the target refused nothing.
    """
    import hashlib

    from app.migration import store_copy
    from app.storage.base import StorageError

    base = cli_settings()
    sides = {
        "source": _side_settings(
            base,
            source,
            table=source_dynamodb_table,
            endpoint_url=source_dynamodb_endpoint_url,
            region=source_aws_region,
            mongodb_uri=source_mongodb_uri,
            database=source_mongodb_database,
            side="source",
        ),
        "target": _side_settings(
            base,
            target,
            table=target_dynamodb_table,
            endpoint_url=target_dynamodb_endpoint_url,
            region=target_aws_region,
            mongodb_uri=target_mongodb_uri,
            database=target_mongodb_database,
            side="target",
        ),
    }
    source_label, target_label = _label(sides["source"]), _label(sides["target"])
    if source_label == target_label:
        console.print(f"[red]source and target are the same store ({source_label})[/red]")
        raise typer.Exit(2)
    copy_id = hashlib.sha256(f"{source_label}\n{target_label}".encode()).hexdigest()[:16]
    state_path = state or base.data_dir / "migrate-store" / f"{copy_id}.json"
    try:
        saved = None if restart else store_copy.CopyState.load(state_path)
    except (ValueError, TypeError):
        console.print(f"[red]--state: {state_path} is not a migrate-store state file[/red]")
        raise typer.Exit(2) from None
    if saved is not None and (saved.source, saved.target) != (source_label, target_label):
        console.print(f"[red]--state: {state_path} belongs to another copy ({saved.source} -> {saved.target})[/red]")
        raise typer.Exit(2)

    runtimes = [Runtime(sides["source"]), Runtime(sides["target"])]
    try:
        from_store, to_store = (runtime.store.transfer for runtime in runtimes)
        console.print(f"source: {source_label}\ntarget: {target_label}\nstate:  {state_path}")
        if not verify_only and saved is None:
            if (
                not restart
                and not allow_nonempty_target
                and from_store is not to_store
                and to_store.read(0, None, 1)[0]
            ):
                console.print(
                    "[red]the target already holds data; pass --allow-nonempty-target to merge into it "
                    "(records are upserted by key), or --restart to redo an earlier copy of this source[/red]"
                )
                raise typer.Exit(2)
            store_copy.refused_path(state_path).unlink(missing_ok=True)
            saved = store_copy.CopyState(source_label, target_label)
        with _steps() as advance:
            if saved is not None and not saved.copy_done and not verify_only:
                store_copy.copy(from_store, to_store, saved, state_path, batch_size=batch_size, progress=advance)
            verification = store_copy.verify(from_store, to_store, progress=advance)
    except StorageError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    finally:
        for runtime in runtimes:
            runtime.close()
    refused = store_copy.read_refused(state_path)
    _migration_report(verification, refused, state_path)
    if not verification.ok or refused:
        raise typer.Exit(1)


@contextmanager
def _steps() -> Iterator[Callable[[str, int], None]]:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        TextColumn("{task.completed} records"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        tasks: dict[str, Any] = {}

        def advance(step: str, records: int) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(step, total=None)
            bar.advance(tasks[step], records)

        yield advance


def _migration_report(verification: Any, refused: list[Any], state_path: Path) -> None:
    from rich.table import Table

    from app.migration.store_copy import refused_path

    table = Table("kind", "source", "target", "source checksum", "target checksum", "", title="Verification")
    for check in verification.checks:
        mark = "[green]ok[/green]" if check.ok else "[red]DIFFERENT[/red]"
        table.add_row(
            check.kind,
            str(check.source_count),
            str(check.target_count),
            f"{check.source_checksum:032x}"[:12],
            f"{check.target_checksum:032x}"[:12],
            mark,
        )
    Console().print(table)
    for line in verification.differences:
        console.print(f"[red]{line}[/red]")
    if refused:
        listed = refused_path(state_path)
        console.print(f"[red]{len(refused)} record(s) refused by the target (all of them in {listed}):[/red]")
        for item in refused[:ERRORS_SHOWN]:
            console.print(f"[red]  {item.kind} {'/'.join(item.key)}: {item.reason}[/red]")
    if verification.ok and not refused:
        console.print("[green]every record is in the target, byte for byte[/green]")


@local_db_app.command("status")
def local_db_status() -> None:
    """Show the engine serving DATA_DIR (endpoint, pid, memory); exit 1 when none is running."""
    import json

    from app.storage.local_engine import describe, engine_status

    data_dir = cli_settings().data_dir
    state, serving = engine_status(data_dir)
    if state is None or not serving:
        console.print(f"no DynamoDB Local is running for {data_dir.resolve()}")
        raise typer.Exit(1)
    typer.echo(json.dumps(describe(state)))


@local_db_app.command("start")
def local_db_start() -> None:
    """Start the engine of DATA_DIR if none is running, and print its endpoint."""
    from app.storage.local_engine import ensure_engine

    typer.echo(ensure_engine(cli_settings().data_dir).endpoint)


@local_db_app.command("stop")
def local_db_stop() -> None:
    """Stop the engine of DATA_DIR (its data stays on disk under DATA_DIR/dynamodb)."""
    from app.storage.local_engine import stop_engine

    data_dir = cli_settings().data_dir
    stopped = stop_engine(data_dir)
    if stopped is None:
        console.print(f"no DynamoDB Local was running for {data_dir.resolve()}")
    else:
        console.print(f"stopped DynamoDB Local (pid {stopped.pid}, port {stopped.port})")


def main() -> None:
    try:
        app()
    except ConfigurationError as exc:
        # E.g. no Java for the local engine, or a damaged state file: one line saying what to do.
        console.print(str(exc), style="red", markup=False, soft_wrap=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
