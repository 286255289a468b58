"""What every command group shares: the settings and runtime of the configured store, and the consoles.

Commands call `common.open_runtime()` through this module (not a copied name), so a test can swap
the runtime in one place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

import typer
from rich.console import Console

from app.config import ConfigurationError, Settings, load_settings
from app.localfiles import open_private
from app.runtime import Runtime

console = Console(stderr=True)
ERRORS_SHOWN = 10


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


def stdout() -> Console:
    """Tables go to standard output (messages and progress to standard error)."""
    return Console()


def private_file(path: Path) -> IO[bytes]:
    """A file the CLI writes for the user holds personal data: created owner-only (0600)."""
    return os.fdopen(open_private(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "wb")
