"""Every link the API hands out (Location headers, a job's upload URL) is an absolute path that
works taken literally, on every backend. Behind an API Gateway stage: tests/test_handler.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.bookings.conftest import add_subscriber
from tests.bookings.test_bookings_api import resource_body
from tests.migration.conftest import with_inline_jobs

Headers = dict[str, dict[str, str]]
SUBSCRIBER = {
    "msisdn": "+447911123456",
    "imsi": "234150999999999",
    "first_name": "Jane",
    "last_name": "Doe",
    "plan": "BASIC",
}


@pytest.fixture
def app(app: FastAPI, tmp_path: Path) -> FastAPI:
    """No presigned URL: the upload URL is the API's own."""
    return with_inline_jobs(app, tmp_path)


def followed(client: TestClient, headers: dict[str, str], link: str) -> dict[str, object]:
    """GET `link` exactly as the API gave it; it must be an absolute path that answers 200."""
    assert link.startswith("/"), f"not an absolute path: {link!r}"
    response = client.get(link, headers=headers)
    assert response.status_code == 200, f"{link}: {response.status_code} {response.text}"
    body: dict[str, object] = response.json()
    return body


def test_location_of_a_created_subscriber_user_resource_and_booking(
    app: FastAPI, client: TestClient, role_headers: Headers
) -> None:
    admin = role_headers["admin"]
    created = client.post("/subscribers", json={**SUBSCRIBER, "uid": "sub-link-1"}, headers=admin)
    assert created.status_code == 201, created.text
    assert followed(client, admin, created.headers["Location"]) == created.json()

    user = client.post("/auth/users", json={"username": "link.user", "password": "a long passphrase 42"}, headers=admin)
    assert user.status_code == 201, user.text
    assert followed(client, admin, user.headers["Location"])["username"] == "link.user"

    resource = client.post("/bookings/resources", json=resource_body(), headers=admin)
    assert resource.status_code == 201, resource.text
    assert followed(client, admin, resource.headers["Location"])["id"] == resource.json()["id"]

    add_subscriber(app, "sub-link-2")
    start = (datetime.now(UTC) + timedelta(days=3)).replace(hour=10, minute=0, second=0, microsecond=0)
    booking = client.post(
        "/bookings",
        json={"resource_id": resource.json()["id"], "subscriber_uid": "sub-link-2", "start": start.isoformat()},
        headers={**admin, "Idempotency-Key": "link-booking-1"},
    )
    assert booking.status_code == 201, booking.text
    assert followed(client, admin, booking.headers["Location"]) == booking.json()


def test_a_jobs_location_and_upload_url_work_as_given(client: TestClient, role_headers: Headers) -> None:
    admin = role_headers["admin"]
    created = client.post("/migration/jobs", json={"type": "import", "format": "csv"}, headers=admin)
    assert created.status_code == 201, created.text
    job_id = created.json()["job"]["id"]
    assert followed(client, admin, created.headers["Location"])["id"] == job_id

    upload = created.json()["upload"]
    assert upload["url"].startswith("/"), upload
    csv = "msisdn,imsi,first_name,last_name,plan\n+447911123457,234150999999998,Ann,Lee,BASIC\n"
    sent = client.request(upload["method"], upload["url"], content=csv, headers={**admin, **upload["headers"]})
    assert sent.status_code == 200, sent.text
    assert sent.json()["id"] == job_id
    assert followed(client, admin, f"/migration/jobs/{job_id}")["status"] == "COMPLETED"

    csv = "msisdn,imsi,first_name,last_name,plan\n+447911123458,234150999999997,Bo,Lee,BASIC\n"
    uploaded = client.post("/migration/upload", files={"file": ("rows.csv", csv, "text/csv")}, headers=admin)
    assert uploaded.status_code == 201, uploaded.text
    assert followed(client, admin, uploaded.headers["Location"])["id"] == uploaded.json()["id"]
