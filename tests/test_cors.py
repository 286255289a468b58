"""CORS: browser dev servers on loopback may call a local API; elsewhere only CORS_ORIGINS. A refused
preflight is answered 403 problem+json and logged with the origin and the reason (through the Lambda
handler: tests/test_handler.py)."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from app.main import create_app
from tests.support import make_settings

PREFLIGHT = {"Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "authorization,if-match"}
DEV_SERVERS = ["http://localhost:5173", "http://127.0.0.1:3000", "http://[::1]:8080", "http://localhost"]
NOT_LOOPBACK = [
    "http://localhost.evil.example:5173",
    "http://127.0.0.1.evil.example",
    "http://evil.example",
    "http://localhost:5173/path",
    "http://192.168.1.10:5173",
]


def client_for(**settings: object) -> TestClient:
    return TestClient(create_app(make_settings(**settings)))


def preflight(client: TestClient, origin: str, **headers: str) -> Response:
    return client.options("/subscribers/sub-1", headers={"Origin": origin, **PREFLIGHT, **headers})


def refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "app.cors"]


def assert_refused(response: Response, status: int = 403) -> None:
    assert response.status_code == status, response.text
    assert "access-control-allow-origin" not in response.headers
    if status == 403:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 403


@pytest.mark.parametrize("origin", DEV_SERVERS)
def test_local_mode_lets_any_loopback_dev_server_call_the_api(origin: str) -> None:
    client = client_for(app_env="local")
    allowed = preflight(client, origin)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == origin
    assert {"PUT", "DELETE"} <= set(allowed.headers["access-control-allow-methods"].split(", "))
    # The real request after the preflight: the browser may read the answer and its headers.
    answer = client.get("/health", headers={"Origin": origin})
    assert answer.headers["access-control-allow-origin"] == origin
    exposed = {name.strip().lower() for name in answer.headers["access-control-expose-headers"].split(",")}
    expected = {"etag", "location", "retry-after", "x-request-id", "idempotent-replayed", "content-disposition"}
    assert expected <= exposed


@pytest.mark.parametrize("origin", NOT_LOOPBACK)
def test_local_mode_refuses_origins_that_only_look_local(origin: str, caplog: pytest.LogCaptureFixture) -> None:
    client = client_for(app_env="local")
    with caplog.at_level(logging.INFO, logger="app.cors"):
        assert_refused(preflight(client, origin))
    assert [record.origin for record in refusals(caplog)] == [origin]  # type: ignore[attr-defined]


def test_local_mode_keeps_the_listed_origins() -> None:
    client = client_for(app_env="local", cors_origins="https://portal.example")
    for origin in ("https://portal.example", "http://localhost:5173"):
        assert preflight(client, origin).headers["access-control-allow-origin"] == origin


@pytest.mark.parametrize("app_env", ["test", "dev", "staging", "prod"])
def test_other_modes_without_cors_origins_refuse_localhost_and_say_why(
    app_env: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = client_for(app_env=app_env)
    with caplog.at_level(logging.INFO, logger="app.cors"):
        response = preflight(client, "http://localhost:5173")
        assert_refused(response)
        assert "CORS_ORIGINS" in response.json()["detail"]
        # A request that is not a preflight is still served, without the header that lets a page read it.
        assert (
            "access-control-allow-origin"
            not in client.get("/health", headers={"Origin": "http://localhost:5173"}).headers
        )
    [line] = refusals(caplog)
    assert line.levelno == logging.WARNING
    assert line.origin == "http://localhost:5173"  # type: ignore[attr-defined]
    assert "CORS_ORIGINS is empty" in line.reason  # type: ignore[attr-defined]


def test_other_modes_allow_only_the_listed_origins(caplog: pytest.LogCaptureFixture) -> None:
    client = client_for(app_env="dev", cors_origins="https://portal.example")
    assert (
        preflight(client, "https://portal.example").headers["access-control-allow-origin"] == "https://portal.example"
    )
    with caplog.at_level(logging.INFO, logger="app.cors"):
        assert_refused(preflight(client, "http://localhost:5173"))
    [line] = refusals(caplog)
    assert "not in CORS_ORIGINS" in line.reason  # type: ignore[attr-defined]


def test_a_header_or_method_the_api_does_not_take_is_refused_by_name(caplog: pytest.LogCaptureFixture) -> None:
    client = client_for(app_env="local")
    with caplog.at_level(logging.INFO, logger="app.cors"):
        assert_refused(preflight(client, "http://localhost:5173", **{"Access-Control-Request-Headers": "x-secret"}))
        assert_refused(preflight(client, "http://localhost:5173", **{"Access-Control-Request-Method": "TRACE"}))
        # What only Starlette checks is refused (and logged) with its own words.
        assert_refused(preflight(client, "http://localhost:5173", **{"Access-Control-Request-Private-Network": "true"}))
    reasons = [record.reason for record in refusals(caplog)]  # type: ignore[attr-defined]
    assert len(reasons) == 3
    assert "x-secret" in reasons[0]
    assert "TRACE" in reasons[1]
    assert reasons[2] == "Disallowed CORS private-network"
