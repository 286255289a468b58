"""Subscribing under the strict target policy (every environment but local; here APP_ENV=test):
https and public addresses only, refused with a 422 naming `body.url`. DNS is a table."""

from __future__ import annotations

import ipaddress

import pytest
from fastapi.testclient import TestClient

from app.webhooks import targets
from app.webhooks.targets import UnsafeTarget
from tests.webhooks.test_targets import REFUSED_ADDRESSES

Headers = dict[str, dict[str, str]]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    table: dict[str, list[str]] = {}

    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise UnsafeTarget(f"the host {host!r} does not resolve")
        return table[host]

    monkeypatch.setattr(targets, "resolve", resolve)
    return table


@pytest.mark.parametrize("address", REFUSED_ADDRESSES[::4])
def test_a_private_target_is_refused_naming_body_url(
    client: TestClient, role_headers: Headers, dns: dict[str, list[str]], address: str
) -> None:
    dns["hooks.example.com"] = [address]
    body = {"url": "https://hooks.example.com/in", "event_types": ["user.locked"]}
    response = client.post("/webhooks", json=body, headers=role_headers["admin"])
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert error["field"] == "body.url"
    assert error["code"] == "unsafe_url"
    assert f"resolves to {ipaddress.ip_address(address)}," in error["message"]


def test_http_and_loopback_are_refused_a_public_https_target_is_taken(
    client: TestClient, role_headers: Headers, dns: dict[str, list[str]]
) -> None:
    admin = role_headers["admin"]
    for url in (
        "http://hooks.example.com/in",
        "https://127.0.0.1/in",
        "https://[::1]/in",
        "https://nowhere.example/in",
    ):
        response = client.post("/webhooks", json={"url": url, "event_types": ["user.locked"]}, headers=admin)
        assert response.status_code == 422, url
        assert response.json()["errors"][0]["field"] == "body.url"
    dns["hooks.example.com"] = ["93.184.215.14"]
    created = client.post(
        "/webhooks", json={"url": "https://hooks.example.com/in", "event_types": ["user.locked"]}, headers=admin
    )
    assert created.status_code == 201, created.text
    dns["hooks.example.com"] = ["10.1.1.1"]
    moved = client.patch(
        f"/webhooks/{created.json()['id']}", json={"url": "https://hooks.example.com/v2"}, headers=admin
    )
    assert moved.status_code == 422
    assert moved.json()["errors"][0]["code"] == "unsafe_url"
