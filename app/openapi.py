"""OpenAPI helpers: documented error responses share the one problem+json schema."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

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


def json_request_body(model: type[BaseModel], *media_types: str) -> dict[str, Any]:
    """`openapi_extra` documenting a JSON body a route parses itself (e.g. to validate with context).

    The model's schema is inlined (its `$defs` resolved in place), so it needs no entry under
    `components/schemas`.
    """
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            reference = node.get("$ref")
            if isinstance(reference, str) and reference.startswith("#/$defs/"):
                return resolve(
                    {
                        **definitions[reference.removeprefix("#/$defs/")],
                        **{k: v for k, v in node.items() if k != "$ref"},
                    }
                )
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    content = {media_type: {"schema": resolve(schema)} for media_type in media_types or ("application/json",)}
    return {"requestBody": {"required": True, "content": content}}
