"""A subscriber's message preferences survive an export and its re-import, and an update from a
legacy file that has no such columns leaves them as they are (it must not undo an opt-out)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.storage.base import Store
from tests.migration.test_subscriber_jobs import csv_file, row, run_job

Headers = dict[str, dict[str, str]]


def preferences(store: Store, uid: str) -> tuple[bool, str | None]:
    subscriber = store.subscribers.get(uid)
    assert subscriber is not None
    channel = subscriber.notification_channel
    return subscriber.notifications_opt_out, channel.value if channel else None


def patch(client: TestClient, headers: dict[str, str], uid: str, **changes: Any) -> None:
    current = client.get(f"/subscribers/{uid}", headers=headers)
    response = client.patch(
        f"/subscribers/{uid}", json=changes, headers={**headers, "If-Match": current.headers["ETag"]}
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("file_format", ["csv", "ndjson"])
def test_an_export_reimported_keeps_the_preferences(
    client: TestClient, role_headers: Headers, store: Store, file_format: str
) -> None:
    admin = role_headers["admin"]
    run_job(client, admin, csv_file(row(1), row(2)))
    patch(client, admin, "s0001", notifications_opt_out=True, notification_channel="sms")
    created = client.post("/migration/jobs", json={"type": "export", "format": file_format}, headers=admin)
    assert created.status_code == 201, created.text
    output = client.get(f"/migration/jobs/{created.json()['job']['id']}/output", headers=admin)
    assert output.status_code == 200
    exported = output.content
    patch(client, admin, "s0001", notifications_opt_out=False, notification_channel=None)
    job = run_job(client, admin, exported, format=file_format, mode="upsert", mapping={"unmapped": "ignore"})
    assert job["status"] == "COMPLETED", job
    assert preferences(store, "s0001") == (True, "sms")
    assert preferences(store, "s0002") == (False, None)


def test_an_update_from_a_file_without_the_columns_keeps_an_opt_out(
    client: TestClient, role_headers: Headers, store: Store
) -> None:
    admin = role_headers["admin"]
    run_job(client, admin, csv_file(row(1)))
    patch(client, admin, "s0001", notifications_opt_out=True, notification_channel="email")
    job = run_job(client, admin, csv_file(row(1, plan="SILVER")), mode="update")
    assert job["status"] == "COMPLETED", job
    subscriber = store.subscribers.get("s0001")
    assert subscriber is not None
    assert subscriber.plan == "SILVER"
    assert preferences(store, "s0001") == (True, "email")
    # A file that does hold the column decides.
    content = b"uid,msisdn,imsi,first_name,last_name,status,plan,notifications_opt_out\r\n"
    content += f"{row(1)},false\r\n".encode()
    assert run_job(client, admin, content, mode="update")["status"] == "COMPLETED"
    assert preferences(store, "s0001") == (False, "email")
