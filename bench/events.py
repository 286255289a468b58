"""What events cost a write, and how fast the relay moves them (docs/performance.md, "Events").

Three servers in one run, one after the other, each `uvicorn app.main:app` in local mode on its
own fresh DATA_DIR (DynamoDB Local, as `make run`), over HTTP on 127.0.0.1:
- `without events`: the same code with `events_for` answering no events (the baseline: no event
  item in the transactions, nothing to relay);
- `background relay`: as `make run` (the relay is off the request path);
- `inline relay`: the relay runs after the commit, in the request's task.
Each creates `--writes` subscribers (`POST /subscribers`) and books each of them once
(`POST /bookings`), and prints p50/p99 of both. uvicorn answers before the middleware's inline
relay runs, so the same writes are then timed as Lambda answers them, through Mangum in this
process (the invocation returns when the app is done): without events, and with the inline
relay (Lambda on MongoDB). Last, on a fresh engine, `--relay` subscribers are created with the
relay held back and one `drain` relays them with the product's consumers, without and with a
webhook subscription receiving every `subscriber.created` (a receiver on 127.0.0.1): events
relayed per second. Every loop is bounded; servers, engines and folders are removed at the end.

    python bench/events.py [--writes 150] [--relay 500]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import free_port  # noqa: E402
from tests.subscribers.support import body as subscriber_body  # noqa: E402

PASSWORD = "bench-admin-password-0123"
START_SECONDS = 240
# The server, with or without the change feed's events (the baseline patches the one function
# every change's events come from).
LAUNCH = """
import sys
if sys.argv[1] == "without":
    import app.audit, app.storage.importing
    app.audit.events_for = app.storage.importing.events_for = lambda **change: []
import uvicorn
uvicorn.run("app.main:app", host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""
EVERY_DAY = {day: [{"open": "00:00", "close": "24:00"}] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


def timed(client: httpx.Client, path: str, body: dict[str, Any], headers: dict[str, str]) -> float:
    began = time.perf_counter()
    response = client.post(path, json=body, headers=headers)
    elapsed = time.perf_counter() - began
    if response.status_code != 201:
        raise SystemExit(f"POST {path}: {response.status_code} {response.text[:500]}")
    return elapsed


def serve(kind: str, relay: str, writes: int) -> dict[str, float]:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-events-"))
    port = free_port()
    env = {**os.environ, "APP_ENV": "local", "DATA_DIR": str(data_dir), "DEMO_ADMIN_PASSWORD": PASSWORD}
    env.update(EVENTS_RELAY=relay, NOTIFICATIONS_ENABLED="false")
    for name in ("DYNAMODB_ENDPOINT_URL", "MONGODB_URI", "STORAGE_BACKEND"):
        env.pop(name, None)
    log = (data_dir / "uvicorn.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, kind, str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    started = time.perf_counter()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            while True:
                if server.poll() is not None or time.perf_counter() - started > START_SECONDS:
                    raise SystemExit(f"server did not start: {(data_dir / 'uvicorn.log').read_text()[-2000:]}")
                try:
                    if client.get("/health/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            token = client.post("/auth/login", json={"username": "admin", "password": PASSWORD}).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            resource = {"name": "Bench", "kind": "store", "timezone": "UTC", "slot_minutes": 30}
            resource |= {"capacity": writes + 1, "weekly_schedule": EVERY_DAY}
            resource_id = client.post("/bookings/resources", json=resource, headers=headers).json()["id"]
            start = (datetime.now(UTC) + timedelta(days=3)).replace(hour=10, minute=0, second=0, microsecond=0)
            creates = [timed(client, "/subscribers", subscriber_body(1000 + n), headers) for n in range(writes)]
            bookings = [
                timed(
                    client,
                    "/bookings",
                    {"resource_id": resource_id, "subscriber_uid": f"sub-{1000 + n:04d}", "start": start.isoformat()},
                    headers,
                )
                for n in range(writes)
            ]
        return {
            "subscribers_p50": percentile(creates, 0.5),
            "subscribers_p99": percentile(creates, 0.99),
            "bookings_p50": percentile(bookings, 0.5),
            "bookings_p99": percentile(bookings, 0.99),
        }
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        log.close()
        if (data_dir / "dynamodb-local.json").exists():
            subprocess.run([sys.executable, "-m", "app.cli", "local-db", "stop"], env=env, cwd=ROOT, check=False)
        shutil.rmtree(data_dir, ignore_errors=True)


def lambda_latency(kind: str, writes: int) -> dict[str, float]:
    """The same writes as Lambda answers them: through Mangum, whose invocation returns when the app
    is done, so an inline relay after the response is part of the time (not so under uvicorn)."""
    import json

    from mangum import Mangum

    import app.audit
    import app.storage.importing
    from app.auth.deps import auth_service_of
    from app.auth.schemas import UserCreate
    from app.main import create_app
    from app.storage.records import Role
    from tests.lambda_events import http_v2
    from tests.support import make_settings

    data_dir = Path(tempfile.mkdtemp(prefix="bench-lambda-"))
    settings = make_settings(data_dir=str(data_dir), events_relay="inline", notifications_enabled=False)
    original = app.audit.events_for
    if kind == "without":
        app.audit.events_for = app.storage.importing.events_for = lambda **change: []  # type: ignore[assignment]
    application = create_app(settings)
    runtime = application.state.runtime
    handler = Mangum(application, lifespan="off")

    def invoke(method: str, path: str, body: dict[str, Any] | None = None, token: str = "") -> tuple[int, Any, float]:
        headers = {"content-type": "application/json", **({"authorization": f"Bearer {token}"} if token else {})}
        event = http_v2(method, path, headers=headers, body=json.dumps(body) if body is not None else None)
        began = time.perf_counter()
        answer = handler(event, None)
        elapsed = time.perf_counter() - began
        return int(answer["statusCode"]), json.loads(answer.get("body") or "null"), elapsed

    try:
        auth_service_of(runtime).create_user("bench", UserCreate(username="bench", password=PASSWORD, role=Role.ADMIN))
        _, tokens, _ = invoke("POST", "/auth/login", {"username": "bench", "password": PASSWORD})
        token = tokens["access_token"]
        resource = {"name": "Bench", "kind": "store", "timezone": "UTC", "slot_minutes": 30}
        resource |= {"capacity": writes + 1, "weekly_schedule": EVERY_DAY}
        resource_id = invoke("POST", "/bookings/resources", resource, token)[1]["id"]
        start = (datetime.now(UTC) + timedelta(days=3)).replace(hour=10, minute=0, second=0, microsecond=0)
        creates, bookings = [], []
        for n in range(writes):
            status, answer, elapsed = invoke("POST", "/subscribers", subscriber_body(2000 + n), token)
            if status != 201:
                raise SystemExit(f"POST /subscribers: {status} {answer}")
            creates.append(elapsed)
        for n in range(writes):
            booking = {"resource_id": resource_id, "subscriber_uid": f"sub-{2000 + n:04d}", "start": start.isoformat()}
            status, answer, elapsed = invoke("POST", "/bookings", booking, token)
            if status != 201:
                raise SystemExit(f"POST /bookings: {status} {answer}")
            bookings.append(elapsed)
        if kind == "with" and runtime.store.events.pending(limit=1):
            raise SystemExit("events were left unrelayed")
    finally:
        app.audit.events_for = app.storage.importing.events_for = original  # type: ignore[assignment]
        runtime.close()
        env = {**os.environ, "APP_ENV": "local", "DATA_DIR": str(data_dir)}
        subprocess.run([sys.executable, "-m", "app.cli", "local-db", "stop"], env=env, cwd=ROOT, check=False)
        shutil.rmtree(data_dir, ignore_errors=True)
    return {
        "subscribers_p50": percentile(creates, 0.5),
        "subscribers_p99": percentile(creates, 0.99),
        "bookings_p50": percentile(bookings, 0.5),
        "bookings_p99": percentile(bookings, 0.99),
    }


def relay_rate(count: int) -> tuple[float, float]:
    """(events/s with no webhook, events/s with one webhook receiving each) on DynamoDB Local."""
    from app.changefeed.drain import drain
    from app.runtime import Runtime
    from app.storage.records import Role
    from app.subscribers.schemas import parse_subscriber
    from app.subscribers.service import SubscriberService
    from app.webhooks.deps import webhook_service_of
    from app.webhooks.schemas import WebhookCreate
    from tests.support import make_settings
    from tests.webhooks.support import receiver

    data_dir = Path(tempfile.mkdtemp(prefix="bench-relay-"))
    settings = make_settings(
        app_env="local",
        data_dir=str(data_dir),
        events_relay="stream",  # nothing relays after a commit: the drain below does it all
        notifications_enabled=False,
        webhook_target_policy="local",
    )
    runtime = Runtime(settings)
    rates: list[float] = []
    try:
        service = SubscriberService(runtime.store, settings)
        with receiver() as hook:
            for round_, subscribed in enumerate((False, True)):
                if subscribed:
                    body = WebhookCreate(url=hook.url, event_types=["subscriber.created"], role=Role.VIEWER)
                    webhook_service_of(runtime).create("bench", body)
                for n in range(count):
                    fields = subscriber_body(5000 + round_ * count + n)
                    fields.pop("attributes", None)
                    service.create("bench", parse_subscriber(fields, phone_region="GB"))
                began = time.perf_counter()
                relayed = 0
                while result := drain(runtime):
                    relayed += result["relayed"]
                    if not result["relayed"]:
                        break
                rates.append(relayed / (time.perf_counter() - began))
                if subscribed and len(hook.received) != count:
                    raise SystemExit(f"webhook received {len(hook.received)} of {count}")
    finally:
        runtime.close()
        env = {**os.environ, "APP_ENV": "local", "DATA_DIR": str(data_dir)}
        subprocess.run([sys.executable, "-m", "app.cli", "local-db", "stop"], env=env, cwd=ROOT, check=False)
        shutil.rmtree(data_dir, ignore_errors=True)
    return rates[0], rates[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writes", type=int, default=150, help="subscribers created and booked per server")
    parser.add_argument("--relay", type=int, default=500, help="events relayed by one drain")
    args = parser.parse_args()
    rows = [
        ("uvicorn, without events", serve("without", "inline", args.writes)),
        ("uvicorn, background relay", serve("with", "background", args.writes)),
        ("uvicorn, inline relay", serve("with", "inline", args.writes)),
        ("Mangum, without events", lambda_latency("without", args.writes)),
        ("Mangum, inline relay", lambda_latency("with", args.writes)),
    ]
    print(f"{'':28}{'POST /subscribers p50/p99':>28}{'POST /bookings p50/p99':>26}   (n={args.writes} each)")
    for name, figures in rows:
        subscribers = f"{figures['subscribers_p50']:.1f} / {figures['subscribers_p99']:.1f} ms"
        bookings = f"{figures['bookings_p50']:.1f} / {figures['bookings_p99']:.1f} ms"
        print(f"{name:28}{subscribers:>28}{bookings:>26}")
    bare, webhooked = relay_rate(args.relay)
    print(f"relay (one drain, {args.relay} subscriber.created): {bare:.0f} events/s with no webhook subscription,")
    print(f"  {webhooked:.0f} events/s with one webhook receiving each (HTTP to 127.0.0.1, signed)")


if __name__ == "__main__":
    main()
