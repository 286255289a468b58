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

One module per command group (`users`, `maintenance`, `jobs`, `store`, `local_db`), each only
reading options, calling the services and printing; `common` holds what they share. The commands
are registered here, in the order `portal --help` lists them.
"""

from __future__ import annotations

import typer

from app.cli import jobs, local_db, maintenance, store, users
from app.cli.common import console
from app.config import ConfigurationError

app = typer.Typer(help="Subscriber Portal administration.", no_args_is_help=True, add_completion=False)
app.add_typer(users.app, name="users")
app.add_typer(jobs.app, name="jobs")
app.add_typer(local_db.app, name="local-db")
app.command("migrate-indexes")(maintenance.migrate_indexes)
app.command("reconcile-counters")(maintenance.reconcile_counters)
app.command("import")(jobs.import_file)
app.command("export")(jobs.export)
app.command("migrate-store")(store.migrate_store)


def main() -> None:
    try:
        app()
    except ConfigurationError as exc:
        # E.g. no Java for the local engine, or a damaged state file: one line saying what to do.
        console.print(str(exc), style="red", markup=False, soft_wrap=True)
        raise SystemExit(2) from None
