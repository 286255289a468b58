"""Dependencies shared by every router."""

# No `from __future__ import annotations`: FastAPI reads the signatures of these endpoints and
# dependencies for every route it builds, and would eval() each string annotation every time.

from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request
from fastapi.routing import APIRoute

from app.concurrency import IF_MATCH_PATTERN, MAX_IF_MATCH_LENGTH, Versions, parse_if_match
from app.config import Settings
from app.errors import PreconditionRequired
from app.runtime import Runtime
from app.storage.base import Store
from app.storage.cursor import CURSOR_PATTERN, MAX_CURSOR_LENGTH


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_store(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Store:
    return runtime.store


def get_settings_dep(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Settings:
    return runtime.settings


def route_path(request: Request, operation_id: str, **params: str) -> str:
    """The absolute path of an operation's route as this request reached the app: behind an API Gateway
    stage or a base path (the request's `root_path`) it starts with that prefix, so a client can use it
    as it is (Location headers, upload URLs)."""
    for route in request.app.routes:
        if isinstance(route, APIRoute) and route.operation_id == operation_id:
            return str(request.scope.get("root_path", "")) + route.url_path_for(route.name, **params)
    raise LookupError(f"no route with operation id {operation_id!r}")


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]

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
