"""OpenAPI helpers: documented error responses share the one problem+json schema."""

from __future__ import annotations

from typing import Any

from app.errors import Problem

_DESCRIPTIONS = {
    400: "Bad request (e.g. an invalid cursor)",
    401: "Missing, invalid, expired or revoked credentials",
    403: "Signed in, but the role may not do this",
    404: "Not found",
    409: "Conflict with the current state (uniqueness, capacity, a rule)",
    412: "If-Match does not match the current version",
    413: "Request body too large",
    415: "Unsupported content type",
    422: "Validation failed; `errors` names each field",
    428: "If-Match is required",
    429: "Too many requests; see Retry-After",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {
            "model": Problem,
            "description": _DESCRIPTIONS[status],
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }
