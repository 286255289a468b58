"""The Lambda entry point, driven with real-shaped events against DynamoDB on a moto server (HTTP)."""

from __future__ import annotations

import base64
import importlib
import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from time import time_ns
from types import ModuleType
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from app import events
from tests.lambda_events import FakeContext, dynamodb_stream, http_v2, rest_v1, s3_put, sqs
from tests.support import TEST_SECRET

PORTAL_ORIGIN = "https://portal.example"


@pytest.fixture(scope="module")
def handler_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "APP_ENV": "test",
        "JWT_SECRET": TEST_SECRET,
        "DYNAMODB_ENDPOINT_URL": f"http://{host}:{port}",
        "DYNAMODB_TABLE": "handler-test",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "eu-west-1",
        "DATA_DIR": str(tmp_path_factory.mktemp("data")),
        "SEED_DEMO_DATA": "false",
        "CORS_ORIGINS": PORTAL_ORIGIN,
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    from app.config import get_settings

    get_settings.cache_clear()
    sys.modules.pop("app.handler", None)
    module = importlib.import_module("app.handler")
    try:
        yield module
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()
        sys.modules.pop("app.handler", None)
        server.stop()


def invoke(module: ModuleType, event: dict[str, Any]) -> Any:
    return module.handler(event, FakeContext())


def post_json(
    module: ModuleType, path: str, payload: object, *, headers: dict[str, str] | None = None, stage: str = "$default"
) -> Any:
    """POST `payload` as a JSON body through API Gateway (stage `stage`)."""
    json_headers = {**(headers or {}), "content-type": "application/json"}
    return invoke(module, http_v2("POST", path, body=json.dumps(payload), headers=json_headers, stage=stage))


def body_of(response: dict[str, Any]) -> Any:
    raw = response["body"]
    if response.get("isBase64Encoded"):
        raw = base64.b64decode(raw)
    return json.loads(raw)


def test_get_with_query_string(handler_module: ModuleType) -> None:
    response = invoke(handler_module, http_v2("GET", "/health", query={"verbose": "1"}))
    assert response["statusCode"] == 200
    assert body_of(response)["status"] == "ok"
    assert response["headers"]["x-request-id"]


def test_request_id_comes_from_api_gateway(handler_module: ModuleType) -> None:
    event = http_v2("GET", "/health")
    response = invoke(handler_module, event)
    assert response["headers"]["x-request-id"] == event["requestContext"]["requestId"]


def test_readiness_through_the_real_endpoint(handler_module: ModuleType) -> None:
    response = invoke(handler_module, http_v2("GET", "/health/ready"))
    assert response["statusCode"] == 200, response
    assert body_of(response)["checks"]["table"]["ok"] is True


def test_post_json_body_reaches_validation(handler_module: ModuleType) -> None:
    response = post_json(handler_module, "/health", {"a": 1})
    assert response["statusCode"] == 405
    assert response["headers"]["content-type"] == "application/problem+json"


def test_base64_body_and_cookies_are_decoded(handler_module: ModuleType) -> None:
    event = http_v2("POST", "/health", body=b"\x00\x01binary", base64_body=True, cookies=["session=abc", "theme=dark"])
    response = invoke(handler_module, event)
    assert response["statusCode"] == 405
    assert body_of(response)["status"] == 405


def test_oversized_body_is_413_problem(handler_module: ModuleType) -> None:
    event = http_v2("POST", "/health", body="x" * 1_100_000, headers={"content-type": "text/plain"})
    response = invoke(handler_module, event)
    assert response["statusCode"] == 413
    assert "exceeds" in body_of(response)["detail"]


def test_stage_prefixed_path_routes_and_docs_point_inside_the_stage(handler_module: ModuleType) -> None:
    response = invoke(handler_module, http_v2("GET", "/health", stage="dev"))
    assert response["statusCode"] == 200
    docs = invoke(handler_module, http_v2("GET", "/docs", stage="dev"))
    assert docs["statusCode"] == 200
    assert "/dev/openapi.json" in docs["body"]
    assert "/dev/docs/assets/swagger-ui-bundle.js" in docs["body"]
    asset = invoke(handler_module, http_v2("GET", "/docs/assets/swagger-ui-bundle.js", stage="dev"))
    assert asset["statusCode"] == 200
    assert asset["headers"]["content-type"].startswith(("text/javascript", "application/javascript"))
    redoc = invoke(handler_module, http_v2("GET", "/docs/assets/redoc.standalone.js", stage="dev"))
    assert redoc["statusCode"] == 200
    assert redoc["headers"]["content-type"].startswith("text/javascript")
    assert "cdn.redoc.ly" not in redoc["body"]
    spec = invoke(handler_module, http_v2("GET", "/openapi.json", stage="dev"))
    assert body_of(spec)["servers"] == [{"url": "/dev"}]


def test_cors_preflight_is_answered_by_the_app(handler_module: ModuleType) -> None:
    # serverless.yml gives the HTTP API no CORS rule, so preflights reach the function.
    def preflight(origin: str) -> Any:
        headers = {
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization",
        }
        return invoke(handler_module, http_v2("OPTIONS", "/auth/login", headers=headers))

    allowed = preflight(PORTAL_ORIGIN)
    assert allowed["statusCode"] == 200
    assert allowed["headers"]["access-control-allow-origin"] == PORTAL_ORIGIN
    # APP_ENV=test is not local: a dev server on localhost is refused, and told why.
    refused = preflight("http://localhost:5173")
    assert refused["statusCode"] == 403
    assert refused["headers"]["content-type"] == "application/problem+json"
    assert "access-control-allow-origin" not in refused["headers"]
    assert "CORS_ORIGINS" in body_of(refused)["detail"]


def test_links_keep_the_api_gateway_stage(handler_module: ModuleType) -> None:
    """Behind stage `dev` the Location is `/dev/...`: sent back as it is, API Gateway routes it to us."""
    from app.auth.deps import auth_service_of
    from app.auth.schemas import UserCreate
    from app.storage.records import Role

    runtime = handler_module.runtime
    auth_service_of(runtime).create_user(
        "test", UserCreate(username="stage-admin", password="stage-password-0123", role=Role.ADMIN)
    )
    login = post_json(
        handler_module, "/auth/login", {"username": "stage-admin", "password": "stage-password-0123"}, stage="dev"
    )
    assert login["statusCode"] == 200, login
    bearer = {"authorization": f"Bearer {body_of(login)['access_token']}"}

    subscriber = {
        "uid": "sub-stage-1",
        "msisdn": "+447911123456",
        "imsi": "234150999999999",
        "first_name": "Jane",
        "last_name": "Doe",
        "plan": "BASIC",
    }
    created = post_json(handler_module, "/subscribers", subscriber, headers=bearer, stage="dev")
    assert created["statusCode"] == 201, created
    location = created["headers"]["location"]
    assert location == "/dev/subscribers/sub-stage-1"
    event = http_v2("GET", location.removeprefix("/dev"), headers=bearer, stage="dev")
    assert event["rawPath"] == location  # the request API Gateway sends for that link
    assert invoke(handler_module, event)["statusCode"] == 200

    job = post_json(handler_module, "/migration/jobs", {"type": "import", "format": "csv"}, headers=bearer, stage="dev")
    assert job["statusCode"] == 201, job
    job_id = body_of(job)["job"]["id"]
    assert job["headers"]["location"] == f"/dev/migration/jobs/{job_id}"
    # The handler's store has no S3 bucket configured: the upload goes to the API, inside the stage.
    assert body_of(job)["upload"]["url"] == f"/dev/migration/jobs/{job_id}/input"


def test_rest_v1_event_with_stage(handler_module: ModuleType) -> None:
    response = invoke(handler_module, rest_v1("GET", "/health", stage="prod"))
    assert response["statusCode"] == 200
    docs = invoke(handler_module, rest_v1("GET", "/docs", stage="prod"))
    assert "/prod/openapi.json" in docs["body"]


def test_unknown_route_is_problem_404(handler_module: ModuleType) -> None:
    response = invoke(handler_module, http_v2("GET", "/does-not-exist"))
    assert response["statusCode"] == 404
    assert body_of(response)["type"] == "/problems/not-found"


def test_sqs_event_goes_to_registered_worker_and_reports_failures(
    handler_module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, Any]] = []

    def worker(body: dict[str, Any], runtime: Any, deadline: float | None) -> None:
        if body.get("explode"):
            raise RuntimeError("boom")
        assert runtime is handler_module.runtime
        assert deadline is not None  # from the Lambda context's remaining time
        seen.append(body)

    monkeypatch.setitem(events.message_workers, "test.job", worker)
    result = invoke(
        handler_module,
        sqs(
            {"kind": "test.job", "id": 1},
            {"kind": "test.job", "explode": True},
            {"kind": "unknown"},
            "not json",
        ),
    )
    assert seen == [{"kind": "test.job", "id": 1}]
    assert result == {"batchItemFailures": [{"itemIdentifier": f"msg-{i}"} for i in (1, 2, 3)]}


def test_s3_event_goes_to_worker_by_prefix_with_decoded_key(
    handler_module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, str]] = []
    monkeypatch.setitem(events.object_workers, "uploads/", lambda bucket, key, runtime: seen.append((bucket, key)))
    result = invoke(handler_module, s3_put("portal-uploads", "uploads/job-1/my+fil%C3%A9.csv"))
    assert seen == [("portal-uploads", "uploads/job-1/my filé.csv")]
    assert result == {"handled": ["uploads/job-1/my filé.csv"]}


def test_scheduled_task(handler_module: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(events.scheduled_tasks, "tick", lambda runtime: {"ticked": True})
    assert invoke(handler_module, {"task": "tick"}) == {"task": "tick", "result": {"ticked": True}}
    with pytest.raises(handler_module.UnsupportedEvent):
        invoke(handler_module, {"task": "nope"})


def test_stream_records_go_to_the_relay_and_out_of_the_outbox(
    handler_module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table's stream, as Lambda delivers it, through the entry point (no bus configured here)."""
    import app.changefeed.consumers  # noqa: F401  (registered first, so the patch below wins)
    from app.changefeed import relay
    from app.storage.dynamodb.events import event_item
    from app.storage.dynamodb.table import serialize
    from app.storage.records import DomainEvent

    seen: list[str] = []
    monkeypatch.setattr(relay, "event_consumers", {"recorder": lambda event, runtime: seen.append(event.id)})
    store = handler_module.runtime.store
    event = DomainEvent(
        id=f"{time_ns():016x}0000abcd",
        type="booking.confirmed",
        at=datetime.now(UTC),
        subject="booking/b-stream",
        actor="admin",
        data={"booking": {"id": "b-stream"}},
    )
    item = event_item(event)
    store.table.batch_write(puts=[item])
    assert event.id in [pending.id for pending in store.events.pending(limit=100)]

    result = invoke(handler_module, dynamodb_stream(("INSERT", serialize(item))))

    assert result == {"batchItemFailures": []}
    assert seen == [event.id]
    assert event.id not in [pending.id for pending in store.events.pending(limit=100)]


@pytest.mark.parametrize("event", [{}, {"detail-type": "Something"}, {"Records": [{"eventSource": "aws:kinesis"}]}])
def test_unknown_event_is_rejected_clearly(handler_module: ModuleType, event: dict[str, Any]) -> None:
    with pytest.raises(handler_module.UnsupportedEvent, match="unsupported event"):
        invoke(handler_module, event)
