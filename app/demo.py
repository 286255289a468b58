"""Local demo data: seeded into an empty store when APP_ENV=local (never elsewhere: see Settings)."""

from __future__ import annotations

import logging
import secrets
import sys

from app.auth.deps import auth_service_of
from app.auth.schemas import UserCreate
from app.runtime import Runtime
from app.storage.records import Role

logger = logging.getLogger("app.demo")
DEMO_ACTOR = "demo-seed"


def seed_demo_data(runtime: Runtime) -> None:
    store = runtime.store
    if store.users.get("admin") is not None:
        return
    auth = auth_service_of(runtime)
    configured = runtime.settings.demo_admin_password
    password = configured.get_secret_value() if configured else secrets.token_urlsafe(12)
    auth.create_user(
        DEMO_ACTOR, UserCreate(username="admin", password=password, role=Role.ADMIN, full_name="Demo admin")
    )
    for username, role in (("operator", Role.OPERATOR), ("viewer", Role.VIEWER)):
        auth.create_user(
            DEMO_ACTOR,
            UserCreate(username=username, password=password, role=role, full_name=f"Demo {username}"),
        )
    if configured is None:
        # Printed once, to the terminal of the developer who started the server; never logged.
        print(
            f"\n  Demo users admin / operator / viewer, password: {password}\n"
            "  Shown only now. Set DEMO_ADMIN_PASSWORD to choose it, or delete the data folder to re-seed.\n",
            file=sys.stderr,
            flush=True,
        )
    logger.info("seeded demo data", extra={"users": 3})
