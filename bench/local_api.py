"""`make run`'s store as a user meets it: uvicorn with no store configured, over HTTP on 127.0.0.1.

Starts `uvicorn app.main:app` in local mode on a fresh DATA_DIR (demo data seeded, as `make run`
does), then creates subscribers one by one with `POST /subscribers` until the store holds about
`--subscribers`, and reads the first page of `GET /subscribers` `--lists` times. Prints the time
until the server answered, the p50/p99 of each request, and the RSS of uvicorn and of the local
engine (DynamoDB Local, when the state file names one). The server (and the engine it started)
are stopped and the DATA_DIR deleted at the end; every loop is bounded.

    python bench/local_api.py [--subscribers 200] [--lists 50]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import free_port  # noqa: E402
from tests.subscribers.support import body as subscriber_body  # noqa: E402

PASSWORD = "bench-admin-password-0123"
START_SECONDS = 180


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=200, help="subscribers in the store at the end")
    parser.add_argument("--lists", type=int, default=50)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="bench-local-api-"))
    port = free_port()
    env = {**os.environ, "APP_ENV": "local", "DATA_DIR": str(data_dir), "DEMO_ADMIN_PASSWORD": PASSWORD}
    env.pop("DYNAMODB_ENDPOINT_URL", None)
    env.pop("MONGODB_URI", None)
    log = (data_dir / "uvicorn.log").open("w")
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            while True:
                if server.poll() is not None or time.perf_counter() - started > START_SECONDS:
                    raise SystemExit(f"server did not start: {(data_dir / 'uvicorn.log').read_text()[-2000:]}")
                try:
                    if client.get("/health/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            print(f"server answering /health/ready after {time.perf_counter() - started:.1f} s")
            token = client.post("/auth/login", json={"username": "admin", "password": PASSWORD}).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            existing = len(client.get("/subscribers", params={"limit": 200}, headers=headers).json()["items"])
            creates: list[float] = []
            for n in range(max(0, args.subscribers - existing)):
                began = time.perf_counter()
                response = client.post("/subscribers", json=subscriber_body(n), headers=headers)
                creates.append(time.perf_counter() - began)
                if response.status_code != 201:
                    raise SystemExit(f"POST /subscribers: {response.status_code} {response.text}")
            lists: list[float] = []
            for _ in range(args.lists):
                began = time.perf_counter()
                response = client.get("/subscribers", headers=headers)
                lists.append(time.perf_counter() - began)
                if response.status_code != 200:
                    raise SystemExit(f"GET /subscribers: {response.status_code} {response.text}")
        p50, p99 = percentile(creates, 0.5), percentile(creates, 0.99)
        print(f"POST /subscribers  n={len(creates)}  p50 {p50:.1f} ms  p99 {p99:.1f} ms")
        print(f"GET /subscribers   n={len(lists)}  p50 {statistics.median(lists) * 1000:.1f} ms (first page of 50)")
        print(f"uvicorn RSS {rss_mib(server.pid):.0f} MiB")
        state = data_dir / "dynamodb-local.json"
        if state.exists():
            engine = json.loads(state.read_text())
            print(f"DynamoDB Local RSS {rss_mib(engine['pid']):.0f} MiB (pid {engine['pid']}, port {engine['port']})")
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        log.close()
        if (data_dir / "dynamodb-local.json").exists():
            subprocess.run([sys.executable, "-m", "app.cli", "local-db", "stop"], env=env, cwd=ROOT, check=False)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
