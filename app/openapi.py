"""The OpenAPI document a frontend developer generates a client from.

Routes declare their error statuses with `error_responses(...)`; `build_openapi` then gives every
error response the one problem+json schema (replacing FastAPI's default validation-error model),
and adds 401/403 to every route whose policy needs a token or a capability.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel

from app.errors import FieldError, Problem

_DESCRIPTIONS = {
    400: "Bad request: a body that can't be parsed at all (e.g. multipart without its boundary)",
    401: "Missing, invalid, expired or revoked credentials",
    403: "Signed in, but the role may not do this",
    404: "Not found (for a list: the cursor names no page of this query)",
    409: "Conflict with the current state (uniqueness, capacity, a rule)",
    412: "If-Match does not match the current version",
    413: "Request body too large",
    415: "Unsupported content type",
    422: "Validation failed; `errors` names each field",
    428: "If-Match is required",
    429: "Too many requests; see Retry-After",
    503: "The store is unavailable, or (login, password changes) no password-hashing slot freed up in time; "
    "see Retry-After",
}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"description": _DESCRIPTIONS[status]} for status in statuses}


def _problem_content() -> dict[str, Any]:
    return {"application/problem+json": {"schema": _PROBLEM_REF}}


def query_object(name: str, schema: dict[str, Any], *, required: bool, description: str) -> dict[str, Any]:
    """`openapi_extra` documenting query parameters that go together as one exploded object.

    On the wire each property is its own query parameter (`?status=...&from=...`); the object's
    schema states what plain parameters can't: "exactly one of" (`oneOf`), "this one needs that
    one" (`required` inside a branch). The route declares the parameters with `include_in_schema=False`.
    """
    parameter = {
        "name": name,
        "in": "query",
        "required": required,
        "style": "form",
        "explode": True,
        "description": description,
        "schema": schema,
    }
    return {"parameters": [parameter]}


def only(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    """An object of exactly these properties, `required` ones present (a branch of `query_object`)."""
    return {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": list(required),
        "additionalProperties": False,
    }


_JSON_BODY_KEY = "x-json-request-body"
_JSON_BODIES: dict[str, tuple[type[BaseModel], tuple[str, ...]]] = {}


def json_request_body(model: type[BaseModel], *media_types: str) -> dict[str, Any]:
    """`openapi_extra` documenting a JSON body a route parses itself (e.g. to validate with context).

    The route gets a placeholder; `build_openapi` writes the model's schema in its place when the
    document is first asked for, so no JSON schema is generated when routes are declared at import.
    """
    key = f"{model.__module__}.{model.__qualname__}:{','.join(media_types)}"
    _JSON_BODIES[key] = (model, media_types or ("application/json",))
    return {_JSON_BODY_KEY: key}


def _json_request_body(key: str) -> dict[str, Any]:
    """The model's schema inlined (its `$defs` resolved in place): no `components/schemas` entry."""
    model, media_types = _JSON_BODIES[key]
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

    content = {media_type: {"schema": resolve(schema)} for media_type in media_types}
    # Rendered as FastAPI renders the rest of the document (`None` values are dropped).
    rendered: dict[str, Any] = jsonable_encoder({"required": True, "content": content}, exclude_none=True)
    return rendered


# Links from each creating operation's 201 to the operations that take the new id (and, for
# versioned things, the ETag it answered with as If-Match): clients and stateful fuzzers chain them.
_CREATED_LINKS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "subscribers_create": (
        "path.uid",
        "$response.body#/uid",
        ("subscribers_get", "subscribers_replace", "subscribers_update", "subscribers_delete", "subscribers_history"),
    ),
    "resources_create": (
        "path.resource_id",
        "$response.body#/id",
        ("resources_get", "resources_update", "resources_delete", "resources_availability"),
    ),
    "bookings_create": (
        "path.booking_id",
        "$response.body#/id",
        ("bookings_get", "bookings_cancel", "bookings_reschedule", "bookings_complete", "bookings_no_show"),
    ),
    "jobs_create": (
        "path.job_id",
        "$response.body#/job/id",
        ("jobs_get", "jobs_put_input", "jobs_errors", "jobs_output", "jobs_cancel", "jobs_rollback"),
    ),
    "jobs_upload": (
        "path.job_id",
        "$response.body#/id",
        ("jobs_get", "jobs_errors", "jobs_output", "jobs_cancel", "jobs_rollback"),
    ),
    "users_create": (
        "path.username",
        "$response.body#/username",
        ("users_get", "users_update", "users_delete", "users_reset_password"),
    ),
}


def _created_links(operation_id: str, versioned: set[str]) -> dict[str, Any]:
    parameter, expression, targets = _CREATED_LINKS[operation_id]
    links = {}
    for target in targets:
        parameters = {parameter: expression}
        if target in versioned:
            parameters["header.if-match"] = "$response.header.ETag"
        links[target] = {"operationId": target, "parameters": parameters}
    return links


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema without FastAPI's `| null`: a query string or header can't carry null,
    an optional parameter is simply left out (and then has its default)."""
    variants = schema.get("anyOf")
    if not isinstance(variants, list) or {"type": "null"} not in variants:
        return schema
    rest = [variant for variant in variants if variant != {"type": "null"}]
    others = {key: value for key, value in schema.items() if key != "anyOf"}
    return {**rest[0], **others} if len(rest) == 1 else {**others, "anyOf": rest}


def _password_policy(node: Any, min_length: int) -> None:
    """The configured minimum in place of the new-password marker: at least `min_length` characters
    from the first to the last that is not a space (padding doesn't count, as the service says)."""
    from app.auth.schemas import PASSWORD_POLICY_MARKER

    if isinstance(node, dict):
        if node.pop(PASSWORD_POLICY_MARKER, False):
            node["minLength"] = min_length
            node["pattern"] = rf"^\s*\S[\s\S]{{{min_length - 2},}}\S\s*$"
            node["description"] = (
                f"At least {min_length} characters (PASSWORD_MIN_LENGTH), not counting spaces at either end; "
                "at most 1024 bytes; not the username."
            )
        for value in node.values():
            _password_policy(value, min_length)
    elif isinstance(node, list):
        for item in node:
            _password_policy(item, min_length)


def build_openapi(app: FastAPI) -> dict[str, Any]:
    from app.auth.deps import Policy
    from app.auth.schemas import LoginRequest
    from app.concurrency import IfMatch

    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    problem.pop("$defs", None)
    schemas["Problem"] = problem
    schemas["FieldError"] = FieldError.model_json_schema(ref_template="#/components/schemas/{model}")
    # The login body is read by hand (form or JSON), so FastAPI does not collect its model.
    schemas["LoginRequest"] = LoginRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    _password_policy(schema, app.state.runtime.settings.password_min_length)

    policies = {}
    if_match_parameters: dict[str, dict[str, Any]] = {}
    for route in app.routes:
        if isinstance(route, APIRoute):
            operation_id = route.unique_id if route.operation_id is None else route.operation_id
            found = [dep.call for dep in route.dependant.dependencies if isinstance(dep.call, Policy)]
            policies[operation_id] = found[0] if found else None
            # The If-Match dependency reads the header itself (a missing one is a 428, not a 422).
            for dependency in route.dependant.dependencies:
                if isinstance(dependency.call, IfMatch):
                    if_match_parameters[operation_id] = dependency.call.openapi_parameter()
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            if _JSON_BODY_KEY in operation:
                operation["requestBody"] = _json_request_body(operation.pop(_JSON_BODY_KEY))
            for parameter in operation.get("parameters", []):
                parameter["schema"] = _without_null(parameter["schema"])
            responses = operation.setdefault("responses", {})
            policy = policies.get(operation.get("operationId", ""))
            operation_id = operation.get("operationId", "")
            if operation_id in _CREATED_LINKS:
                responses["201"]["links"] = _created_links(operation_id, set(if_match_parameters))
            if_match = if_match_parameters.get(operation_id)
            if if_match is not None:
                operation.setdefault("parameters", []).append(if_match)
                for status in (412, 422, 428):  # stale, malformed, missing or `*`
                    responses.setdefault(str(status), {"description": _DESCRIPTIONS[status]})
            if "requestBody" in operation:
                responses.setdefault("413", {"description": _DESCRIPTIONS[413]})
            if policy is not None and not policy.public:
                responses.setdefault("401", {"description": _DESCRIPTIONS[401]})
                if policy.capability is not None:
                    responses.setdefault("403", {"description": _DESCRIPTIONS[403]})
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400:
                    response["content"] = _problem_content()
                    response.setdefault("description", _DESCRIPTIONS.get(int(status), "Error"))
    return schema


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def render(app: FastAPI) -> str:
    """The committed `docs/openapi.json`: stable text, so a stale copy shows up as a diff."""
    import json

    return json.dumps(build_openapi(app), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    import sys

    from app import openapi  # the imported module, whose placeholders the routers registered
    from app.config import Settings
    from app.main import create_app

    # Default settings, no store: the document depends on the code only.
    sys.stdout.write(openapi.render(create_app(Settings(_env_file=None))))
