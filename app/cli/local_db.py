"""`portal local-db`: the local DynamoDB engine of DATA_DIR (local mode)."""

from __future__ import annotations

import typer

from app.cli import common
from app.cli.common import console

app = typer.Typer(help="The local DynamoDB engine of DATA_DIR (local mode).", no_args_is_help=True)


@app.command("status")
def local_db_status() -> None:
    """Show the engine serving DATA_DIR (endpoint, pid, memory); exit 1 when none is running."""
    import json

    from app.storage.local_engine import describe, engine_status

    data_dir = common.cli_settings().data_dir
    state, serving = engine_status(data_dir)
    if state is None or not serving:
        console.print(f"no DynamoDB Local is running for {data_dir.resolve()}")
        raise typer.Exit(1)
    typer.echo(json.dumps(describe(state)))


@app.command("start")
def local_db_start() -> None:
    """Start the engine of DATA_DIR if none is running, and print its endpoint."""
    from app.storage.local_engine import ensure_engine

    typer.echo(ensure_engine(common.cli_settings().data_dir).endpoint)


@app.command("stop")
def local_db_stop() -> None:
    """Stop the engine of DATA_DIR (its data stays on disk under DATA_DIR/dynamodb)."""
    from app.storage.local_engine import stop_engine

    data_dir = common.cli_settings().data_dir
    stopped = stop_engine(data_dir)
    if stopped is None:
        console.print(f"no DynamoDB Local was running for {data_dir.resolve()}")
    else:
        console.print(f"stopped DynamoDB Local (pid {stopped.pid}, port {stopped.port})")
