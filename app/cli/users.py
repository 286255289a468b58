"""`portal users`: user accounts."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from app.cli import common
from app.cli.common import console

app = typer.Typer(help="User accounts.", no_args_is_help=True)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@app.command("create-admin")
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

    runtime = common.open_runtime()
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
