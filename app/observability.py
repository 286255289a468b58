"""Structured JSON logs with the request id, and CloudWatch embedded metrics.

Framework-free: services and jobs log and audit through it. The middleware that sets the request
id and writes the per-request log line is `app.request_context`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_STANDARD_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        entry.update({key: value for key, value in vars(record).items() if key not in _STANDARD_RECORD_FIELDS})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    root = logging.getLogger()
    if not any(isinstance(handler.formatter, JsonFormatter) for handler in root.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonFormatter())
        # Lambda's runtime installs its own plain-text handler; one JSON line per record is enough.
        root.handlers = [handler]
    root.setLevel(level)
    # Our access line (with request id and actor) replaces uvicorn's; client libraries stay quiet.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("botocore", "boto3", "urllib3", "httpx", "pymongo"):
        logging.getLogger(name).setLevel(logging.WARNING)


METRICS_NAMESPACE = "SubscriberPortal"


def embedded_metrics(
    dimensions: dict[str, str], metrics: dict[str, tuple[float, str]], *, rollups: list[list[str]] | None = None
) -> dict[str, Any]:
    """CloudWatch embedded metric format fields for a log line: `metrics` maps name -> (value, unit).

    CloudWatch Logs turns such a line into metrics, with no agent and no extra API call.
    """
    return {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": METRICS_NAMESPACE,
                    "Dimensions": rollups or [list(dimensions)],
                    "Metrics": [{"Name": name, "Unit": unit} for name, (_, unit) in metrics.items()],
                }
            ],
        },
        **dimensions,
        **{name: value for name, (value, _) in metrics.items()},
    }


def request_metrics(service: str, route: str, status: int, latency_ms: float) -> dict[str, Any]:
    """Requests, Errors (5xx), ClientErrors (4xx) and Latency per service and per route template,
    carried by the access line already written for every request."""
    return embedded_metrics(
        {"Service": service, "Route": route},
        {
            "Requests": (1, "Count"),
            "Errors": (int(status >= 500), "Count"),
            "ClientErrors": (int(400 <= status < 500), "Count"),
            "Latency": (latency_ms, "Milliseconds"),
        },
        rollups=[["Service"], ["Service", "Route"]],
    )
