"""AWS Lambda entry point (`app.handler.handler`).

HTTP events (API Gateway HTTP API v2, REST v1, ALB) go to the FastAPI app through Mangum;
SQS, S3 and scheduled events go to the workers registered in `app.events`; the table's DynamoDB
Streams records (inserted events) go to the change feed relay (`app.changefeed.stream`). Anything
else is logged and rejected. The app and its store are built at import, i.e. in Lambda's init phase,
and reused by every invocation of the execution environment.

The cyclic garbage collector is paused for that init phase and everything it built is then frozen
(`gc.freeze`): init builds ~120,000 long-lived objects and hardly any garbage, so the ~270
collections it would trigger (~170 ms inside the collector here) scan the same live objects again
and again to free ~1,300; frozen, they are also skipped by every later collection. Measured cold
start: about -0.4 s (docs/performance.md).
"""

from __future__ import annotations

import gc

gc.disable()  # before the imports below: they are most of the init phase (see the docstring)

import json
import logging
import time
from typing import Any
from urllib.parse import unquote_plus

from mangum import Mangum
from starlette.types import ASGIApp, Receive, Scope, Send

from app import events
from app.main import create_app
from app.runtime import Runtime

logger = logging.getLogger("app.handler")
DEADLINE_MARGIN_SECONDS = 10


class UnsupportedEvent(ValueError):
    pass


class ApiGatewayRootPath:
    """Sets the ASGI `root_path` from the API Gateway stage and a custom-domain base path.

    Behind a named stage (`/dev/...`) or an API mapping (`/portal/...`) routes still match, and
    `/docs` loads `/dev/openapi.json` rather than a URL that does not exist.
    """

    def __init__(self, app: ASGIApp, base_path: str) -> None:
        self.app = app
        self.base_path = base_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = dict(scope)
            root, path = _root_and_path(scope.get("aws.event") or {}, scope["path"], self.base_path)
            scope["root_path"], scope["path"] = root, path
            scope["raw_path"] = path.encode()
        await self.app(scope, receive, send)


def _root_and_path(event: dict[str, Any], path: str, base_path: str) -> tuple[str, str]:
    context = event.get("requestContext") or {}
    stage = context.get("stage")
    root = ""
    if event.get("version") == "2.0":
        if stage and stage != "$default" and (path == f"/{stage}" or path.startswith(f"/{stage}/")):
            root = f"/{stage}"
    elif stage and isinstance(context.get("path"), str) and context["path"].endswith(path):
        # REST API v1: `path` has no stage, `requestContext.path` has the full one.
        root = context["path"][: len(context["path"]) - len(path)].rstrip("/")
        path = root + path
    if base_path and path[len(root) :].startswith(base_path):
        root += base_path
    return root, path


app = create_app()
runtime: Runtime = app.state.runtime
_http = Mangum(ApiGatewayRootPath(app, runtime.settings.api_base_path), lifespan="off")
_ = runtime.store  # init phase: create the store client (and check the configuration) once
gc.freeze()
gc.enable()


def handler(event: dict[str, Any], context: Any) -> Any:
    if not isinstance(event, dict):
        raise UnsupportedEvent(f"expected a JSON object event, got {type(event).__name__}")
    if "requestContext" in event:
        return _http(event, context)
    records = event.get("Records")
    if isinstance(records, list) and records:
        source = records[0].get("eventSource") or records[0].get("EventSource")
        if source == "aws:sqs":
            return handle_sqs(records, context)
        if source == "aws:s3":
            return handle_s3(records)
        if source == "aws:dynamodb":
            return handle_stream(records)
    if "task" in event:
        return handle_scheduled(str(event["task"]))
    logger.error("unsupported event", extra={"event_keys": sorted(event)[:20]})
    raise UnsupportedEvent(f"unsupported event with keys {sorted(event)[:20]}")


def lambda_deadline(context: Any) -> float | None:
    """When work must stop: the invocation's remaining time less a margin to checkpoint and reply."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    seconds_left = float(remaining()) / 1000
    return time.monotonic() + max(0.0, seconds_left - DEADLINE_MARGIN_SECONDS)


def handle_sqs(records: list[dict[str, Any]], context: Any = None) -> dict[str, Any]:
    """Partial batch response: only the failed messages are retried (ReportBatchItemFailures)."""
    failures = []
    deadline = lambda_deadline(context)
    for record in records:
        message_id = record.get("messageId", "?")
        try:
            body = json.loads(record.get("body") or "")
            kind = body.get("kind") if isinstance(body, dict) else None
            worker = events.message_workers.get(str(kind))
            if worker is None:
                raise UnsupportedEvent(f"no worker for message kind {kind!r}")
            worker(body, runtime, deadline)
        except Exception:
            logger.exception("SQS message failed", extra={"message_id": message_id})
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}


def handle_s3(records: list[dict[str, Any]]) -> dict[str, Any]:
    handled = []
    for record in records:
        bucket = record["s3"]["bucket"]["name"]
        key = unquote_plus(record["s3"]["object"]["key"])  # S3 event keys are URL-encoded
        worker = events.worker_for_key(key)
        if worker is None:
            logger.warning("no worker for S3 object", extra={"bucket": bucket, "key": key})
            continue
        worker(bucket, key, runtime)
        handled.append(key)
    return {"handled": handled}


def handle_stream(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Partial batch response: Lambda resends the shard from the first record not relayed."""
    from app.changefeed.stream import relay_stream_records  # not on the HTTP cold start

    return relay_stream_records(records, runtime)


def handle_scheduled(task_name: str) -> dict[str, Any]:
    # Registered on first use, not at init (the HTTP cold start never loads them): the drain's
    # task, and the consumers' timer tasks (webhook retries, reminders).
    import app.changefeed.consumers
    import app.changefeed.drain  # noqa: F401

    task = events.scheduled_tasks.get(task_name)
    if task is None:
        raise UnsupportedEvent(f"no scheduled task named {task_name!r}")
    return {"task": task_name, "result": task(runtime)}
