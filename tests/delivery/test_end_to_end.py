"""The whole path through serverless-offline, as in AWS: HTTP API -> Lambda -> DynamoDB (DynamoDB
Local), S3 and SQS (moto).

An operator bootstraps an admin with the CLI, signs in, creates and reads a subscriber, books a
slot, imports a CSV through a presigned S3 upload (the S3 notification and the SQS message are
delivered to the function as AWS would), waits for the job, and exports the subscribers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.delivery.conftest import ROOT, STAGE, OfflineApi
from tests.lambda_events import s3_put

pytestmark = pytest.mark.slow
ADMIN_PASSWORD = "e2e-admin-password-1"


def call(
    api: OfflineApi,
    method: str,
    path: str,
    *,
    token: str | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    data = None
    all_headers = dict(headers or {})
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        all_headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        all_headers["Content-Type"] = "application/json"
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"{api.base_url}{path}", data=data, headers=all_headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            raw = response.read()
            return response.status, dict(response.headers), json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, dict(error.headers), json.loads(raw) if raw else None


def create_admin(api: OfflineApi, username: str = "e2e-admin") -> None:
    env = {
        "PATH": str(ROOT / ".venv" / "bin") + ":/usr/bin:/bin",
        "APP_ENV": STAGE,
        "JWT_SECRET": api.jwt_secret,
        "DYNAMODB_TABLE": api.table_name,
        "AWS_ENDPOINT_URL": api.aws_endpoint_url,
        "AWS_ENDPOINT_URL_DYNAMODB": api.dynamodb_endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": api.region,
    }
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "users", "create-admin", username, "--password-stdin"],
        input=ADMIN_PASSWORD + "\n",
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def deliver_queued_jobs(api: OfflineApi) -> int:
    """Hand the queue's messages to the function as the SQS event source would; returns how many."""
    sqs = api.client("sqs")
    delivered = 0
    while True:
        messages = sqs.receive_message(QueueUrl=api.jobs_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        batch = messages.get("Messages", [])
        if not batch:
            return delivered
        event = {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": {},
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                    "awsRegion": api.region,
                }
                for m in batch
            ]
        }
        result = api.invoke(event, timeout=120)
        assert result == {"batchItemFailures": []}, (result, api.log_tail())
        for message in batch:
            sqs.delete_message(QueueUrl=api.jobs_queue_url, ReceiptHandle=message["ReceiptHandle"])
        delivered += len(batch)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def redirect_target(api: OfflineApi, path: str, token: str) -> str:
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(f"{api.base_url}{path}", headers={"Authorization": f"Bearer {token}"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        opener.open(request, timeout=30)
    assert caught.value.code == 307
    return str(caught.value.headers["location"])


def wait_for_job(api: OfflineApi, token: str, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        deliver_queued_jobs(api)
        status, _, job = call(api, "GET", f"/migration/jobs/{job_id}", token=token)
        assert status == 200
        if job["status"] in ("COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELLED"):
            return job  # type: ignore[no-any-return]
        time.sleep(0.5)
    pytest.fail(f"job {job_id} did not finish:\n{api.log_tail()}")


def test_login_subscriber_booking_import_export(offline_api: OfflineApi) -> None:
    api = offline_api
    create_admin(api)
    status, headers, tokens = call(
        api, "POST", "/auth/login", form={"username": "e2e-admin", "password": ADMIN_PASSWORD}
    )
    assert status == 200, api.log_tail()
    assert headers.get("cache-control") == "no-store"
    token = tokens["access_token"]

    subscriber = {
        "uid": "e2e-0001",
        "msisdn": "07911 123456",
        "imsi": "234150000009001",
        "first_name": "Eve",
        "last_name": "Ends",
        "status": "ACTIVE",
        "plan": "GOLD",
    }
    status, headers, created = call(api, "POST", "/subscribers", token=token, body=subscriber)
    assert status == 201, created
    assert created["msisdn"] == "+447911123456"
    status, headers, read = call(api, "GET", "/subscribers/e2e-0001", token=token)
    assert (status, read["uid"]) == (200, "e2e-0001")
    assert headers.get("etag") == '"1"'

    every_day = {
        day: [{"open": "00:00", "close": "24:00"}] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    }
    resource_body = {
        "name": "E2E desk",
        "kind": "agent",
        "timezone": "UTC",
        "slot_minutes": 60,
        "capacity": 1,
        "weekly_schedule": every_day,
    }
    status, _, resource = call(api, "POST", "/bookings/resources", token=token, body=resource_body)
    assert status == 201, resource
    start = (datetime.now(UTC) + timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0)
    booking_body = {"resource_id": resource["id"], "subscriber_uid": "e2e-0001", "start": start.isoformat()}
    status, _, booking = call(
        api, "POST", "/bookings", token=token, body=booking_body, headers={"Idempotency-Key": "e2e-1"}
    )
    assert status == 201, booking
    status, _, again = call(
        api, "POST", "/bookings", token=token, body=booking_body, headers={"Idempotency-Key": "e2e-1"}
    )
    assert (status, again["id"]) == (201, booking["id"])

    job_request = {
        "type": "import",
        "target": "subscribers",
        "format": "csv",
        "mapping": {"transforms": {"status": ["trim", "upper"]}},
    }
    status, _, created_job = call(api, "POST", "/migration/jobs", token=token, body=job_request)
    assert status == 201, created_job
    upload = created_job["upload"]
    assert upload["url"].startswith(api.aws_endpoint_url)  # a presigned S3 URL, not the API
    csv_body = (
        b"uid,msisdn,imsi,first_name,last_name,status,plan\r\n"
        b"e2e-0002,+447911123457,234150000009002,Ann,One,active,GOLD\r\n"
        b"e2e-0003,+447911123458,234150000009003,Bob,Two,Suspended,SILVER\r\n"
        b"e2e-0004,not-a-number,234150000009004,Cy,Three,ACTIVE,GOLD\r\n"
    )
    put = urllib.request.Request(upload["url"], data=csv_body, headers=upload["headers"], method="PUT")
    with urllib.request.urlopen(put, timeout=30) as response:
        assert response.status == 200
    key = f"uploads/{created_job['job']['id']}/input.csv"
    assert api.invoke(s3_put(api.uploads_bucket, key)) == {"handled": [key]}  # S3's notification
    job = wait_for_job(api, token, created_job["job"]["id"])
    assert job["status"] == "COMPLETED_WITH_ERRORS", (job["error_summary"], job["counts"], api.log_tail())
    assert (job["counts"]["created"], job["counts"]["failed"]) == (2, 1)
    status, _, errors = call(api, "GET", f"/migration/jobs/{job['id']}/errors", token=token)
    assert [(e["row"], e["field"]) for e in errors["items"]] == [(3, "msisdn")]

    status, _, export = call(api, "POST", "/migration/jobs", token=token, body={"type": "export", "format": "csv"})
    assert status == 201, export
    exported = wait_for_job(api, token, export["job"]["id"])
    assert exported["status"] == "COMPLETED", (exported, api.log_tail())
    location = redirect_target(api, f"/migration/jobs/{exported['id']}/output", token)
    assert location.startswith(api.aws_endpoint_url)  # a presigned S3 URL: the file bypasses the Lambda
    with urllib.request.urlopen(location, timeout=30) as response:
        lines = response.read().decode().strip().splitlines()
    assert len(lines) == 1 + 3  # header and the three subscribers
    assert any("e2e-0003" in line and "SUSPENDED" in line for line in lines)
