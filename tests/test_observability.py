"""One structured log line per request (with metrics), security headers, and no secret in any log."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.auth.deps import auth_service_of
from app.auth.schemas import UserCreate
from app.main import create_app
from app.observability import JsonFormatter
from app.storage.base import Store
from app.storage.records import Role
from tests.support import make_settings

PASSWORD = "a-secret-password-that-must-not-leak"


def formatted(caplog: pytest.LogCaptureFixture) -> list[dict]:  # type: ignore[type-arg]
    formatter = JsonFormatter()
    return [json.loads(formatter.format(record)) for record in caplog.records]


def test_access_line_has_request_fields_and_embedded_metrics(
    client: TestClient, role_headers: dict[str, dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="app.access"):
        response = client.get("/auth/users/nobody", headers=role_headers["admin"])
    lines = [line for line in formatted(caplog) if line["logger"] == "app.access"]
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == response.headers["x-request-id"]
    assert (line["method"], line["route"], line["status"], line["actor"]) == (
        "GET",
        "/auth/users/{username}",
        404,
        "admin-user",
    )
    assert line["latency_ms"] >= 0
    metrics = line["_aws"]["CloudWatchMetrics"][0]
    assert {metric["Name"] for metric in metrics["Metrics"]} == {"Requests", "Errors", "ClientErrors", "Latency"}
    assert (line["Requests"], line["Errors"], line["ClientErrors"]) == (1, 0, 1)
    assert line["Route"] == "/auth/users/{username}"


def test_no_password_or_token_is_ever_logged(
    app: FastAPI, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    auth_service_of(app.state.runtime).create_user("t", UserCreate(username="olga", password=PASSWORD, role=Role.ADMIN))
    with caplog.at_level(logging.DEBUG):
        client.post("/auth/login", json={"username": "olga", "password": "wrong-" + PASSWORD})
        tokens = client.post("/auth/login", data={"username": "olga", "password": PASSWORD}).json()
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        client.get("/auth/me", headers=headers)
        refreshed = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).json()
        client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})  # reuse: logged warning
        client.put(
            "/auth/me/password",
            json={"current_password": PASSWORD, "new_password": "another-" + PASSWORD},
            headers={"Authorization": f"Bearer {refreshed['access_token']}"},
        )
        client.get("/auth/me", headers={"Authorization": "Bearer not-a-real-token-but-secret-looking"})
    text = "\n".join(json.dumps(line) for line in formatted(caplog))
    assert "login" in text  # the requests were logged at all
    for secret in (
        PASSWORD,
        tokens["access_token"],
        tokens["refresh_token"],
        refreshed["refresh_token"],
        "not-a-real-token-but-secret-looking",
    ):
        assert secret not in text


def test_security_headers(client: TestClient) -> None:
    response = client.get("/health")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in response.headers  # local/test run on plain http
    assert client.get("/docs/assets/swagger-ui.css").headers["cache-control"].startswith("public")


def test_hsts_outside_local(store: Store) -> None:
    client = TestClient(create_app(make_settings(app_env="dev"), store))
    assert client.get("/health").headers["strict-transport-security"].startswith("max-age=")


def test_cors_allows_only_configured_origins(store: Store) -> None:
    client = TestClient(create_app(make_settings(cors_origins="https://portal.example"), store))
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    allowed = client.options("/auth/login", headers={"Origin": "https://portal.example", **preflight})
    assert allowed.headers["access-control-allow-origin"] == "https://portal.example"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    refused = client.options("/auth/login", headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in refused.headers


def test_job_end_is_a_metrics_line(
    app: FastAPI,
    client: TestClient,
    role_headers: dict[str, dict[str, str]],
    caplog: pytest.LogCaptureFixture,
    tmp_path: object,
) -> None:
    from app.migration.worker import InlineDispatcher
    from app.storage.blobs import LocalBlobStore

    runtime = app.state.runtime
    runtime.provide("blobs", LocalBlobStore(tmp_path))  # type: ignore[arg-type]
    runtime.provide("job_dispatcher", InlineDispatcher(runtime))
    admin = role_headers["admin"]
    body = {"type": "import", "target": "users", "format": "csv", "mapping": {"unmapped": "ignore"}}
    job_id = client.post("/migration/jobs", json=body, headers=admin).json()["job"]["id"]
    with caplog.at_level(logging.INFO, logger="app.migration"):
        client.put(f"/migration/jobs/{job_id}/input", content=b"username,role\r\nab,viewer\r\n", headers=admin)
    ended = [line for line in formatted(caplog) if line["message"] == "job ended"]
    assert len(ended) == 1
    names = {metric["Name"] for metric in ended[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"JobsFinished", "JobRowsProcessed", "JobRowsPerSecond"} <= names
    assert (ended[0]["JobType"], ended[0]["JobRowsProcessed"], ended[0]["JobRowsFailed"]) == ("import", 1, 1)
