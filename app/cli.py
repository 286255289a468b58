"""`portal` command line: administration against the configured store.

portal users create-admin USERNAME        # password from a prompt, or stdin with --password-stdin
portal reconcile-counters [--fix]         # recount subscribers by status and plan; report (and fix) drift
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console

from app.config import ConfigurationError, load_settings
from app.runtime import Runtime

app = typer.Typer(help="Subscriber Portal administration.", no_args_is_help=True, add_completion=False)
users_app = typer.Typer(help="User accounts.", no_args_is_help=True)
app.add_typer(users_app, name="users")
console = Console(stderr=True)


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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
