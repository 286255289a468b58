"""Subscriber API throughput and latency, in process, through the Lambda handler.

Drives `app.handler.handler` (Mangum) with API Gateway HTTP API v2 events, against DynamoDB on
moto in-process (`mock_aws`, table created by the app as in local mode). Measures, in one run:
`GET /health` (the baseline: no auth, no store), `POST /subscribers`, `GET /subscribers/{uid}`
and `GET /subscribers` (pages of 50). For each: requests/s, p50 and p99, and the p50 of the time
spent outside the store calls (our code: Mangum, FastAPI, auth, validation, (de)serialisation),
because moto is not DynamoDB: it deep-copies every table on each transaction and scans the
whole table for every query, so its share grows with the table and says nothing about AWS.
Also measures the shared validation schema alone (`parse_subscriber`), the bulk importer's path.

    python bench/subscribers_api.py [--creates 150]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.lambda_events import FakeContext, http_v2  # noqa: E402
from tests.subscribers.support import body as subscriber_body  # noqa: E402

PASSWORD = "bench-password-0123456"
# As deployed, but with cheap password hashing (one login) and the table created on start.
os.environ.update(
    {
        "APP_ENV": "dev",
        "JWT_SECRET": "bench-secret-bench-secret-bench-secret-0123",
        "DYNAMODB_TABLE": "bench-subscribers",
        "DYNAMODB_CREATE_TABLE": "true",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "LOG_LEVEL": "WARNING",
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "1024",
    }
)


class StoreClock:
    """Time spent inside DynamoDB calls (moto here), so it can be told apart from our own."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def install(self) -> None:
        from app.storage.dynamodb.table import DynamoTable

        original = DynamoTable.call
        clock = self

        def timed_call(table: DynamoTable, operation: str, **kwargs: Any) -> dict[str, Any]:
            started = time.perf_counter()
            try:
                return original(table, operation, **kwargs)
            finally:
                clock.seconds += time.perf_counter() - started

        DynamoTable.call = timed_call  # type: ignore[method-assign]


class Measurement:
    def __init__(self, name: str) -> None:
        self.name = name
        self.total: list[float] = []
        self.own: list[float] = []

    def row(self) -> str:
        ordered = sorted(self.total)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        rate = len(ordered) / sum(ordered)
        return (
            f"{self.name:<24} {len(ordered):>5} {rate:>9.0f} {statistics.median(ordered) * 1000:>9.2f} "
            f"{p99 * 1000:>9.2f} {statistics.median(self.own) * 1000:>11.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--creates", type=int, default=150, help="subscribers created (moto slows as it grows)")
    parser.add_argument("--gets", type=int, default=500)
    parser.add_argument("--lists", type=int, default=30)
    parser.add_argument("--health", type=int, default=1000)
    args = parser.parse_args()

    from moto import mock_aws

    with mock_aws():
        started = time.perf_counter()
        import app.handler as lambda_handler

        print(f"handler import + table creation: {(time.perf_counter() - started) * 1000:.0f} ms")
        clock = StoreClock()
        clock.install()
        context = FakeContext()

        def invoke(method: str, path: str, **kwargs: Any) -> dict[str, Any]:
            response: dict[str, Any] = lambda_handler.handler(http_v2(method, path, **kwargs), context)
            return response

        token = _sign_in(lambda_handler, invoke)
        auth = {"authorization": f"Bearer {token}"}

        def measure(name: str, count: int, request: Callable[[int], dict[str, Any]], expect: int) -> Measurement:
            result = Measurement(name)
            for index in range(count):
                store_before = clock.seconds
                began = time.perf_counter()
                response = request(index)
                elapsed = time.perf_counter() - began
                if response["statusCode"] != expect:
                    raise SystemExit(f"{name}: got {response['statusCode']}: {response.get('body')}")
                result.total.append(elapsed)
                result.own.append(elapsed - (clock.seconds - store_before))
            return result

        headers = {**auth, "content-type": "application/json"}
        rows = [
            measure("GET /health", args.health, lambda i: invoke("GET", "/health"), 200),
            measure(
                "POST /subscribers",
                args.creates,
                lambda i: invoke("POST", "/subscribers", headers=headers, body=json.dumps(subscriber_body(i))),
                201,
            ),
        ]
        uids = [f"sub-{random.Random(i).randrange(args.creates):04d}" for i in range(args.gets)]
        rows.append(
            measure(
                "GET /subscribers/{uid}",
                args.gets,
                lambda i: invoke("GET", f"/subscribers/{uids[i]}", headers=auth),
                200,
            )
        )
        cursors: list[str | None] = [None]

        def list_page(index: int) -> dict[str, Any]:
            query = {"limit": "50", **({"cursor": cursors[-1]} if cursors[-1] else {})}
            response = invoke("GET", "/subscribers", headers=auth, query=query)
            cursors.append(json.loads(response["body"])["next_cursor"])
            return response

        rows.append(measure("GET /subscribers (50)", args.lists, list_page, 200))

        print(f"\n{'request':<24} {'n':>5} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9} {'own p50 ms':>11}")
        for row in rows:
            print(row.row())
        print("(own = outside store calls; moto's share grows with the table and is not DynamoDB's)")
    _validation_rate()


def _sign_in(lambda_handler: Any, invoke: Callable[..., dict[str, Any]]) -> str:
    from app.auth.deps import auth_service_of
    from app.auth.schemas import UserCreate
    from app.storage.records import Role

    service = auth_service_of(lambda_handler.runtime)
    service.create_user("bench", UserCreate(username="bench-operator", password=PASSWORD, role=Role.OPERATOR))
    response = invoke(
        "POST",
        "/auth/login",
        headers={"content-type": "application/json"},
        body=json.dumps({"username": "bench-operator", "password": PASSWORD}),
    )
    token: str = json.loads(response["body"])["access_token"]
    return token


def _validation_rate() -> None:
    """Rows per second through the shared schema: E.164 input and national input."""
    from app.subscribers.schemas import parse_subscriber

    for label, national in (("E.164 msisdn", False), ("national msisdn", True)):
        rows = []
        for n in range(20_000):
            row = subscriber_body(n, uid=f"u{n}")
            if national:
                row["msisdn"] = "0" + row["msisdn"][3:]
            rows.append(row)
        parse_subscriber(rows[0], phone_region="GB")  # metadata and compiled patterns, once
        began = time.perf_counter()
        for row in rows:
            parse_subscriber(row, phone_region="GB")
        elapsed = time.perf_counter() - began
        print(f"validation ({label}): {len(rows) / elapsed:,.0f} rows/s ({elapsed / len(rows) * 1e6:.1f} us/row)")


if __name__ == "__main__":
    main()
