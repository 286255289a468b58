"""The FastAPI application: every router, error handler and middleware, built by `create_app`."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import __version__
from app.auth.router import router as auth_router
from app.bookings.router import bookings_router, resources_router
from app.changefeed.after_writes import RelayAfterWrites
from app.changefeed.drain import background_relay
from app.config import ConfigurationError, Settings, get_settings
from app.cors import install_cors
from app.deps import ServingApp
from app.docs_pages import offline_docs_app
from app.jsondepth import MAX_BODY_DEPTH, JsonBodyDepthLimit
from app.migration.router import UPLOAD_PATHS
from app.migration.router import router as migration_router
from app.observability import configure_logging
from app.openapi import install_openapi
from app.ops.router import audit_router, dashboard_router
from app.ops.router import router as ops_router
from app.problem_responses import install_error_handlers
from app.request_context import RequestContextMiddleware
from app.runtime import Runtime
from app.storage.base import Store
from app.subscribers.router import router as subscribers_router
from app.webhooks.router import router as webhooks_router

DESCRIPTION = """
Backend of the telecom subscriber portal: subscribers, service bookings and bulk migration jobs.

* Authenticate with **Authorize** (OAuth2 password flow) or `POST /auth/login`; send the access
  token as `Authorization: Bearer <token>`.
* Errors are RFC 9457 `application/problem+json`; validation errors list each bad field.
* Lists are cursor-paginated: pass `next_cursor` back as `cursor`.
"""

TAGS = [
    {"name": "auth", "description": "Sign in, tokens, your account, and user management (admin)."},
    {"name": "migration", "description": "Bulk import, export and delete jobs with progress and error reports."},
    {"name": "audit", "description": "Who changed what, when (admin)."},
    {"name": "dashboard", "description": "Headline figures for the portal's home page."},
    {
        "name": "subscribers",
        "description": "Subscriber records: create, read, update with If-Match, delete, list, search and history. "
        "Viewers see imsi, iccid and email masked.",
    },
    {"name": "health", "description": "Liveness and readiness probes."},
    {
        "name": "webhooks",
        "description": "Webhook subscriptions for integrators (admin): signed deliveries of the events in the "
        "`webhooks` section, retried for about a day, with a delivery log, manual retry and a test ping.",
    },
    {
        "name": "resources",
        "description": "Bookable resources (stores, technicians, agent desks, rooms): schedules and availability.",
    },
    {
        "name": "bookings",
        "description": "Service appointments of subscribers: create (idempotent), cancel, reschedule, outcomes.",
    },
]


def create_app(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    runtime = Runtime(settings, store)
    if settings.should_seed_demo_data:
        from app.demo import seed_demo_data

        runtime.on_store_ready.append(seed_demo_data)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # uvicorn: build the store (and seed local demo data) before the first request.
        # Lambda runs Mangum with lifespan="off"; app.handler builds the store at import instead.
        app.state.runtime.store  # noqa: B018 - built for its side effect
        if settings.events_relay_mode == "background":
            background_relay(runtime)  # relays events, retries webhooks, sends reminders
        yield
        runtime.close()

    options: dict[str, Any] = {
        "title": "Subscriber Portal API",
        "version": __version__,
        "description": DESCRIPTION,
        "openapi_tags": TAGS,
        "lifespan": lifespan,
        "swagger_ui_parameters": {"persistAuthorization": True, "displayRequestDuration": True},
    }
    if settings.docs_enabled:
        app = offline_docs_app(**options)
    else:
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, **options)
    app.state.runtime = runtime
    install_error_handlers(app)
    install_openapi(app)
    # In matching order. Resources first: `/bookings/resources` must not be taken for a booking id.
    routers = (
        auth_router,
        migration_router,
        audit_router,
        dashboard_router,
        subscribers_router,
        ops_router,
        resources_router,
        bookings_router,
        webhooks_router,
    )
    for router in routers:
        # The routers' routes were built when their modules were imported (APIRouter builds an
        # APIRoute per decorator, prefix, tags and dependencies included). `include_router` would
        # have FastAPI build every one of them again for this app, on the first request that walks
        # past them (~45 ms of a Lambda cold start). The routers are included with no options of
        # their own, so the routes built already are the app's routes; they are added as they are.
        # `app.dependency_overrides` still applies to them: their routers' provider of overrides
        # reads the overrides of the app serving the request (app/deps.py, `ServingApp` below).
        app.router.routes.extend(router.routes)

    app.add_middleware(ServingApp)
    # Innermost but for the routes: the response is sent before the events of its writes go out.
    app.add_middleware(RelayAfterWrites)
    # Inside CORS, so a browser can read the refusal.
    app.add_middleware(JsonBodyDepthLimit, max_depth=MAX_BODY_DEPTH, skip_paths=UPLOAD_PATHS)
    install_cors(app, settings)
    # Added last, so it is outermost: it sees every request, including CORS preflights and errors.
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_request_bytes,
        hsts=not settings.is_local_like,
        # Job input files have their own, larger limit, enforced while they stream in.
        large_body_paths=UPLOAD_PATHS,
    )
    app.add_middleware(OneLineStartupFailure)
    return app


class OneLineStartupFailure:
    """A store that cannot start (no Java, a damaged state file) stops uvicorn with the error's own
    line, which names what to install or which file to look at. Starlette reports a failed start
    with the whole traceback, which buries that line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_plainly(message: Message) -> None:
            # Starlette sends `startup.failed` from inside its `except` block: the error is the one handled.
            error = sys.exc_info()[1]
            if message["type"] == "lifespan.startup.failed" and isinstance(error, ConfigurationError):
                message = {**message, "message": str(error)}
            await send(message)

        await self.app(scope, receive, send_plainly)


def _app_for_server() -> FastAPI:
    """`uvicorn app.main:app` imports this module: a setting that cannot work stops the server with
    the one line that names it (uvicorn would print the import's whole traceback above it)."""
    try:
        return create_app()
    except ConfigurationError as exc:
        sys.exit(f"portal: {exc}")


app = _app_for_server()
