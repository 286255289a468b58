"""Every error is RFC 9457 problem+json: validation, domain, storage, HTTP and unexpected ones."""

from __future__ import annotations

import logging

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict, Field

from app.errors import ConflictError, FieldCode, InvalidInput
from app.storage.base import RecordMissing, StaleVersion
from tests.support import make_settings


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=5)
    count: int = Field(ge=0)


router = APIRouter()


@router.post("/echo")
def echo(payload: Payload) -> Payload:
    return payload


@router.get("/boom")
def boom() -> None:
    raise RuntimeError("secret internals: password=hunter2")


@router.get("/domain")
def domain() -> None:
    raise InvalidInput("body.msisdn", "not a valid phone number", code=FieldCode.INVALID_MSISDN)


@router.get("/conflict")
def conflict() -> None:
    raise ConflictError("msisdn already in use")


@router.get("/storage/{kind}")
def storage(kind: str) -> None:
    raise (RecordMissing("subscriber 'x' not found") if kind == "missing" else StaleVersion("version is stale"))


@pytest.fixture
def client() -> TestClient:
    from app.main import create_app

    app: FastAPI = create_app(make_settings())
    app.include_router(router)
    return TestClient(app, raise_server_exceptions=False)


def test_validation_error_lists_each_field(client: TestClient) -> None:
    response = client.post("/echo", json={"name": "toolong", "count": -1, "extra": 1})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "/problems/validation-error"
    assert problem["instance"] == "/echo"
    assert problem["request_id"] == response.headers["x-request-id"]
    fields = {error["field"]: error["code"] for error in problem["errors"]}
    assert fields == {
        "body.name": "too_long",
        "body.count": "too_small",
        "body.extra": "unknown_field",
    }


def test_malformed_json_is_422_not_500(client: TestClient) -> None:
    response = client.post("/echo", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "json_invalid"


def test_domain_error_names_field(client: TestClient) -> None:
    problem = client.get("/domain").json()
    assert problem["status"] == 422
    assert problem["errors"] == [
        {"field": "body.msisdn", "message": "not a valid phone number", "code": "invalid_msisdn"}
    ]


@pytest.mark.parametrize(("path", "status"), [("/conflict", 409), ("/storage/missing", 404), ("/storage/stale", 412)])
def test_domain_and_storage_errors_map_to_status(client: TestClient, path: str, status: int) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert response.json()["status"] == status


def test_unexpected_error_is_500_with_request_id_and_no_internals(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        response = client.get("/boom", headers={"x-request-id": "client-req-1"})
    assert response.status_code == 500
    problem = response.json()
    assert problem["request_id"] == "client-req-1"
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    assert any("unhandled error" in record.getMessage() for record in caplog.records)


def test_invalid_client_request_id_is_replaced(client: TestClient) -> None:
    response = client.get("/health", headers={"x-request-id": "bad id with spaces"})
    assert response.headers["x-request-id"] != "bad id with spaces"


def test_method_not_allowed_is_problem(client: TestClient) -> None:
    response = client.delete("/health")
    assert response.status_code == 405
    assert response.json()["title"] == "Method Not Allowed"


def test_method_not_allowed_lists_the_methods_of_the_path(client: TestClient) -> None:
    assert client.delete("/health").headers["allow"] == "GET"
    assert client.options("/subscribers/some-uid").headers["allow"] == "DELETE, GET, PATCH, PUT"
    # `/subscribers/{uid}` matches this path too, but it is another path of the OpenAPI document.
    assert client.options("/subscribers/search").headers["allow"] == "GET"


def test_body_over_limit_is_413_even_without_content_length(client: TestClient) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b"x" * 100_000

    response = client.post("/echo", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["type"] == "/problems/request-entity-too-large"
