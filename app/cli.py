"""`portal` command line: administration against the configured store.

portal users create-admin USERNAME        # password from a prompt, or stdin with --password-stdin
portal reconcile-counters [--fix]         # recount subscribers by status and plan; report (and fix) drift
portal import FILE [--target ...] [--mapping mapping.json] [--mode ...] [--dry-run]
portal export [--status ...] [--plan ...] [--format csv|ndjson] [--mask] [-o FILE]
portal jobs run JOB_ID                    # resume a stalled job (its lease must have lapsed)

Jobs started here are the same job records as the API's (listed, reported and rolled back there);
they run inline in this process with a progress bar.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console

from app.config import ConfigurationError, load_settings
from app.runtime import Runtime

app = typer.Typer(help="Subscriber Portal administration.", no_args_is_help=True, add_completion=False)
users_app = typer.Typer(help="User accounts.", no_args_is_help=True)
app.add_typer(users_app, name="users")
jobs_app = typer.Typer(help="Bulk jobs.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
console = Console(stderr=True)

if TYPE_CHECKING:
    from app.storage.records import JobRecord


def open_runtime() -> Runtime:
    """The same settings and store the API would use (environment / .env)."""
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    # The CLI never seeds demo data: it administers whatever store is configured.
    return Runtime(settings.model_copy(update={"seed_demo_data": False}))


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
    return Principal(username="cli", role=Role.ADMIN, jti="cli", expires_at=0, family_id=None)


def _job_request(values: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    from app.migration.schemas import JobCreate

    try:
        return JobCreate.model_validate(values)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            where = ".".join(str(part) for part in error["loc"]) or "options"
            console.print(f"[red]{where}: {str(error['msg']).removeprefix('Value error, ')}[/red]")
        raise typer.Exit(2) from None


def _run_with_progress(runtime: Runtime, job_id: str) -> JobRecord | None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from app.migration import worker

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("created {task.fields[created]} updated {task.fields[updated]} failed {task.fields[failed]}"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task(f"job {job_id[:8]}", total=None, created=0, updated=0, failed=0)

        def show(job: JobRecord) -> None:
            c = job.counts
            bar.update(
                task, total=c.total, completed=c.processed, created=c.created, updated=c.updated, failed=c.failed
            )

        result: JobRecord | None = worker.engine(runtime).run(job_id, progress=show)
        return result


def _summary(runtime: Runtime, job: JobRecord) -> None:
    from rich.table import Table

    c = job.counts
    table = Table("", "", title="Job summary", show_header=False)
    table.add_row("job", job.id)
    table.add_row("status", job.status.value)
    for name in ("total", "processed", "created", "updated", "deleted", "skipped", "failed"):
        value = getattr(c, name)
        table.add_row(name, "-" if value is None else str(value))
    Console().print(table)
    if job.error_summary:
        console.print(f"[red]{job.error_summary}[/red]")
    errors = runtime.store.jobs.list_errors(job.id, limit=ERRORS_SHOWN).items
    if errors:
        report = Table("row", "field", "code", "message", "value", title=f"First {len(errors)} row report(s)")
        for error in errors:
            report.add_row(str(error.row), error.field, error.code, error.message, error.value or "")
        Console().print(report)
        console.print(f"full report: GET /migration/jobs/{job.id}/errors?format=csv (or the job's page in the portal)")


def _finish(runtime: Runtime, job: JobRecord | None) -> None:
    from app.storage.records import JobStatus

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
        job, _ = _create(runtime, request)
        assert job.input_key is not None
        runtime.blobs.put_file(job.input_key, file, content_type=service.CONTENT_TYPES[kind])
        service.start(runtime, job)
        _finish(runtime, _run_with_progress(runtime, job.id))
    finally:
        runtime.close()


def _create(runtime: Runtime, request: Any) -> tuple[JobRecord, Any]:
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
        job, _ = _create(runtime, request)
        done = _run_with_progress(runtime, job.id)
        if done is not None and done.output_key and output is not None:
            with runtime.blobs.open(done.output_key) as source, output.open("wb") as target:
                shutil.copyfileobj(source, target)
            console.print(f"[green]wrote {output}[/green]")
        elif done is not None and done.output_key:
            console.print(f"export stored as {done.output_key} (GET /migration/jobs/{done.id}/output)")
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
