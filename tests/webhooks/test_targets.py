"""The SSRF rules under the strict policy, with DNS replaced by a table: refused at subscribe time
(422 naming `body.url`) and again before every attempt, when the name may resolve elsewhere."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.storage.base import Store
from app.storage.records import DeliveryStatus
from app.webhooks import targets
from app.webhooks.schemas import WebhookCreate
from app.webhooks.service import RETRY_DELAYS, WebhookService
from app.webhooks.targets import UnsafeTarget
from tests.support import TEST_SECRET, make_settings
from tests.webhooks.support import Clock, RecordingSender
from tests.webhooks.test_webhook_service import _created_event

REFUSED_ADDRESSES = [
    "127.0.0.1",
    "127.8.9.10",
    "10.0.0.7",
    "172.16.5.4",
    "192.168.1.1",
    "100.64.0.1",  # CGNAT
    "100.127.255.254",
    "169.254.169.254",  # cloud metadata
    "169.254.170.2",  # ECS task metadata
    "169.254.1.1",  # link-local
    "100.100.100.200",  # Alibaba metadata
    "0.0.0.0",  # noqa: S104 - an address refused, not bound
    "0.1.2.3",
    "224.0.0.251",  # multicast
    "239.255.255.250",
    "240.0.0.1",  # reserved
    "255.255.255.255",
    "192.0.2.10",  # documentation
    "198.18.0.1",  # benchmarking
    "192.0.0.8",
    "192.0.0.9",  # global by the registry, refused all the same
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd00:ec2::254",  # AWS metadata over IPv6
    "ff02::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:10.1.2.3",
    "::ffff:169.254.169.254",
    "::127.0.0.1",  # IPv4-compatible
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b:1::1",  # local-use NAT64
    "2001:db8::1",  # documentation
]
ALLOWED_ADDRESSES = ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "64:ff9b::808:808"]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Host -> the addresses it resolves to; an unknown host does not resolve."""
    table: dict[str, list[str]] = {}

    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise UnsafeTarget(f"the host {host!r} does not resolve")
        return table[host]

    monkeypatch.setattr(targets, "resolve", resolve)
    return table


@pytest.mark.parametrize("address", REFUSED_ADDRESSES)
def test_a_name_resolving_to_a_refused_address_is_refused(dns: dict[str, list[str]], address: str) -> None:
    dns["hooks.example.com"] = [address]
    with pytest.raises(UnsafeTarget, match="resolves to"):
        targets.check("https://hooks.example.com/in", strict=True)


@pytest.mark.parametrize("address", REFUSED_ADDRESSES)
def test_a_refused_address_given_literally_is_refused(dns: dict[str, list[str]], address: str) -> None:
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(UnsafeTarget):
        targets.check(f"https://{host}/in", strict=True)


@pytest.mark.parametrize("address", ALLOWED_ADDRESSES)
def test_public_addresses_are_allowed_and_pinned(dns: dict[str, list[str]], address: str) -> None:
    dns["hooks.example.com"] = [address]
    target = targets.check("https://hooks.example.com:8443/in?x=1", strict=True)
    assert target.address == address
    assert target.host == "hooks.example.com"
    assert target.port == 8443


def test_one_refused_address_among_public_ones_refuses_the_name(dns: dict[str, list[str]]) -> None:
    dns["hooks.example.com"] = ["93.184.215.14", "10.0.0.1"]
    with pytest.raises(UnsafeTarget, match=r"10\.0\.0\.1, a private address"):
        targets.check("https://hooks.example.com/in", strict=True)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://hooks.example.com/in", "must use https"),
        ("ftp://hooks.example.com/in", "must use https"),
        ("https://user:pw@hooks.example.com/in", "user name or password"),
        ("https:///in", "names no host"),
        ("https://hooks.example.com/in#frag", "fragment"),
        ("https://hooks.example.com/a b", "spaces or control characters"),
        ("https://hooks.example.com:99999/in", "can't be read"),
        ("https://unknown.example.com/in", "does not resolve"),
        ("https://hooks.example.com/" + "a" * 2100, "longer than"),
    ],
)
def test_urls_of_a_refused_form(dns: dict[str, list[str]], url: str, reason: str) -> None:
    dns["hooks.example.com"] = ["93.184.215.14"]
    with pytest.raises(UnsafeTarget, match=reason):
        targets.check(url, strict=True)


def test_the_local_policy_allows_http_and_loopback_without_resolving(dns: dict[str, list[str]]) -> None:
    target = targets.check("http://127.0.0.1:8080/in", strict=False)
    assert target.address is None
    with pytest.raises(UnsafeTarget, match="http or https"):
        targets.check("file:///etc/passwd", strict=False)


def test_a_name_that_moved_to_a_private_address_is_not_sent_to(store: Store, dns: dict[str, list[str]]) -> None:
    """DNS rebinding: public when subscribed, the metadata address at delivery time."""
    dns["hooks.example.com"] = ["93.184.215.14"]
    sender, clock = RecordingSender(), Clock()
    service = WebhookService(store, make_settings(webhook_target_policy="strict"), TEST_SECRET.encode(), sender, clock)
    body = WebhookCreate(url="https://hooks.example.com/in", event_types=["subscriber.created"])
    subscription, _ = service.create("admin", body)

    dns["hooks.example.com"] = ["169.254.169.254"]
    service.on_event(_created_event())
    assert sender.sent == []
    (delivery,) = store.webhooks.list_deliveries(subscription.id, limit=5).items
    assert delivery.status is DeliveryStatus.PENDING
    assert delivery.last_error == (
        "not sent: the host 'hooks.example.com' resolves to 169.254.169.254, a cloud metadata address"
    )

    dns["hooks.example.com"] = ["93.184.215.14"]
    clock.advance(RETRY_DELAYS[0])
    assert service.retry_due().succeeded == 1
    assert sender.sent[0].target.address == "93.184.215.14"


def test_networks_the_operator_allows_let_private_receivers_through_and_nothing_else(
    dns: dict[str, list[str]],
) -> None:
    allowed = [ipaddress.ip_network("10.20.0.0/16"), ipaddress.ip_network("169.254.0.0/16")]
    dns["crm.internal"] = ["10.20.3.4"]
    assert targets.check("https://crm.internal/in", strict=True, allowed=allowed).address == "10.20.3.4"
    dns["crm.internal"] = ["10.21.0.1"]  # outside the listed network
    with pytest.raises(UnsafeTarget, match="a private address"):
        targets.check("https://crm.internal/in", strict=True, allowed=allowed)
    with pytest.raises(UnsafeTarget, match="metadata"):  # listed or not
        targets.check("https://169.254.169.254/latest", strict=True, allowed=allowed)
    with pytest.raises(UnsafeTarget, match="https"):  # still https only
        targets.check("http://10.20.3.4/in", strict=True, allowed=allowed)


def test_the_allowed_networks_and_ca_bundle_settings_are_checked(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = make_settings(webhook_allowed_networks="10.20.0.0/16, fd12::/64", webhook_ca_bundle=str(bundle))
    assert [str(network) for network in settings.webhook_allowed_networks] == ["10.20.0.0/16", "fd12::/64"]
    assert settings.webhook_ca_bundle == bundle
    assert make_settings(webhook_ca_bundle="").webhook_ca_bundle is None
    with pytest.raises(ValidationError, match="no such file"):
        make_settings(webhook_ca_bundle=str(tmp_path / "missing.pem"))
    with pytest.raises(ValidationError):
        make_settings(webhook_allowed_networks="10.20.0.1/16")  # host bits set: a typo, not a network
