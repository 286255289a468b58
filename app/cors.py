"""Which browser origins may call the API (CORS), and why a refused preflight was refused.

The one home of the rule: API Gateway has no CORS configuration (serverless.yml), so preflights
reach the app in every deployment. Allowed: the origins in CORS_ORIGINS; in local mode also any dev
server on this machine (`http://localhost:5173`, `http://127.0.0.1:3000`, `http://[::1]:8080`...).
A refused preflight gets 403 problem+json and one warning line naming the origin and the reason,
where Starlette would answer a bare 400 (and, with no CORS configured, routing a 405).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import Environment, Settings
from app.errors import ProblemType
from app.problem_responses import problem_response

logger = logging.getLogger("app.cors")

# fullmatch: `http://localhost.evil.example` is not a loopback origin.
LOOPBACK_ORIGIN = r"https?://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]{1,5})?"
LOOPBACK_DESCRIPTION = "a dev server on localhost, 127.0.0.1 or [::1] (any port)"

ALLOWED_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
ALLOWED_HEADERS = ["Authorization", "Content-Type", "If-Match", "Idempotency-Key", "X-Request-ID"]
# What a browser client reads: versions, created resources, back-off, replays, download names.
EXPOSED_HEADERS = ["ETag", "Location", "X-Request-ID", "Retry-After", "Idempotent-Replayed", "Content-Disposition"]


def install_cors(app: FastAPI, settings: Settings) -> None:
    """Always installed, so a refused preflight is explained even when no origin is allowed."""
    app.add_middleware(
        ExplainedCORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_origin_regex=LOOPBACK_ORIGIN if settings.app_env is Environment.LOCAL else None,
        # Bearer tokens alone would not need it; kept so a client that sends credentials still works.
        allow_credentials=True,
        allow_methods=ALLOWED_METHODS,
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        origin_rule=_origin_rule(settings.cors_origins, settings.app_env),
    )


def _origin_rule(listed: list[str], env: Environment) -> str:
    if env is Environment.LOCAL:
        return f"only CORS_ORIGINS ({', '.join(listed) or 'none'}) and {LOOPBACK_DESCRIPTION} may call this API"
    if not listed:
        return (
            f"CORS_ORIGINS is empty, so no browser origin may call this API "
            f"(APP_ENV={env.value}; only local mode also allows {LOOPBACK_DESCRIPTION})"
        )
    return f"it is not in CORS_ORIGINS ({', '.join(listed)})"


class ExplainedCORSMiddleware(CORSMiddleware):
    """Starlette's CORS middleware (which still decides), with a refusal that says why."""

    def __init__(self, app: ASGIApp, /, *, origin_rule: str, **options: Any) -> None:
        super().__init__(app, **options)
        self.origin_rule = origin_rule

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope) if scope["type"] == "http" else Headers()
        is_preflight = (
            scope.get("method") == "OPTIONS" and "origin" in headers and "access-control-request-method" in headers
        )
        if not is_preflight:
            await super().__call__(scope, receive, send)
            return
        answer = self.preflight_response(request_headers=headers)
        if answer.status_code != 200:
            # Starlette's own verdict ("Disallowed CORS origin, headers") if none of ours applies.
            reason = self.why_refused(headers) or bytes(answer.body).decode()
            logger.warning("CORS preflight refused", extra={"origin": headers["origin"], "reason": reason})
            answer = problem_response(Request(scope), ProblemType.FORBIDDEN, detail=f"CORS preflight refused: {reason}")
        await answer(scope, receive, send)

    def why_refused(self, headers: Headers) -> str | None:
        origin = headers["origin"]
        if not self.is_allowed_origin(origin):
            return f"origin {origin} is not allowed: {self.origin_rule}"
        method = headers["access-control-request-method"]
        if method not in self.allow_methods:
            return f"method {method} is not allowed (allowed: {', '.join(self.allow_methods)})"
        requested = [name.strip().lower() for name in headers.get("access-control-request-headers", "").split(",")]
        refused = [name for name in requested if name and name not in self.allow_headers]
        if refused:
            return f"header {', '.join(refused)} is not allowed (allowed: {', '.join(self.allow_headers)})"
        return None
