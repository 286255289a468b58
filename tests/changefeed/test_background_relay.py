"""The background relay of a long-lived server (`EVENTS_RELAY=background`, `make run`): a nudge
after a commit relays at once, the timer tasks run on their own, and shutdown stops the thread."""

from __future__ import annotations

import threading
import time

import pytest

from app import events
from app.changefeed import relay
from app.changefeed.drain import BackgroundRelay, after_commit, background_relay
from app.runtime import Runtime
from app.storage.base import Store
from app.storage.records import DomainEvent
from app.subscribers.schemas import parse_subscriber
from app.subscribers.service import SubscriberService
from tests.subscribers.support import body
from tests.support import make_settings


def wait_for(condition: threading.Event, seconds: float = 10) -> bool:
    return condition.wait(seconds)


def test_a_nudge_relays_at_once_and_shutdown_stops_the_thread(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = Runtime(make_settings(events_relay="background"), store)
    seen: list[DomainEvent] = []
    arrived = threading.Event()

    def record(event: DomainEvent, runtime: Runtime) -> None:
        seen.append(event)
        arrived.set()

    monkeypatch.setitem(relay.event_consumers, "test-recorder", record)
    relayer = background_relay(runtime)
    assert isinstance(relayer, BackgroundRelay)
    relayer.drain_seconds = 3600.0  # only a nudge can wake it within the test
    time.sleep(0.2)  # its first turn (nothing pending) is over
    SubscriberService(store, runtime.settings).create("tester", parse_subscriber(body(1), phone_region="GB"))
    after_commit(runtime)  # what the request or the job batch calls
    assert wait_for(arrived)
    assert [event.type for event in seen] == ["subscriber.created"]
    assert store.events.pending(limit=10) == []

    runtime.close()  # Runtime.close shuts the relay down
    assert not relayer._thread.is_alive()


def test_the_timer_tasks_run_without_a_commit(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    ran = threading.Event()
    monkeypatch.setitem(events.scheduled_tasks, "webhooks-retry", lambda runtime: ran.set())
    relayer = BackgroundRelay(Runtime(make_settings(events_relay="background"), store), timer_seconds=0.05)
    try:
        assert wait_for(ran)
    finally:
        relayer.shutdown()
