"""The Lambda function behind serverless-offline's HTTP API emulation, configured as the dev stage.

These requests go through the real chain: HTTP API v2 event -> app.handler.handler -> Mangum ->
FastAPI, with settings from serverless.yml's environment and the JWT secret read from SSM.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.delivery.conftest import OfflineApi

pytestmark = pytest.mark.slow


def get(api: OfflineApi, path: str) -> tuple[int, dict[str, str], Any]:
    with urllib.request.urlopen(f"{api.base_url}{path}", timeout=30) as response:
        return response.status, dict(response.headers), json.loads(response.read())


def test_health_answers_as_the_dev_stage(offline_api: OfflineApi) -> None:
    status, headers, body = get(offline_api, "/health")

    assert status == 200, offline_api.log_tail()
    assert body["status"] == "ok"
    assert body["environment"] == "dev"  # APP_ENV from serverless.yml, not a local default
    assert headers.get("x-request-id")


def test_readiness_sees_the_table_its_indexes_and_ttl(offline_api: OfflineApi) -> None:
    status, _, body = get(offline_api, "/health/ready")

    assert status == 200, (body, offline_api.log_tail())
    assert body["status"] == "ready"
    assert body["backend"] == "dynamodb"
    assert offline_api.table_name in body["checks"]["table"]["detail"]
    assert all(check["ok"] for check in body["checks"].values()), body


def test_unknown_route_is_a_problem_json_404(offline_api: OfflineApi) -> None:
    request = urllib.request.Request(f"{offline_api.base_url}/no-such-route")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=30)

    assert caught.value.code == 404
    assert caught.value.headers["content-type"].startswith("application/problem+json")
