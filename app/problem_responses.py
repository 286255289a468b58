"""The edge: every error leaves the app here, as RFC 9457 `application/problem+json`.

`DomainError`s (`app.errors`) become problems one way (`problem_response`); request validation
errors and the HTTP errors Starlette raises itself (no route, wrong method, an unreadable body)
get the same shape. This is the only error module that knows the web framework: services and the
error vocabulary they raise do not import it (tests/test_framework_free.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.errors import (
    INTERNAL_ERROR_DETAIL,
    PROBLEM_CONTENT_TYPE,
    DomainError,
    FieldCode,
    FieldError,
    Problem,
    ProblemType,
    as_field_error,
    meaning_of,
    validation_detail,
)
from app.storage.base import StorageError

logger = logging.getLogger("app.errors")


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def problem_response(
    request: Request,
    problem: ProblemType,
    *,
    detail: str | None = None,
    errors: Sequence[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body = Problem(
        type=problem,
        title=problem.title,
        status=problem.status,
        detail=detail,
        instance=request.url.path,
        request_id=request_id_of(request),
        errors=list(errors) if errors else None,
    ).model_dump(mode="json", exclude_none=True)
    body.update(extra or {})
    return JSONResponse(body, status_code=problem.status, headers=headers, media_type=PROBLEM_CONTENT_TYPE)


def validation_problem(request: Request, errors: Sequence[FieldError]) -> JSONResponse:
    return problem_response(request, ProblemType.VALIDATION_ERROR, detail=validation_detail(len(errors)), errors=errors)


# Problems for the HTTP errors Starlette raises itself (no route, wrong method, an unreadable body).
HTTP_STATUS_PROBLEMS: dict[int, ProblemType] = {
    400: ProblemType.BAD_REQUEST,
    404: ProblemType.NOT_FOUND,
    405: ProblemType.METHOD_NOT_ALLOWED,
    413: ProblemType.PAYLOAD_TOO_LARGE,
    415: ProblemType.UNSUPPORTED_MEDIA_TYPE,
}


def domain_problem(request: Request, error: DomainError) -> JSONResponse:
    """The one mapping from a domain error to its problem+json response."""
    return problem_response(
        request, error.problem, detail=error.detail, errors=error.errors, headers=error.headers, extra=error.extra
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        return domain_problem(request, exc)

    @app.exception_handler(StorageError)
    async def _storage(request: Request, exc: StorageError) -> JSONResponse:
        # A storage fact no service translated: answered with its default meaning.
        meaning = meaning_of(exc)
        if meaning is None or meaning.problem.status >= 500:
            logger.error("storage error", exc_info=exc)
        if meaning is None:
            return problem_response(request, ProblemType.INTERNAL_ERROR, detail=INTERNAL_ERROR_DETAIL)
        return domain_problem(request, meaning)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_problem(request, [as_field_error(item) for item in exc.errors()])

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else None
        if exc.status_code == 400 and detail == FASTAPI_BODY_PARSE_ERROR:
            # A body that is not even text (e.g. invalid UTF-8): the same answer as malformed JSON.
            error = FieldError(field="body", message="the body is not valid UTF-8 JSON", code=FieldCode.JSON_INVALID)
            return validation_problem(request, [error])
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
    """Problem for a plain HTTP error (no route, 405, 413...) by its status."""
    problem = HTTP_STATUS_PROBLEMS.get(status)
    if problem is None:  # none is raised in this app; a new one must join the catalogue
        logger.error("HTTP error %s has no problem type", status)
        problem = ProblemType.INTERNAL_ERROR
    return problem_response(
        request,
        problem,
        detail=None if detail == HTTPStatus(status).phrase else detail,
        headers=dict(headers) if headers else None,
    )
