"""Helpers shared by tests and benchmarks."""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, overload

from app.config import Settings

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)

TEST_SECRET = "test-signing-secret-that-is-long-enough-0123456789"
# What the services write under DATA_DIR in tests (local message files): one folder a process,
# removed at its exit, never the working tree.
TEST_DATA_DIR = Path(tempfile.mkdtemp(prefix="portal-test-data-"))
atexit.register(shutil.rmtree, TEST_DATA_DIR, ignore_errors=True)


def make_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "app_env": "test",
        "jwt_secret": TEST_SECRET,
        "password_hash_time_cost": 1,
        "password_hash_memory_kib": 1024,
        "seed_demo_data": False,
        "data_dir": str(TEST_DATA_DIR),
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@overload
def race(count: int, work: Callable[[int], T]) -> list[T]: ...


@overload
def race(count: int, work: Callable[[int], T], *, refusals: tuple[type[E], ...]) -> list[T | E]: ...


def race(count: int, work: Callable[[int], Any], *, refusals: tuple[type[BaseException], ...] = ()) -> list[Any]:
    """Run `work(0)` ... `work(count - 1)` on threads released together and return each one's
    result by index; a racer that raised one of `refusals` has that error as its result.

    Anything else a racer raised is raised here once every racer is done, so it fails the test in
    the test's own thread instead of scrolling by as a thread's traceback."""
    outcomes: list[Any] = [None] * count
    unexpected: list[BaseException] = []
    start = threading.Barrier(count)

    def run(index: int) -> None:
        start.wait()
        try:
            outcomes[index] = work(index)
        except refusals as exc:
            outcomes[index] = exc
        except BaseException as exc:  # raised below, in the test's thread
            unexpected.append(exc)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if unexpected:
        raise unexpected[0]
    return outcomes
