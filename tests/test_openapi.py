"""The OpenAPI document is valid, complete for client generators, and committed up to date."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from openapi_spec_validator import validate

from app.main import create_app
from app.openapi import build_openapi, render
from tests.support import make_settings

COMMITTED = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"


def spec() -> dict:  # type: ignore[type-arg]
    return build_openapi(create_app(make_settings()))


def test_spec_is_valid_openapi() -> None:
    validate(spec())


def test_committed_spec_is_current() -> None:
    from app.config import Settings

    current = render(create_app(Settings(_env_file=None)))  # type: ignore[call-arg]
    assert COMMITTED.read_text() == current, "docs/openapi.json is stale: run `make openapi`"


def test_operations_are_named_typed_and_document_errors_as_problems() -> None:
    document = spec()
    operation_ids = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            operation_id = operation.get("operationId", "")
            assert re.fullmatch(r"[a-z]+_[a-z_]+", operation_id), f"{where}: operationId {operation_id!r}"
            operation_ids.append(operation_id)
            assert operation.get("summary"), where
            assert operation.get("tags"), where
            success = [status for status in operation["responses"] if status.startswith("2")]
            assert success, where
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    # The readiness probe answers 503 with its report (which check failed), not a problem.
                    readiness = (path, status) == ("/health/ready", "503")
                    expected = ["application/json"] if readiness else ["application/problem+json"]
                    assert list(response["content"]) == expected, f"{where} {status}"
                elif "application/json" in response.get("content", {}):
                    assert response["content"]["application/json"]["schema"], f"{where} {status}"
                elif status.startswith("2") and status != "204":
                    assert response.get("content"), f"{where} {status}: no content documented"
            if operation.get("security"):
                assert "401" in operation["responses"], where
    assert len(operation_ids) == len(set(operation_ids))
    tags = {tag["name"] for tag in document["tags"]}
    used = {tag for operations in document["paths"].values() for op in operations.values() for tag in op["tags"]}
    assert used <= tags
    assert all(tag.get("description") for tag in document["tags"])


def test_request_bodies_have_examples() -> None:
    document = spec()
    schemas = document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody")
            if not body:
                continue
            for media in body["content"].values():
                reference = media["schema"].get("$ref")
                if reference and media is body["content"].get("application/json"):
                    model = schemas[reference.rsplit("/", 1)[1]]
                    assert "example" in model or "examples" in model, f"{method.upper()} {path}: no example"


def test_password_flow_security_scheme_for_swagger_authorize() -> None:
    scheme = spec()["components"]["securitySchemes"]["OAuth2PasswordBearer"]
    assert scheme["flows"]["password"]["tokenUrl"] == "auth/login"


def test_every_api_route_has_an_operation_id() -> None:
    app = create_app(make_settings())
    missing = [r.path for r in app.routes if isinstance(r, APIRoute) and r.include_in_schema and not r.operation_id]
    assert missing == []


def test_committed_spec_is_json() -> None:
    json.loads(COMMITTED.read_text())


COMPONENT_NAME = re.compile(r"[A-Z][A-Za-z0-9]*")


def _named(schema: dict, schemas: dict) -> bool:  # type: ignore[type-arg]
    reference = schema.get("$ref", "")
    return reference.startswith("#/components/schemas/") and reference.rsplit("/", 1)[1] in schemas


def test_every_json_and_form_body_is_a_named_component() -> None:
    """Client generators name a body's type after its component: none is inlined, none is named after a
    module path (`app__ops__schemas__DayCount`) or an operation (`Body_jobs_upload`)."""
    document = spec()
    schemas = document["components"]["schemas"]
    assert [name for name in schemas if not COMPONENT_NAME.fullmatch(name)] == []
    unnamed = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            bodies = {"request": operation.get("requestBody", {}), **operation["responses"]}
            for where, body in bodies.items():
                for media, content in body.get("content", {}).items():
                    schema = content.get("schema", {})
                    structured = media.endswith(("/json", "+json", "form-urlencoded", "form-data"))
                    if not structured or schema.get("format") == "binary":
                        continue  # files: CSV, NDJSON, raw uploads
                    # An optional body (the route also takes none, or `null`): the component or null.
                    if body is not bodies["request"] or body.get("required") or "anyOf" not in schema:
                        named = _named(schema, schemas)
                    else:
                        named = len(schema["anyOf"]) == 2 and {"type": "null"} in schema["anyOf"]
                        named = named and any(_named(option, schemas) for option in schema["anyOf"])
                    if not named:
                        unnamed.append(f"{method.upper()} {path} {where} {media}")
    assert unnamed == []


def test_subscriber_bodies_are_their_own_components() -> None:
    document = spec()
    bodies = {
        (path, method): {media: content["schema"] for media, content in operation["requestBody"]["content"].items()}
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if path.startswith("/subscribers") and "requestBody" in operation
    }
    assert bodies == {
        ("/subscribers", "post"): {"application/json": {"$ref": "#/components/schemas/SubscriberIn"}},
        ("/subscribers/{uid}", "put"): {"application/json": {"$ref": "#/components/schemas/SubscriberReplace"}},
        ("/subscribers/{uid}", "patch"): {
            "application/merge-patch+json": {"$ref": "#/components/schemas/SubscriberPatch"},
            "application/json": {"$ref": "#/components/schemas/SubscriberPatch"},
        },
    }
    schemas = document["components"]["schemas"]
    assert schemas["SubscriberIn"]["properties"]["status"] == {"$ref": "#/components/schemas/SubscriberStatus"} | {
        "default": "ACTIVE"
    }


def test_every_created_response_documents_its_location() -> None:
    document = spec()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            created = operation["responses"].get("201")
            if created is not None:
                header = created.get("headers", {}).get("Location", {})
                assert header.get("schema") == {"type": "string"}, f"{method.upper()} {path}"
                assert "absolute path" in header.get("description", ""), f"{method.upper()} {path}"


def test_login_form_is_a_component_with_a_sample() -> None:
    """ReDoc shows the form's sample (it showed 'No sample' for an inline schema without one)."""
    document = spec()
    content = document["paths"]["/auth/login"]["post"]["requestBody"]["content"]
    form = content["application/x-www-form-urlencoded"]["schema"]
    assert form == {"$ref": "#/components/schemas/LoginForm"}
    schema = document["components"]["schemas"]["LoginForm"]
    assert set(schema["required"]) == {"username", "password"}
    assert schema["example"]["grant_type"] == "password"
    assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/LoginRequest"}


def test_one_day_count_for_bookings_and_the_dashboard() -> None:
    schemas = spec()["components"]["schemas"]
    day_count = {"$ref": "#/components/schemas/DayCount"}
    assert schemas["DailyCounts"]["properties"]["days"]["items"] == day_count
    assert schemas["DashboardStats"]["properties"]["bookings_next_7_days"]["items"] == day_count
    assert schemas["DayCount"]["properties"]["date"]["format"] == "date"


def _referenced(node: object, schemas: dict, found: set[str]) -> set[str]:  # type: ignore[type-arg]
    if isinstance(node, dict):
        reference = node.get("$ref")
        if isinstance(reference, str) and (name := reference.rsplit("/", 1)[1]) not in found:
            found.add(name)
            _referenced(schemas[name], schemas, found)
        for value in node.values():
            _referenced(value, schemas, found)
    elif isinstance(node, list):
        for item in node:
            _referenced(item, schemas, found)
    return found


def test_response_fields_the_server_always_sends_are_required() -> None:
    """Generated clients type a field that is not `required` as possibly missing (`field?: T`). Every
    field of a response model is always sent (null where it has no value), so each one is required;
    the problem's members are left out when empty, so they stay optional."""
    document = spec()
    schemas = document["components"]["schemas"]
    operations = [operation for operations in document["paths"].values() for operation in operations.values()]
    responses = _referenced([operation["responses"] for operation in operations], schemas, set())
    optional = {
        name: sorted(set(schemas[name].get("properties", {})) - set(schemas[name].get("required", [])))
        for name in responses - {"Problem"}
    }
    assert {name: fields for name, fields in optional.items() if fields} == {}


def test_two_body_models_of_one_name_are_refused() -> None:
    """Components are named after their models: a second, different model of the same name would
    silently replace the first in every client, so building the document fails instead."""
    from fastapi import FastAPI
    from pydantic import BaseModel

    from app.openapi import json_request_body

    class Clash(BaseModel):
        a: int

    first = Clash

    class Clash(BaseModel):  # type: ignore[no-redef]
        b: str

    app = FastAPI()
    app.post("/first", operation_id="clash_first", openapi_extra=json_request_body(first))(lambda: None)
    app.post("/second", operation_id="clash_second", openapi_extra=json_request_body(Clash))(lambda: None)
    with pytest.raises(ValueError, match="'Clash'"):
        build_openapi(app)


def test_problem_members_left_out_when_empty_are_optional_not_nullable() -> None:
    """A problem leaves `detail`, `instance`, `request_id` and `errors` out when it has none (it never
    sends null), so a generated client types them `field?: T`, not `T | null`."""
    problem = spec()["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status"}
    for name in ("detail", "instance", "request_id", "errors"):
        member = problem["properties"][name]
        assert "anyOf" not in member, (name, member)
        assert member.get("type") != "null", (name, member)
