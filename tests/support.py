"""Helpers shared by tests and benchmarks."""

from __future__ import annotations

import threading
from collections.abc import Callable

from app.config import Settings

TEST_SECRET = "test-signing-secret-that-is-long-enough-0123456789"


def make_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "app_env": "test",
        "jwt_secret": TEST_SECRET,
        "password_hash_time_cost": 1,
        "password_hash_memory_kib": 1024,
        "seed_demo_data": False,
        "data_dir": "/nonexistent-test-data-dir",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def errors_in_threads(count: int, work: Callable[[], object]) -> list[BaseException]:
    """Run `work` in `count` threads at once (two processes starting together, say) and return what
    they raised, so a test can assert on it in its own thread."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # handed to the caller's assertion
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors
