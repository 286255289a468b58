"""Message preferences through the subscribers API: written, shown, validated."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

Headers = dict[str, dict[str, str]]
BODY = {
    "uid": "sub-1",
    "msisdn": "+447911123456",
    "imsi": "234150999999999",
    "first_name": "Jane",
    "last_name": "Doe",
    "plan": "BASIC",
}


def test_preferences_are_created_shown_and_patched(client: TestClient, role_headers: Headers) -> None:
    operator = role_headers["operator"]
    created = client.post("/subscribers", json=BODY, headers=operator)
    assert created.status_code == 201, created.text
    assert (created.json()["notifications_opt_out"], created.json()["notification_channel"]) == (False, None)
    patched = client.patch(
        "/subscribers/sub-1",
        json={"notifications_opt_out": True, "notification_channel": "sms"},
        headers={**operator, "If-Match": created.headers["ETag"]},
    )
    assert patched.status_code == 200, patched.text
    shown = client.get("/subscribers/sub-1", headers=role_headers["viewer"]).json()
    assert (shown["notifications_opt_out"], shown["notification_channel"]) == (True, "sms")
    history = client.get("/subscribers/sub-1/history", headers=operator).json()["items"][0]
    assert history["after"] == {"notifications_opt_out": True, "notification_channel": "sms"}


@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"notification_channel": "fax"}, "body.notification_channel", None),
        ({"notifications_opt_out": "maybe"}, "body.notifications_opt_out", None),
        ({"notifications_opt_out": None}, "body.notifications_opt_out", "null_not_allowed"),
    ],
)
def test_bad_preferences_are_refused_naming_the_field(
    client: TestClient, role_headers: Headers, changes: dict[str, Any], field: str, code: str | None
) -> None:
    operator = role_headers["operator"]
    created = client.post("/subscribers", json=BODY, headers=operator)
    response = client.patch(
        "/subscribers/sub-1", json=changes, headers={**operator, "If-Match": created.headers["ETag"]}
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    errors = response.json()["errors"]
    assert [error["field"] for error in errors] == [field]
    if code:
        assert errors[0]["code"] == code
