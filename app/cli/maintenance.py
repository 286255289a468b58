"""`portal migrate-indexes` and `portal reconcile-counters`: keeping a store in shape."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from app.cli import common
from app.cli.common import console


def migrate_indexes() -> None:
    """MongoDB only: rebuild the indexes whose keys or options changed in a release, and drop
    those it no longer names (readiness lists them). Run it before or right after an upgrade."""
    from app.storage.mongo import database
    from app.storage.mongo.store import MongoStore

    runtime = common.open_runtime()
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

    runtime = common.open_runtime()
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
