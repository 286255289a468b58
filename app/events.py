"""Registry of the non-HTTP work the Lambda function does.

Other packages register their workers here (the migration worker registers an SQS message kind,
an S3 key prefix and a scheduled task); `app.handler` routes each event to them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.runtime import Runtime

# (message body, runtime, deadline): the deadline is a time.monotonic() value by which the worker
# must have stopped (Lambda's time limit less a margin), or None when there is no limit.
MessageWorker = Callable[[dict[str, Any], Runtime, float | None], None]
ObjectWorker = Callable[[str, str, Runtime], None]
ScheduledTask = Callable[[Runtime], dict[str, Any] | None]

message_workers: dict[str, MessageWorker] = {}
object_workers: dict[str, ObjectWorker] = {}
scheduled_tasks: dict[str, ScheduledTask] = {}


def message_worker(kind: str) -> Callable[[MessageWorker], MessageWorker]:
    """Handle SQS messages whose JSON body has `"kind": kind`."""

    def register(worker: MessageWorker) -> MessageWorker:
        message_workers[kind] = worker
        return worker

    return register


def object_worker(prefix: str) -> Callable[[ObjectWorker], ObjectWorker]:
    """Handle S3 object-created events for keys starting with `prefix`."""

    def register(worker: ObjectWorker) -> ObjectWorker:
        object_workers[prefix] = worker
        return worker

    return register


def scheduled_task(name: str) -> Callable[[ScheduledTask], ScheduledTask]:
    """Handle scheduled events whose input is `{"task": name}`."""

    def register(task: ScheduledTask) -> ScheduledTask:
        scheduled_tasks[name] = task
        return task

    return register


def worker_for_key(key: str) -> ObjectWorker | None:
    matches = [prefix for prefix in object_workers if key.startswith(prefix)]
    return object_workers[max(matches, key=len)] if matches else None
