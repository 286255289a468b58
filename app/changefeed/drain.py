"""The outbox drain: relays committed events the store still holds as pending.

Where the events come from is the same everywhere (the store's outbox: DynamoDB's sparse index,
MongoDB's `events` collection); when the drain runs depends on the process (`EVENTS_RELAY`):
- `inline`: right after a commit, in the process that made it (Lambda on MongoDB, tests);
- `background`: a thread of a long-lived process (uvicorn, `make run`) drains when nudged after a
  commit and every few seconds, and runs the timer tasks (webhook retries, reminders) locally;
- `stream`: DynamoDB Streams relays (AWS); the drain only takes events older than
  `STREAM_GRACE`, which the stream should long have relayed (its dead-letter queue's batches).
The scheduled task `relay-events` drains in every mode, so nothing is left behind by a crash.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

from app import events
from app.changefeed.bus import event_publisher
from app.changefeed.relay import relay
from app.runtime import Runtime
from app.timeutil import utcnow

logger = logging.getLogger("app.changefeed.drain")

RELAY_TASK = "relay-events"
STREAM_GRACE = timedelta(minutes=5)
BATCH = 100
MAX_BATCHES = 20
# The tasks that send at a time rather than on a change: run by the background relay locally,
# by their own schedules in AWS.
TIMER_TASKS = ("webhooks-retry", "notifications-reminders")
BACKGROUND_DRAIN_SECONDS = 5.0
BACKGROUND_TIMER_SECONDS = 15.0


def drain(runtime: Runtime, *, older_than: timedelta | None = None) -> dict[str, int]:
    """Relay pending events, oldest first, until none is left (or `MAX_BATCHES` were read)."""
    _register_consumers()
    store, publisher = runtime.store, event_publisher(runtime)
    relayed_count = held = 0
    with runtime.memo("changefeed.drain_lock", threading.Lock):
        for _ in range(MAX_BATCHES):
            before = utcnow() - older_than if older_than is not None else None
            pending = store.events.pending(limit=BATCH, before=before)
            if not pending:
                break
            relayed_ids = set(relay(pending, runtime, publisher))
            relayed = [event for event in pending if event.id in relayed_ids]
            store.events.mark_relayed(relayed)
            relayed_count += len(relayed)
            held = len(pending) - len(relayed)
            # A batch that relayed nothing would be read again unchanged: the next run retries it.
            if len(pending) < BATCH or not relayed:
                break
    if held:
        logger.warning("events held back for a later relay", extra={"held": held, "relayed": relayed_count})
    return {"relayed": relayed_count, "held": held}


def _register_consumers() -> None:
    # Imported when first needed, not with this module: the HTTP cold start never loads them.
    import app.changefeed.consumers  # noqa: F401


@events.scheduled_task(RELAY_TASK)
def relay_task(runtime: Runtime) -> dict[str, int]:
    grace = STREAM_GRACE if runtime.settings.events_relay_mode == "stream" else None
    return drain(runtime, older_than=grace)


def after_commit(runtime: Runtime) -> None:
    """Called after a change committed (a request that wrote, a job batch): its events go now.
    Never raises: the change stands, and the scheduled drain relays what this could not."""
    mode = runtime.settings.events_relay_mode
    if mode == "stream":
        return
    if mode == "background":
        background_relay(runtime).nudge()
        return
    try:
        drain(runtime)
    except Exception:
        logger.exception("relay after commit failed; the scheduled drain will relay the events")


def background_relay(runtime: Runtime) -> BackgroundRelay:
    return runtime.memo("changefeed.background_relay", lambda: BackgroundRelay(runtime))


class BackgroundRelay:
    """One daemon thread: drains when nudged (or every few seconds), runs the timer tasks every
    `timer_seconds`; stops at `shutdown` (Runtime.close)."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        drain_seconds: float = BACKGROUND_DRAIN_SECONDS,
        timer_seconds: float = BACKGROUND_TIMER_SECONDS,
    ) -> None:
        self.runtime = runtime
        self.drain_seconds = drain_seconds
        self.timer_seconds = timer_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="event-relay", daemon=True)
        self._thread.start()

    def nudge(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        _register_consumers()  # and their timer tasks
        timers_due = 0.0
        while not self._stop.is_set():
            self._wake.clear()
            self._run("drain", lambda: drain(self.runtime))
            if time.monotonic() >= timers_due:
                for name in TIMER_TASKS:
                    if (task := events.scheduled_tasks.get(name)) is not None:
                        self._run(name, partial(task, self.runtime))
                timers_due = time.monotonic() + self.timer_seconds
            self._wake.wait(self.drain_seconds)

    def _run(self, name: str, work: Callable[[], Any]) -> None:
        try:
            work()
        except Exception:
            logger.exception("background relay work failed; retried at its next turn", extra={"work": name})

    def shutdown(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
