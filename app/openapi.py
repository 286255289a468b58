"""The OpenAPI document a frontend developer generates a client from.

Routes declare the problems they return with `error_responses(...)` (types of the catalogue in
`app.errors`, with the fields their examples name); `build_openapi` gives every error response the one
problem+json schema (replacing FastAPI's default validation-error model), enumerates both catalogues
as components, and adds 401/403 to every route whose policy needs a token or a capability and 413 to
every route that takes a body. Every body is a named component (a generated client names its type
after it), and every 201 documents its `Location`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel

from app.errors import (
    PROBLEM_CONTENT_TYPE,
    PROBLEM_TYPES,
    FieldCode,
    FieldError,
    Problem,
    ProblemType,
    example_problem,
    field_code,
)


@dataclass(frozen=True)
class Documented:
    """A problem an operation documents, with the field errors its example shows."""

    problem: ProblemType
    errors: tuple[tuple[str, FieldCode], ...] = ()


def problem(kind: ProblemType, *errors: tuple[str, FieldCode]) -> Documented:
    """`kind` with an example naming these fields, e.g. `problem(CONFLICT, ("body.msisdn", ALREADY_EXISTS))`."""
    return Documented(kind, errors)


def invalid(*errors: tuple[str, FieldCode]) -> Documented:
    """The 422 of an operation, its example naming these fields and codes."""
    return Documented(ProblemType.VALIDATION_ERROR, errors)


# What an operation taking If-Match (`app.deps.IfMatch`) may answer: stale, malformed, missing or `*`.
IF_MATCH_PROBLEMS = (
    Documented(ProblemType.PRECONDITION_FAILED),
    invalid(("header.if-match", FieldCode.INVALID_ETAG)),
    Documented(ProblemType.PRECONDITION_REQUIRED),
)

# Where a response lists its problems until `build_openapi` turns them into examples: routes are
# declared at import (a Lambda cold start), the document is built when first asked for.
_PROBLEMS_KEY = "x-problems"


def error_responses(*problems: ProblemType | Documented) -> dict[int | str, dict[str, Any]]:
    """The error responses of an operation: per status, the problem types it returns, each shown by
    an example built from the catalogue (a type given twice, with other fields, has two examples)."""
    responses: dict[int | str, dict[str, Any]] = {}
    for item in problems:
        documented = item if isinstance(item, Documented) else Documented(item)
        if documented.problem is ProblemType.VALIDATION_ERROR and not documented.errors:
            raise ValueError("a documented 422 names the fields it refuses: use invalid(...)")
        response = responses.setdefault(documented.problem.status, {"description": ""})
        _list_problem(response, documented)
    return responses


def _list_problem(response: dict[str, Any], documented: Documented) -> None:
    listed = response.setdefault(_PROBLEMS_KEY, [])
    entry = [documented.problem.uri, [[field, code.value] for field, code in documented.errors]]
    if entry in listed:
        return
    if all(uri != documented.problem.uri for uri, _ in listed):
        response["description"] = " ".join(filter(None, (response.get("description"), documented.problem.meaning)))
    listed.append(entry)


def _problem_content(listed: list[list[Any]], instance: str, forbidden_detail: str | None) -> dict[str, Any]:
    examples = {}
    for uri, errors in listed:
        kind = PROBLEM_TYPES[uri]
        field_errors = [
            FieldError(field=field, message=field_code(code).meaning, code=field_code(code)) for field, code in errors
        ]
        value = example_problem(kind, field_errors, instance=instance)
        if kind is ProblemType.FORBIDDEN and forbidden_detail:
            value["detail"] = forbidden_detail
        name = "-".join([kind.slug, *(code for _, code in errors[:1])])
        examples[name] = {
            "summary": kind.title + "".join(f": {field} {code}" for field, code in errors[:1]),
            "value": value,
        }
    return {PROBLEM_CONTENT_TYPE: {"schema": _PROBLEM_REF, "examples": examples}}


_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
# Every 201 names what it created (`app.deps.route_path`).
_LOCATION = {
    "description": "The absolute path of what was created, with the API's path prefix (e.g. an API Gateway "
    "stage): request it as it is.",
    "schema": {"type": "string"},
}


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


# Links from each creating operation's 201 to the operations that take the new id (and, for
# versioned things, the ETag it answered with as If-Match): clients and stateful fuzzers chain them.
# Not to a job's output: only a finished export has one (a fuzzer rightly calls that link broken).
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
        ("jobs_get", "jobs_put_input", "jobs_errors", "jobs_cancel", "jobs_rollback"),
    ),
    "jobs_upload": (
        "path.job_id",
        "$response.body#/id",
        ("jobs_get", "jobs_errors", "jobs_cancel", "jobs_rollback"),
    ),
    "webhooks_create": (
        "path.webhook_id",
        "$response.body#/id",
        (
            "webhooks_get",
            "webhooks_update",
            "webhooks_delete",
            "webhooks_rotate_secret",
            "webhooks_deliveries",
            "webhooks_retry_delivery",
            "webhooks_ping",
        ),
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
    from app.auth.policy import allows
    from app.changefeed.schemas import document_webhooks, webhook_routes
    from app.config import Settings
    from app.deps import IfMatch
    from app.storage.records import Role

    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        webhooks=webhook_routes(),
        tags=app.openapi_tags,
    )
    document_webhooks(schema.get("webhooks", {}))
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem.pop("$defs"))  # FieldError, FieldCode, ProblemType
    schemas["Problem"] = problem
    schemas["ProblemType"]["description"] = _catalogue_table(
        "The `type` of every problem the API returns; switch on it.",
        ("type", "status", "title", "meaning"),
        [(f"`{kind.uri}`", str(kind.status), kind.title, kind.meaning) for kind in ProblemType],
    )
    schemas["FieldCode"]["description"] = _catalogue_table(
        "Every `errors[].code`: why a field was refused.",
        ("code", "meaning"),
        [(f"`{code.value}`", code.meaning) for code in FieldCode],
    )
    # The running app's minimum; an app built without a runtime (a test's) documents the default.
    runtime = getattr(app.state, "runtime", None)
    settings = runtime.settings if runtime is not None else Settings(_env_file=None)
    _password_policy(schema, settings.password_min_length)

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
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            if _BODY_KEY in operation:
                operation["requestBody"] = _request_body(operation.pop(_BODY_KEY), schemas)
            _rename_generated_body(operation, schemas)
            for parameter in operation.get("parameters", []):
                parameter["schema"] = _without_null(parameter["schema"])
            responses = operation.setdefault("responses", {})
            policy = policies.get(operation.get("operationId", ""))
            operation_id = operation.get("operationId", "")
            if operation_id in _CREATED_LINKS:
                responses["201"]["links"] = _created_links(operation_id, set(if_match_parameters))
            # Every operation that uses the store may find it unavailable (the health probes report it their way).
            implied: list[ProblemType | Documented] = (
                [] if "health" in operation.get("tags", ()) else [ProblemType.SERVICE_UNAVAILABLE]
            )
            if_match = if_match_parameters.get(operation_id)
            if if_match is not None:
                operation.setdefault("parameters", []).append(if_match)
                implied += IF_MATCH_PROBLEMS
            if "requestBody" in operation:
                implied.append(ProblemType.PAYLOAD_TOO_LARGE)
            if "201" in responses:
                responses["201"].setdefault("headers", {})["Location"] = _LOCATION
            # A 403 where some role lacks the route's capability; its example names that role.
            refused = [role for role in Role if policy and policy.capability and not allows(role, policy.capability)]
            if policy is not None and not policy.public:
                implied.append(ProblemType.UNAUTHORIZED)
                if refused:
                    implied.append(ProblemType.FORBIDDEN)
            for item in implied:
                documented = item if isinstance(item, Documented) else Documented(item)
                _list_problem(responses.setdefault(str(documented.problem.status), {"description": ""}), documented)
            instance = _example_path(path, operation)
            needs = policy.capability.value if policy and policy.capability else ""
            forbidden = f"role {refused[0].value!r} may not do this (needs {needs})" if refused else None
            for status, response in responses.items():
                if _PROBLEMS_KEY in response:
                    # FastAPI adds a JSON content beside the declared one; a problem has only its own.
                    response["content"] = _problem_content(response.pop(_PROBLEMS_KEY), instance, forbidden)
                elif status == "422":
                    # FastAPI's own 422, where the route declares none: no examples, so the tests refuse it.
                    response["content"] = {PROBLEM_CONTENT_TYPE: {"schema": _PROBLEM_REF}}
    schema["components"]["schemas"] = dict(sorted(schemas.items()))
    return schema


def _catalogue_table(lead: str, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = [lead, "", "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _example_path(template: str, operation: dict[str, Any]) -> str:
    """The operation's path with each parameter replaced by its example (or its name)."""
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path":
            examples = parameter.get("schema", {}).get("examples") or parameter.get("examples") or [parameter["name"]]
            value = examples[0] if isinstance(examples, list) else next(iter(examples.values()))["value"]
            template = template.replace("{" + parameter["name"] + "}", str(value))
    return template


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
