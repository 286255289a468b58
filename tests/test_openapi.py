"""The OpenAPI document is valid, complete for client generators, and committed up to date."""

from __future__ import annotations

import json
import re
from pathlib import Path

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
