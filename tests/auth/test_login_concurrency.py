"""Logins hash passwords off the event loop, at most PASSWORD_HASH_CONCURRENCY at once per process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.auth.deps import auth_service_of
from app.auth.schemas import UserCreate
from app.auth.security import PasswordHasher
from app.main import create_app
from app.storage.base import Store
from app.storage.records import Role
from tests.support import make_settings

PASSWORD = "correct-horse-battery"
HOLD_SECONDS = 5.0


class SlowHashes:
    """Makes every verification take until released (at most HOLD_SECONDS), and counts how many overlap."""

    def __init__(self, hasher: PasswordHasher) -> None:
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()
        original = hasher.context.verify_and_update

        def slow(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.running += 1
                self.most_at_once = max(self.most_at_once, self.running)
            self.entered.release()
            self.release.wait(HOLD_SECONDS)
            with self._lock:
                self.running -= 1
            return original(*args, **kwargs)

        hasher.context.verify_and_update = slow  # type: ignore[method-assign]


def app_with(store: Store, **settings: Any) -> FastAPI:
    app = create_app(make_settings(**settings), store)
    auth_service_of(app.state.runtime).create_user(
        "test", UserCreate(username="olga", password=PASSWORD, role=Role.OPERATOR)
    )
    return app


@pytest.fixture
def logins_in_background() -> Iterator[Callable[[TestClient, int], list[Any]]]:
    pool = ThreadPoolExecutor(8)
    futures: list[Any] = []

    def start(client: TestClient, count: int) -> list[Any]:
        body = {"username": "olga", "password": PASSWORD}
        started = [pool.submit(client.post, "/auth/login", json=body) for _ in range(count)]
        futures.extend(started)
        return started

    yield start
    pool.shutdown(wait=True)


def test_health_answers_while_logins_are_hashing(store: Store, logins_in_background: Any) -> None:
    app = app_with(store, password_hash_concurrency=2)
    slow = SlowHashes(auth_service_of(app.state.runtime).hasher)
    with TestClient(app) as client:
        logins = logins_in_background(client, 2)
        assert slow.entered.acquire(timeout=HOLD_SECONDS)  # a login is inside its hash now
        started = time.perf_counter()
        assert client.get("/health").status_code == 200
        answered_in = time.perf_counter() - started
        slow.release.set()
        assert [login.result(timeout=30).status_code for login in logins] == [200, 200]
    assert answered_in < 1.0, f"/health took {answered_in:.2f} s while logins were hashing"


def test_at_most_n_hashes_at_once_and_excess_logins_get_503(store: Store, logins_in_background: Any) -> None:
    app = app_with(store, password_hash_concurrency=1, password_hash_queue_seconds=0.5)
    slow = SlowHashes(auth_service_of(app.state.runtime).hasher)
    with TestClient(app) as client:
        first = logins_in_background(client, 1)
        assert slow.entered.acquire(timeout=HOLD_SECONDS)
        waiting = logins_in_background(client, 3)
        refused = [login.result(timeout=30) for login in waiting]  # no slot within 0.5 s
        slow.release.set()
        assert first[0].result(timeout=30).status_code == 200
        assert client.post("/auth/login", json={"username": "olga", "password": PASSWORD}).status_code == 200
    assert slow.most_at_once == 1
    for response in refused:
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"] == "1"
        assert "busy" in response.json()["detail"]


def test_a_refused_login_is_no_failed_login(store: Store, logins_in_background: Any) -> None:
    app = app_with(store, password_hash_concurrency=1, password_hash_queue_seconds=0.2)
    slow = SlowHashes(auth_service_of(app.state.runtime).hasher)
    with TestClient(app) as client:
        first = logins_in_background(client, 1)
        assert slow.entered.acquire(timeout=HOLD_SECONDS)
        body = {"username": "olga", "password": "a-wrong-password"}
        assert client.post("/auth/login", json=body).status_code == 503
        slow.release.set()
        first[0].result(timeout=30)
    assert store.users.get("olga").failed_logins == 0  # type: ignore[union-attr]
