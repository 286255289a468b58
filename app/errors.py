"""Domain errors and their RFC 9457 `application/problem+json` rendering.

Services raise `DomainError` subclasses; the storage layer raises its own errors
(`app.storage.base`), which are mapped here too. Every error response, including request
validation and unexpected failures, has the same shape (`Problem`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.storage.base import (
    Conflict,
    InvalidCursor,
    NotFound,
    PreconditionFailed,
    StorageError,
    StoreUnavailable,
)

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "/problems/"
logger = logging.getLogger("app.errors")


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the offending input, e.g. `body.msisdn` or `query.limit`.")
    message: str
    code: str = Field(description="Stable machine-readable reason, e.g. `missing`, `string_too_long`.")


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "type": "/problems/validation-error",
                "title": "Request validation failed",
                "status": 422,
                "detail": "1 field is invalid",
                "instance": "/subscribers",
                "request_id": "4f0c3c1e-7d7b-4b4e-9c55-0a2f4b1f2a11",
                "errors": [{"field": "body.msisdn", "message": "not a valid phone number", "code": "msisdn"}],
            }
        }
    )

    type: str = Field(description="URI reference identifying the problem type.")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = Field(None, description="Path of the request that failed.")
    request_id: str | None = None
    errors: list[FieldError] | None = None


class DomainError(Exception):
    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.errors = list(errors) if errors else None
        self.headers = headers
        self.extra = extra or {}


class InvalidInput(DomainError):
    """Input that passed the schema but breaks a rule; names the field."""

    status, slug, title = 422, "validation-error", "Request validation failed"

    def __init__(self, field: str, message: str, code: str = "invalid", **kwargs: Any) -> None:
        super().__init__(message, errors=[FieldError(field=field, message=message, code=code)], **kwargs)


class Unauthorized(DomainError):
    status, slug, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kwargs)


class Forbidden(DomainError):
    status, slug, title = 403, "forbidden", "Not allowed"


class NotFoundError(DomainError):
    status, slug, title = 404, "not-found", "Not found"


class ConflictError(DomainError):
    status, slug, title = 409, "conflict", "Conflict"


class PreconditionFailedError(DomainError):
    status, slug, title = 412, "precondition-failed", "Precondition failed"


class PreconditionRequired(DomainError):
    status, slug, title = 428, "precondition-required", "Precondition required"


class UnsupportedMediaType(DomainError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class PayloadTooLargeError(DomainError):
    status, slug, title = 413, "request-entity-too-large", "Request Entity Too Large"


class TooManyRequests(DomainError):
    status, slug, title = 429, "too-many-requests", "Too many requests"

    def __init__(self, detail: str, retry_after_seconds: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after_seconds))})


class ServiceBusy(DomainError):
    """This process has no capacity for the request now (not the client's fault); retry shortly."""

    status, slug, title = 503, "service-busy", "Service busy"

    def __init__(self, detail: str, retry_after_seconds: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after_seconds))})


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def problem_response(
    request: Request,
    *,
    status: int,
    slug: str,
    title: str,
    detail: str | None = None,
    errors: Sequence[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body = Problem(
        type=PROBLEM_TYPE_BASE + slug,
        title=title,
        status=status,
        detail=detail,
        instance=request.url.path,
        request_id=request_id_of(request),
        errors=list(errors) if errors else None,
    ).model_dump(exclude_none=True)
    body.update(extra or {})
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_CONTENT_TYPE)


def _field_path(location: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in location) or "body"


def validation_field_errors(error: RequestValidationError) -> list[FieldError]:
    result = []
    for item in error.errors():
        message = str(item.get("msg", "invalid"))
        # pydantic prefixes custom validator messages with "Value error, "; the reason reads better without.
        message = message.removeprefix("Value error, ")
        result.append(FieldError(field=_field_path(item.get("loc", ())), message=message, code=str(item["type"])))
    return result


_STORAGE_STATUS: dict[type[StorageError], tuple[int, str, str]] = {
    NotFound: (404, "not-found", "Not found"),
    Conflict: (409, "conflict", "Conflict"),
    PreconditionFailed: (412, "precondition-failed", "Precondition failed"),
    # A well-formed cursor the server did not issue for this query names a page that does not exist.
    InvalidCursor: (404, "invalid-cursor", "Invalid cursor"),
    StoreUnavailable: (503, "service-unavailable", "Service unavailable"),
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        return problem_response(
            request,
            status=exc.status,
            slug=exc.slug,
            title=exc.title,
            detail=exc.detail,
            errors=exc.errors,
            headers=exc.headers,
            extra=exc.extra,
        )

    @app.exception_handler(StorageError)
    async def _storage(request: Request, exc: StorageError) -> JSONResponse:
        status, slug, title = next(
            (mapped for cls, mapped in _STORAGE_STATUS.items() if isinstance(exc, cls)),
            (500, "internal-error", "Internal server error"),
        )
        errors = [FieldError(field=exc.field, message=str(exc), code=slug)] if exc.field else None
        if status >= 500:
            logger.error("storage error", exc_info=exc)
        return problem_response(request, status=status, slug=slug, title=title, detail=str(exc), errors=errors)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = validation_field_errors(exc)
        noun = "field is" if len(errors) == 1 else "fields are"
        return problem_response(
            request,
            status=422,
            slug="validation-error",
            title="Request validation failed",
            detail=f"{len(errors)} {noun} invalid",
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else None
        if exc.status_code == 400 and detail == FASTAPI_BODY_PARSE_ERROR:
            # A body that is not even text (e.g. invalid UTF-8): the same answer as malformed JSON.
            error = FieldError(field="body", message="the body is not valid UTF-8 JSON", code="json_invalid")
            return problem_response(
                request,
                status=422,
                slug="validation-error",
                title="Request validation failed",
                detail="1 field is invalid",
                errors=[error],
            )
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return http_problem(request, exc.status_code, detail, headers=headers)


# The message FastAPI raises (as a 400) when it cannot decode a request body at all.
FASTAPI_BODY_PARSE_ERROR = "There was an error parsing the body"


def allowed_methods(request: Request) -> list[str]:
    """Every method of every route at this path: Starlette's 405 names only the first route's.

    "This path" is the path template of the route that answered (the first whose path matched), as
    the OpenAPI document groups operations: `/subscribers/{uid}` also matches `/subscribers/search`,
    but its methods belong to another path of the document.
    """
    answered = getattr(request.scope.get("route"), "path", None)
    methods: set[str] = set()
    for route in request.app.router.routes:
        if answered is not None and getattr(route, "path", None) != answered:
            continue
        if route.matches(request.scope)[0] is not Match.NONE:  # PARTIAL: the path matches, the method not
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def http_problem(
    request: Request, status: int, detail: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """Problem for a plain HTTP error (404 route, 405, 413...): slug and title from the status."""
    phrase = HTTPStatus(status).phrase
    slug = phrase.lower().replace(" ", "-").replace("'", "")
    return problem_response(
        request,
        status=status,
        slug=slug,
        title=phrase,
        detail=None if detail == phrase else detail,
        headers=dict(headers) if headers else None,
    )
