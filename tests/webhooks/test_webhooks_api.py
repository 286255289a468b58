"""The /webhooks API (admin only), with the local target policy so a receiver on 127.0.0.1 can
take real deliveries; tests/webhooks/test_webhooks_api_strict.py covers the strict policy."""

from __future__ import annotations

import base64
import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from standardwebhooks import Webhook

from app.changefeed import relay
from app.config import Settings
from app.webhooks.deps import SENDER
from app.webhooks.transport import HttpSender
from tests.support import make_settings
from tests.webhooks.support import receiver
from tests.webhooks.test_delivery_http import _event

Headers = dict[str, dict[str, str]]


@pytest.fixture
def settings() -> Settings:
    return make_settings(webhook_target_policy="local")


@pytest.fixture
def admin(role_headers: Headers) -> dict[str, str]:
    return role_headers["admin"]


def _create(client: TestClient, admin: dict[str, str], **fields: object) -> dict[str, object]:
    body = {"url": "https://hooks.example.test/in", "event_types": ["user.disabled"], **fields}
    response = client.post("/webhooks", json=body, headers=admin)
    assert response.status_code == 201, response.text
    created: dict[str, object] = response.json()
    return created


def test_create_shows_the_secret_once(client: TestClient, admin: dict[str, str]) -> None:
    response = client.post(
        "/webhooks",
        json={"url": "https://hooks.example.test/in", "event_types": ["booking.confirmed", "booking.cancelled"]},
        headers=admin,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["location"] == f"/webhooks/{created['id']}"
    assert response.headers["etag"] == '"1"'
    assert response.headers["cache-control"] == "no-store"
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) >= 24
    assert created["role"] == "viewer"
    assert created["active"] is True
    assert "secret_salt" not in created

    fetched = client.get(f"/webhooks/{created['id']}", headers=admin).json()
    assert "secret" not in fetched
    assert secret not in json.dumps(fetched)
    listed = client.get("/webhooks", headers=admin).json()
    assert [item["id"] for item in listed["items"]] == [created["id"]]
    assert secret not in json.dumps(listed)
    history = client.get("/audit", params={"entity_type": "webhook", "entity_id": created["id"]}, headers=admin)
    assert history.status_code == 200
    assert secret not in history.text
    assert "secret_salt" not in history.text


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"event_types": ["booking.exploded"]}, "body.event_types.0", "invalid_choice"),
        ({"event_types": []}, "body.event_types", "too_short"),
        ({"event_types": ["user.locked", "user.locked"]}, "body.event_types", "invalid"),
        ({"url": "ftp://hooks.example.test/in"}, "body.url", "pattern_mismatch"),
        ({"url": "https://u:p@hooks.example.test/in"}, "body.url", "pattern_mismatch"),
        ({"url": "https://hooks.example.test/in#top"}, "body.url", "pattern_mismatch"),
        ({"url": "https://hooks.example.test/" + "a" * 3000}, "body.url", "too_long"),
        ({"role": "root"}, "body.role", "invalid_choice"),
        ({"secret": "mine"}, "body.secret", "unknown_field"),
        ({"active": "yes"}, "body.active", "invalid_type"),
    ],
)
def test_bad_input_names_the_field(
    client: TestClient, admin: dict[str, str], body: dict[str, object], field: str, code: str
) -> None:
    sent = {"url": "https://hooks.example.test/in", "event_types": ["user.locked"], **body}
    response = client.post("/webhooks", json=sent, headers=admin)
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert {"field": field, "code": code} in [{"field": e["field"], "code": e["code"]} for e in errors]


def test_update_with_if_match_and_delete(client: TestClient, admin: dict[str, str]) -> None:
    created = _create(client, admin, description="CRM")
    path = f"/webhooks/{created['id']}"
    stale = client.patch(path, json={"active": False}, headers={**admin, "If-Match": '"7"'})
    assert stale.status_code == 412
    changed = client.patch(path, json={"active": False, "role": "admin"}, headers={**admin, "If-Match": '"1"'})
    assert changed.status_code == 200, changed.text
    assert changed.headers["etag"] == '"2"'
    assert changed.json()["active"] is False
    assert changed.json()["role"] == "admin"
    cleared = client.patch(path, json={"description": None}, headers=admin)
    assert cleared.json()["description"] is None
    refused = client.patch(path, json={"url": None}, headers=admin)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["code"] == "null_not_allowed"

    assert client.delete(path, headers=admin).status_code == 204
    assert client.get(path, headers=admin).status_code == 404
    assert client.get(f"{path}/deliveries", headers=admin).status_code == 404


@pytest.mark.parametrize("who", ["operator", "viewer", "anonymous"])
def test_only_admins_manage_webhooks(client: TestClient, role_headers: Headers, who: str) -> None:
    created = _create(client, role_headers["admin"])
    headers = role_headers.get(who, {})
    expected = 401 if who == "anonymous" else 403
    calls = [
        ("POST", "/webhooks", {"url": "https://hooks.example.test/x", "event_types": ["user.locked"]}),
        ("GET", "/webhooks", None),
        ("GET", f"/webhooks/{created['id']}", None),
        ("PATCH", f"/webhooks/{created['id']}", {"active": False}),
        ("DELETE", f"/webhooks/{created['id']}", None),
        ("POST", f"/webhooks/{created['id']}/rotate-secret", None),
        ("GET", f"/webhooks/{created['id']}/deliveries", None),
        ("POST", f"/webhooks/{created['id']}/ping", None),
        ("POST", f"/webhooks/{created['id']}/deliveries/x/retry", None),
    ]
    for method, path, body in calls:
        response = client.request(method, path, json=body, headers=headers)
        assert response.status_code == expected, (method, path, response.text)


def test_ping_retry_and_the_delivery_log_against_a_real_receiver(
    app: FastAPI, client: TestClient, admin: dict[str, str]
) -> None:
    sender = HttpSender(connect_timeout=1.0, timeout=1.0)
    app.state.runtime.provide(SENDER, sender)
    with receiver() as hook:
        created = _create(client, admin, url=hook.url)
        path = f"/webhooks/{created['id']}"
        ping = client.post(f"{path}/ping", headers=admin)
        assert ping.status_code == 200, ping.text
        assert ping.json()["status"] == "succeeded"
        assert ping.json()["event_type"] == "webhook.ping"
        assert ping.json()["last_status_code"] == 204

        # A relayed event, through the relay and its registered consumers.
        event = _event()
        assert relay.relay([event], app.state.runtime, None) == [event.id]  # type: ignore[list-item,attr-defined]
        log = client.get(f"{path}/deliveries", headers=admin)
        assert log.status_code == 200
        items = log.json()["items"]
        assert [item["event_type"] for item in items] == ["user.disabled", "webhook.ping"]  # newest first
        assert "payload" not in items[0]

        retried = client.post(f"{path}/deliveries/{items[0]['id']}/retry", headers=admin)
        assert retried.status_code == 200, retried.text
        assert retried.json()["status"] == "succeeded"
        bodies = [request.body for request in hook.received]
        assert len(bodies) == 3
        assert bodies[1] == bodies[2]  # the retry sends the same body, with the same webhook-id
        assert hook.received[1].headers["webhook-id"] == hook.received[2].headers["webhook-id"] == items[0]["id"]
        for request in hook.received:
            Webhook(str(created["secret"])).verify(request.body, request.headers)

        missing = client.post(f"{path}/deliveries/nope/retry", headers=admin)
        assert missing.status_code == 404
    sender.shutdown()


def test_rotating_the_secret_answers_a_new_one(client: TestClient, admin: dict[str, str]) -> None:
    created = _create(client, admin)
    rotated = client.post(f"/webhooks/{created['id']}/rotate-secret", headers=admin)
    assert rotated.status_code == 200
    assert rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["secret"] != created["secret"]
    assert rotated.headers["cache-control"] == "no-store"
