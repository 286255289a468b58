"""Dependencies shared by every router, and what makes `app.dependency_overrides` reach their routes.

Each domain builds its service in `app/<domain>/deps.py` from the small dependencies here
(`StoreDep`, `SettingsDep`, and `RuntimeDep` for the per-process singletons of `Runtime.memo`) and
exposes it as `XServiceDep = Annotated[XService, Depends(get_x_service)]`. A test replaces any of
them the FastAPI way: `app.dependency_overrides[get_x_service] = ...`.
"""

# No `from __future__ import annotations`: FastAPI reads the signatures of these endpoints and
# dependencies for every route it builds, and would eval() each string annotation every time.

import json
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from app.concurrency import IF_MATCH_PATTERN, MAX_IF_MATCH_LENGTH, Versions, parse_if_match
from app.config import Settings
from app.errors import PreconditionRequired, UnsupportedMediaType
from app.runtime import Runtime
from app.storage.base import Store
from app.storage.cursor import CURSOR_PATTERN, MAX_CURSOR_LENGTH

Model = TypeVar("Model", bound=BaseModel)

_serving_app: ContextVar[FastAPI | None] = ContextVar("serving_app", default=None)


class ServingAppOverrides:
    """The `dependency_overrides_provider` of every domain router: the overrides of the app that
    serves the request.

    FastAPI looks a route's overrides up in the provider the route was built with. Routes built by
    `include_router` get the app; these routes are built once, when their router's module is
    imported, and added to every app as they are (app/main.py), so their provider finds the app
    of the request being served instead (`ServingApp` names it)."""

    @property
    def dependency_overrides(self) -> dict[Callable[..., Any], Callable[..., Any]]:
        app = _serving_app.get()
        return app.dependency_overrides if app is not None else {}


SERVING_APP_OVERRIDES = ServingAppOverrides()


def domain_router(**options: Any) -> APIRouter:
    """The router of a domain's routes (app/main.py adds its routes to the app as they are)."""
    return APIRouter(dependency_overrides_provider=SERVING_APP_OVERRIDES, **options)


class ServingApp:
    """Names the app serving each request, for `ServingAppOverrides` (Starlette puts it in the scope)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = _serving_app.set(scope.get("app"))
        try:
            await self.app(scope, receive, send)
        finally:
            _serving_app.reset(token)


# async on purpose, like every dependency that does no blocking work: a sync dependency costs a
# thread-pool hop per request. The store is built before the first request (uvicorn's lifespan,
# Lambda's init phase), so reading it does not block.


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_store(runtime: RuntimeDep) -> Store:
    return runtime.store


async def get_settings_dep(runtime: RuntimeDep) -> Settings:
    return runtime.settings


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def route_path(request: Request, operation_id: str, **params: str) -> str:
    """The absolute path of an operation's route as this request reached the app: behind an API Gateway
    stage or a base path (the request's `root_path`) it starts with that prefix, so a client can use it
    as it is (Location headers, upload URLs)."""
    for route in request.app.routes:
        if isinstance(route, APIRoute) and route.operation_id == operation_id:
            return str(request.scope.get("root_path", "")) + route.url_path_for(route.name, **params)
    raise LookupError(f"no route with operation id {operation_id!r}")


# The `cursor` of every list: the `next_cursor` of the page before, unchanged. A well-formed cursor
# the server did not issue for this query is a 404 (that page does not exist), any other a 422.
Cursor = Annotated[
    str | None,
    Query(
        max_length=MAX_CURSOR_LENGTH,
        pattern=CURSOR_PATTERN,
        description="`next_cursor` of the previous page of the same query, as it was returned.",
    ),
]


class IfMatch:
    """Dependency: the versions the request's If-Match accepts; None when it is optional and absent."""

    def __init__(self, *, required: bool) -> None:
        self.required = required

    async def __call__(
        self, if_match: Annotated[str | None, Header(include_in_schema=False)] = None
    ) -> Versions | None:
        if if_match is None:  # present but empty is malformed, not absent
            if self.required:
                raise PreconditionRequired('send If-Match with the ETag you read (e.g. If-Match: "3")')
            return None
        return parse_if_match(if_match)

    def openapi_parameter(self) -> dict[str, Any]:
        when = (
            "Required: the ETag of the version you read (428 without it, 412 if stale)."
            if self.required
            else "Optional: the ETag of the version you read; when sent, a stale one is a 412."
        )
        return {
            "name": "if-match",
            "in": "header",
            "required": self.required,
            "description": f'{when} One or more entity tags, e.g. `"3"` or `"3", "4"`; a weak tag never '
            "matches; `*` is refused with 428.",
            # The example sits in the schema too: generators that fill headers from letters and digits
            # (schemathesis's coverage phase) then still have a valid value to start from.
            "schema": {
                "type": "string",
                "maxLength": MAX_IF_MATCH_LENGTH,
                "pattern": IF_MATCH_PATTERN,
                "examples": ['"3"'],
            },
            "example": '"3"',
        }


IF_MATCH_REQUIRED = IfMatch(required=True)
IF_MATCH_OPTIONAL = IfMatch(required=False)
# --- lists: one pagination dependency -----------------------------------------------------------


@dataclass(frozen=True)
class PageRequest:
    """The `limit` and `cursor` query parameters of a list request."""

    limit: int
    cursor: str | None


def pagination(*, default: int = 50, maximum: int = 200) -> Any:
    """`limit` (1 to `maximum`) and `cursor` of a list, as one dependency (`PageParams` for most lists)."""

    async def page_request(
        limit: Annotated[int, Query(ge=1, le=maximum, description=f"Page size, 1-{maximum}.")] = default,
        cursor: Cursor = None,
    ) -> PageRequest:
        return PageRequest(limit, cursor)

    return Depends(page_request)


PageParams = Annotated[PageRequest, pagination()]


# --- bodies the routes read themselves ------------------------------------------------------------
# FastAPI parses a declared body model itself, without validation context and for one media type.
# Routes that need either read the body with these, and answer bad input as FastAPI would: a 422
# naming `body.<field>`.


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def validated(model: type[Model], data: Any, context: dict[str, Any] | None = None) -> Model:
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        ) from None


async def json_body(
    request: Request, model: type[Model], accepted: tuple[str, ...], context: dict[str, Any] | None = None
) -> Model:
    """The request's JSON body, sent as one of the `accepted` media types, validated into `model`."""
    if media_type(request) not in accepted:
        raise UnsupportedMediaType(f"send the body as {' or '.join(accepted)}")
    try:
        data = json.loads(await request.body())
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser allows
        error = {"type": "json_invalid", "loc": ("body",), "msg": "body is not valid JSON", "input": None}
        raise RequestValidationError([error]) from None
    return validated(model, data, context)
