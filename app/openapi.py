"""The OpenAPI document a frontend developer generates a client from.

Routes declare their error statuses with `error_responses(...)`; `build_openapi` then gives every
error response the one problem+json schema (replacing FastAPI's default validation-error model),
and adds 401/403 to every route whose policy needs a token or a capability. Every body is a named
component (a generated client names its type after it), and every 201 documents its `Location`.
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
    503: "The store is unavailable, or (login, password changes) no password-hashing slot freed up in time; "
    "see Retry-After",
}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
# Every 201 names what it created (`app.deps.route_path`).
_LOCATION = {
    "description": "The absolute path of what was created, with the API's path prefix (e.g. an API Gateway "
    "stage): request it as it is.",
    "schema": {"type": "string"},
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"description": _DESCRIPTIONS[status]} for status in statuses}


def _problem_content() -> dict[str, Any]:
    return {"application/problem+json": {"schema": _PROBLEM_REF}}


_BODY_KEY = "x-request-body"
_BODIES: dict[str, dict[str, type[BaseModel]]] = {}


def request_body(content: dict[str, type[BaseModel]]) -> dict[str, Any]:
    """`openapi_extra` documenting a body a route parses itself (to validate with context, or to take
    a form and JSON alike): `content` maps each media type to its model.

    The route gets a placeholder; `build_openapi` puts each model in `components/schemas` under its
    class name and refers to it there, when the document is first asked for (no JSON schema is
    generated when routes are declared at import).
    """
    key = str(len(_BODIES))
    _BODIES[key] = content
    return {_BODY_KEY: key}


def json_request_body(model: type[BaseModel], *media_types: str) -> dict[str, Any]:
    """`request_body` of one model, sent as `media_types` (default `application/json`)."""
    return request_body(dict.fromkeys(media_types or ("application/json",), model))


def _add_component(schemas: dict[str, Any], name: str, schema: dict[str, Any]) -> None:
    # Rendered as FastAPI renders the rest of the document (`None` values are dropped).
    schema = jsonable_encoder(schema, exclude_none=True)
    if schemas.setdefault(name, schema) != schema:
        raise ValueError(f"two different schemas are both called {name!r}: rename one of the models")


def _request_body(key: str, schemas: dict[str, Any]) -> dict[str, Any]:
    content = {}
    for media_type, model in _BODIES[key].items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            _add_component(schemas, name, definition)
        _add_component(schemas, model.__name__, schema)
        content[media_type] = {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
    return {"required": True, "content": content}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    from app.auth.deps import Policy

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

    policies = {}
    for route in app.routes:
        if isinstance(route, APIRoute):
            found = [dep.call for dep in route.dependant.dependencies if isinstance(dep.call, Policy)]
            policies[route.unique_id if route.operation_id is None else route.operation_id] = (
                found[0] if found else None
            )
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            if _BODY_KEY in operation:
                operation["requestBody"] = _request_body(operation.pop(_BODY_KEY), schemas)
            _rename_generated_body(operation, schemas)
            responses = operation.setdefault("responses", {})
            policy = policies.get(operation.get("operationId", ""))
            if "requestBody" in operation:
                responses.setdefault("413", {"description": _DESCRIPTIONS[413]})
            if "201" in responses:
                responses["201"].setdefault("headers", {})["Location"] = _LOCATION
            if policy is not None and not policy.public:
                responses.setdefault("401", {"description": _DESCRIPTIONS[401]})
                if policy.capability is not None:
                    responses.setdefault("403", {"description": _DESCRIPTIONS[403]})
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400:
                    response["content"] = _problem_content()
                    response.setdefault("description", _DESCRIPTIONS.get(int(status), "Error"))
    schema["components"]["schemas"] = dict(sorted(schemas.items()))
    return schema


def _rename_generated_body(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    """FastAPI names the model it builds for a form (file and fields) `Body_<operationId>`; generated
    clients would call its type that. It becomes `<OperationId>Body`: `jobs_upload` -> `JobsUploadBody`."""
    for content in operation.get("requestBody", {}).get("content", {}).values():
        generated = content.get("schema", {}).get("$ref", "").removeprefix("#/components/schemas/")
        if generated.startswith("Body_") and generated in schemas:
            name = "".join(word.capitalize() for word in generated.removeprefix("Body_").split("_")) + "Body"
            schemas[name] = {**schemas.pop(generated), "title": name}
            content["schema"] = {"$ref": f"#/components/schemas/{name}"}


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
