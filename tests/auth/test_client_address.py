"""The login rate limit's client address can't be chosen by the client, however the app is started.

uvicorn trusts X-Forwarded-For from 127.0.0.1 by default and rewrites the client address before the
app sees it, so these tests run real uvicorn processes: plain `uvicorn app.main:app`, and the very
command line of `make run`.
"""

from __future__ import annotations

import shlex
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from mangum import Mangum

from app.main import create_app
from app.storage.base import Store
from tests.lambda_events import http_v2
from tests.servers import ROOT, uvicorn_server
from tests.support import TEST_SECRET, make_settings

RATE = 5
ATTEMPTS = 30


def server_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """Local mode on the session's DynamoDB Local (`data_dir` is its DATA_DIR), a table of its own."""
    return {
        "APP_ENV": "test",
        "JWT_SECRET": TEST_SECRET,
        "DATA_DIR": str(data_dir),
        "DYNAMODB_TABLE": f"client-address-{uuid.uuid4().hex[:8]}",
        "SEED_DEMO_DATA": "false",
        "LOGIN_RATE_PER_MINUTE": str(RATE),
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "1024",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


def make_run_command(port: int) -> list[str]:
    """The uvicorn line `make run` would execute, as make prints it."""
    printed = subprocess.run(  # noqa: S603 - our own Makefile
        ["make", "--no-print-directory", "-n", "run", "HOST=127.0.0.1", f"PORT={port}"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = [line for line in printed.splitlines() if "uvicorn app.main:app" in line]
    assert lines, printed
    return shlex.split(lines[-1])


def spoofed_logins(url: str) -> list[int]:
    """ATTEMPTS logins, each claiming another address in X-Forwarded-For."""
    with httpx.Client(base_url=url, timeout=10) as client:
        return [
            client.post(
                "/auth/login",
                json={"username": "nobody", "password": "wrong-password-1"},
                headers={"X-Forwarded-For": f"198.51.100.{attempt}"},
            ).status_code
            for attempt in range(ATTEMPTS)
        ]


def assert_limited(statuses: list[int]) -> None:
    assert set(statuses) <= {401, 429}
    # At most two fixed windows can be involved, each letting RATE attempts through.
    assert statuses.count(401) <= 2 * RATE, statuses
    assert 429 in statuses


@pytest.mark.parametrize("command", ["plain uvicorn", "make run"])
def test_varying_x_forwarded_for_does_not_escape_the_login_rate_limit(
    tmp_path: Path, local_engine_dir: Path, command: str
) -> None:
    launch: dict[str, Any] = {} if command == "plain uvicorn" else {"command": make_run_command}
    with uvicorn_server(server_env(local_engine_dir), tmp_path, **launch) as url:
        assert_limited(spoofed_logins(url))


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket(
    tmp_path: Path, local_engine_dir: Path
) -> None:
    # FORWARDED_ALLOW_IPS is read by uvicorn (whose X-Forwarded-For it then trusts) and by the app.
    with uvicorn_server(server_env(local_engine_dir, FORWARDED_ALLOW_IPS="127.0.0.1"), tmp_path) as url:
        assert spoofed_logins(url) == [401] * ATTEMPTS


def lambda_login(handler: Mangum, *, source_ip: str, forwarded_for: str) -> int:
    event = http_v2(
        "POST",
        "/auth/login",
        headers={"content-type": "application/json", "x-forwarded-for": forwarded_for},
        body='{"username": "nobody", "password": "wrong-password-1"}',
    )
    event["requestContext"]["http"]["sourceIp"] = source_ip
    response = handler(event, None)
    return int(response["statusCode"])


@pytest.fixture
def lambda_app(store: Store) -> FastAPI:
    return create_app(make_settings(login_rate_per_minute=RATE), store)


def test_on_lambda_the_source_ip_of_api_gateway_is_the_client(lambda_app: FastAPI) -> None:
    handler = Mangum(lambda_app, lifespan="off")
    spoofed = [lambda_login(handler, source_ip="203.0.113.7", forwarded_for=f"10.0.0.{i}") for i in range(ATTEMPTS)]
    assert_limited(spoofed)
    # Other clients, as API Gateway saw them, have their own buckets.
    assert [lambda_login(handler, source_ip=f"203.0.113.{i}", forwarded_for="10.0.0.1") for i in range(8, 14)] == [
        401
    ] * 6
