"""The request context: the ASGI middleware every request passes through first.

`RequestContextMiddleware` is a plain ASGI middleware (no BaseHTTPMiddleware, so streaming bodies
pass through untouched). It assigns the request id, enforces the body size limit, turns any
unexpected exception into a problem+json 500 carrying the request id (never a stack trace), and
writes one JSON log line per request. The logging itself (`app.observability`) knows no web
framework, so the services that log and audit do not import one.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability import request_id_var, request_metrics

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:=+/-]{1,128}$")
access_logger = logging.getLogger("app.access")
logger = logging.getLogger("app")


def _request_id_from(scope: Scope) -> str:
    event = scope.get("aws.event") or {}
    api_gateway_id = (event.get("requestContext") or {}).get("requestId")
    if isinstance(api_gateway_id, str) and _VALID_REQUEST_ID.match(api_gateway_id):
        return str(api_gateway_id)
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if _VALID_REQUEST_ID.match(candidate):
                return candidate
    return str(uuid.uuid4())


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        hsts: bool,
        service: str = "subscriber-portal",
        large_body_paths: re.Pattern[str] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.large_body_paths = large_body_paths
        self.hsts = hsts
        self.service = service

    def _with_standard_headers(
        self, headers: list[tuple[bytes, bytes]], request_id: str, path: str
    ) -> list[tuple[bytes, bytes]]:
        present = {name.lower() for name, _ in headers}
        added = [(b"x-request-id", request_id.encode()), (b"x-content-type-options", b"nosniff")]
        added += [(b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer")]
        if self.hsts:
            added.append((b"strict-transport-security", b"max-age=63072000; includeSubDomains"))
        if b"cache-control" not in present:
            # API answers carry subscriber data: no shared or browser cache keeps them. The docs'
            # static assets are versioned with the app and may be cached.
            cacheable = "/docs/assets/" in path
            added.append((b"cache-control", b"public, max-age=86400" if cacheable else b"no-store"))
        return [*headers, *(header for header in added if header[0] not in present)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from app.errors import INTERNAL_ERROR_DETAIL, ProblemType
        from app.problem_responses import http_problem, problem_response

        request_id = _request_id_from(scope)
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = self._with_standard_headers(
                    message.get("headers", []), request_id, scope.get("path", "")
                )
            await send(message)

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge(self.max_body_bytes)
            return message

        from starlette.requests import Request

        try:
            if self.large_body_paths and self.large_body_paths.search(scope.get("path", "")):
                await self.app(scope, receive, send_with_id)  # the route streams and limits the file itself
                return
            declared = _content_length(scope)
            if declared is not None and declared > self.max_body_bytes:
                raise _BodyTooLarge(self.max_body_bytes)
            await self.app(scope, limited_receive, send_with_id)
        except _BodyTooLarge as exc:
            if not response_started:
                await http_problem(Request(scope), exc.status_code, exc.detail)(scope, receive, send_with_id)
        except Exception:
            logger.exception("unhandled error", extra={"path": scope.get("path")})
            if not response_started:
                response = problem_response(Request(scope), ProblemType.INTERNAL_ERROR, detail=INTERNAL_ERROR_DETAIL)
                await response(scope, receive, send_with_id)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            latency_ms = round((time.perf_counter() - started) * 1000, 2)
            access_logger.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "route": route,
                    "status": status,
                    "latency_ms": latency_ms,
                    "actor": scope["state"].get("actor"),
                    **request_metrics(self.service, route, status, latency_ms),
                },
            )
            request_id_var.reset(token)


class _BodyTooLarge(HTTPException):
    """An HTTPException so FastAPI's body parsing re-raises it instead of answering 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body exceeds {limit} bytes")


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
