"""`portal migrate-store`: copy a whole portal from one store to another, resumably, then verify.

The rules of a copy (which stores, which state file, which targets) are the migration's, in
`app/migration/store_copy.py`; this command reads the options, prints, and exits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from app.cli import common
from app.cli.common import ERRORS_SHOWN, console
from app.migration import store_copy
from app.migration.store_copy import Backend, CopyRefused, Side
from app.runtime import Runtime
from app.storage.transfer import Refused


def _side(name: str, option: str, help_text: str) -> Any:
    """An option of one side of migrate-store, also read from e.g. SOURCE_MONGODB_URI."""
    side = name.upper()
    return typer.Option(f"--{name}-{option}", envvar=f"{side}_{option.upper().replace('-', '_')}", help=help_text)


def _refuse(exc: CopyRefused) -> typer.Exit:
    console.print(f"[red]{exc}[/red]")
    return typer.Exit(2)


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
    ] = store_copy.BATCH_SIZE,
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
    from app.storage.base import StorageError

    base = common.cli_settings()
    try:
        plan = store_copy.plan(
            store_copy.side_settings(
                base,
                Side(
                    "source",
                    source,
                    dynamodb_table=source_dynamodb_table,
                    dynamodb_endpoint_url=source_dynamodb_endpoint_url,
                    aws_region=source_aws_region,
                    mongodb_uri=source_mongodb_uri,
                    mongodb_database=source_mongodb_database,
                ),
            ),
            store_copy.side_settings(
                base,
                Side(
                    "target",
                    target,
                    dynamodb_table=target_dynamodb_table,
                    dynamodb_endpoint_url=target_dynamodb_endpoint_url,
                    aws_region=target_aws_region,
                    mongodb_uri=target_mongodb_uri,
                    mongodb_database=target_mongodb_database,
                ),
            ),
            state_path=state,
            restart=restart,
        )
    except CopyRefused as exc:
        raise _refuse(exc) from None

    runtimes = [Runtime(plan.source), Runtime(plan.target)]
    try:
        from_store, to_store = (runtime.store.transfer for runtime in runtimes)
        console.print(f"source: {plan.source_label}\ntarget: {plan.target_label}\nstate:  {plan.state_path}")
        saved = plan.saved
        if not verify_only and saved is None:
            saved = store_copy.begin(plan, from_store, to_store, allow_nonempty_target=allow_nonempty_target)
        with _steps() as advance:
            if saved is not None and not saved.copy_done and not verify_only:
                store_copy.copy(from_store, to_store, saved, plan.state_path, batch_size=batch_size, progress=advance)
            verification = store_copy.verify(from_store, to_store, progress=advance)
    except CopyRefused as exc:
        raise _refuse(exc) from None
    except StorageError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    finally:
        for runtime in runtimes:
            runtime.close()
    refused = store_copy.read_refused(plan.state_path)
    _migration_report(verification, refused, plan.state_path)
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


def _migration_report(verification: store_copy.Verification, refused: list[Refused], state_path: Path) -> None:
    from rich.table import Table

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
        listed = store_copy.refused_path(state_path)
        console.print(f"[red]{len(refused)} record(s) refused by the target (all of them in {listed}):[/red]")
        for item in refused[:ERRORS_SHOWN]:
            console.print(f"[red]  {item.kind} {'/'.join(item.key)}: {item.reason}[/red]")
    if verification.ok and not refused:
        console.print("[green]every record is in the target, byte for byte[/green]")
