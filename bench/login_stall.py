"""Does a burst of logins stall other requests? `/health` latency while 10 logins hash at once.

Starts a real `uvicorn app.main:app` on 127.0.0.1 (local mode: DynamoDB Local, demo users) with
the default argon2 cost, measures `GET /health` alone, then again while rounds of concurrent
logins run (every login verifies one argon2 hash at the default cost). Reports p50/p95/max of
/health and of the logins, and the logins' statuses (200, or 503 when the process refused to
queue another hash).

    python bench/login_stall.py [--concurrency 10] [--rounds 5] [--app-dir DIR]

`--app-dir` runs another checkout's app (e.g. the code before a change) with this interpreter.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.storage.local_engine import stop_engine  # noqa: E402
from tests.servers import uvicorn_server  # noqa: E402

PASSWORD = "bench-password-0123456"
HEALTH_INTERVAL = 0.02


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50_ms": round(1000 * statistics.median(ordered), 1),
        "p95_ms": round(1000 * ordered[math.ceil(0.95 * len(ordered)) - 1], 1),  # nearest rank
        "max_ms": round(1000 * ordered[-1], 1),
    }


def poll_health(url: str, stop: threading.Event, samples: list[float]) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        while not stop.is_set():
            started = time.perf_counter()
            client.get("/health").raise_for_status()
            samples.append(time.perf_counter() - started)
            time.sleep(HEALTH_INTERVAL)


def one_login(url: str) -> tuple[int, float]:
    started = time.perf_counter()
    response = httpx.post(f"{url}/auth/login", data={"username": "admin", "password": PASSWORD}, timeout=60)
    return response.status_code, time.perf_counter() - started


def measure(url: str, concurrency: int, rounds: int) -> dict[str, object]:
    one_login(url)  # builds the hasher and its dummy hash
    idle: list[float] = []
    stop = threading.Event()
    poller = threading.Thread(target=poll_health, args=(url, stop, idle))
    poller.start()
    time.sleep(2)
    stop.set()
    poller.join()

    busy: list[float] = []
    stop = threading.Event()
    poller = threading.Thread(target=poll_health, args=(url, stop, busy))
    poller.start()
    logins: list[tuple[int, float]] = []
    with ThreadPoolExecutor(concurrency) as pool:
        for _ in range(rounds):
            logins += pool.map(lambda _: one_login(url), range(concurrency))
    stop.set()
    poller.join()
    return {
        "health_idle": percentiles(idle),
        "health_during_logins": percentiles(busy),
        "logins": percentiles([seconds for _, seconds in logins]),
        "login_statuses": dict(Counter(status for status, _ in logins)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--app-dir", type=Path, default=ROOT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        env = {
            "APP_ENV": "local",
            "DATA_DIR": data_dir,
            "DEMO_ADMIN_PASSWORD": PASSWORD,
            "LOGIN_RATE_PER_MINUTE": "10000",
            "LOGIN_MAX_FAILURES": "100",
            "LOG_LEVEL": "WARNING",
        }

        def command(port: int) -> list[str]:
            return [
                sys.executable, "-m", "uvicorn", "app.main:app", "--app-dir", str(args.app_dir),
                "--host", "127.0.0.1", "--port", str(port),
            ]  # fmt: skip

        try:
            with uvicorn_server(env, Path(data_dir), command=command, startup_seconds=90) as url:
                result = measure(url, args.concurrency, args.rounds)
        finally:
            stop_engine(Path(data_dir))  # the local engine outlives the server it started for
    print(json.dumps({"concurrency": args.concurrency, "rounds": args.rounds, **result}, indent=2))


if __name__ == "__main__":
    main()
