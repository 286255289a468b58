"""Deliveries over real HTTP to a receiver on 127.0.0.1 (local target policy): the receiver
verifies every signature with the `standardwebhooks` package, as an integrator would; redirects
are not followed, answers are read only up to 1 KB, a slow receiver times out, and the checked
address is the one connected to."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from app.changefeed import catalog
from app.storage.base import Store
from app.storage.records import DeliveryStatus, Role
from app.timeutil import utcnow
from app.webhooks.schemas import WebhookCreate
from app.webhooks.service import WebhookService
from app.webhooks.targets import Target
from app.webhooks.transport import HttpSender
from tests.support import TEST_SECRET, make_settings
from tests.webhooks.support import loopback_certificate, receiver


@pytest.fixture
def sender() -> Iterator[HttpSender]:
    http = HttpSender(connect_timeout=1.0, timeout=1.0)
    yield http
    http.shutdown()


def _service(store: Store, sender: HttpSender) -> WebhookService:
    return WebhookService(store, make_settings(webhook_target_policy="local"), TEST_SECRET.encode(), sender)


def _subscribe(service: WebhookService, url: str) -> tuple[str, str]:
    body = WebhookCreate(url=url, event_types=["user.disabled"], role=Role.VIEWER)
    subscription, secret = service.create("admin", body)
    return subscription.id, secret


def _event() -> object:
    (event,) = catalog.events_for(
        action="user.update",
        entity_type="user",
        entity_id="bob",
        actor="ada",
        at=utcnow(),
        request_id="req-9",
        retention_days=7,
        before={"active": True},
        after={"active": False},
    )
    return event


def test_a_delivery_is_signed_so_that_standardwebhooks_verifies_it(store: Store, sender: HttpSender) -> None:
    with receiver() as hook:
        service = _service(store, sender)
        subscription_id, secret = _subscribe(service, hook.url)
        assert secret.startswith("whsec_")
        event = _event()
        service.on_event(event)  # type: ignore[arg-type]

        (request,) = hook.received
        assert request.path == "/hooks/in"
        assert request.headers["content-type"] == "application/json"
        payload = Webhook(secret).verify(request.body, request.headers)
        assert payload["id"] == event.id  # type: ignore[attr-defined]
        assert payload["type"] == "user.disabled"
        assert payload["data"] == {"username": "bob"}
        # A byte changed, or another subscription's secret: refused.
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(request.body.replace(b"bob", b"eve"), request.headers)
        _, other_secret = _subscribe(service, hook.url)
        with pytest.raises(WebhookVerificationError):
            Webhook(other_secret).verify(request.body, request.headers)

        (delivery,) = store.webhooks.list_deliveries(subscription_id, limit=5).items
        assert delivery.status is DeliveryStatus.SUCCEEDED
        assert delivery.last_status_code == 204


def test_ping_and_a_rotated_secret_verify_with_the_new_secret_only(store: Store, sender: HttpSender) -> None:
    with receiver() as hook:
        service = _service(store, sender)
        subscription_id, old_secret = _subscribe(service, hook.url)
        _, new_secret = service.rotate_secret("admin", subscription_id)
        assert new_secret != old_secret
        assert service.ping("admin", subscription_id).status is DeliveryStatus.SUCCEEDED
        (request,) = hook.received
        assert json.loads(request.body)["type"] == "webhook.ping"
        Webhook(new_secret).verify(request.body, request.headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(old_secret).verify(request.body, request.headers)


def _redirect(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(307)
    handler.send_header("Location", "/elsewhere")
    handler.send_header("Content-Length", "0")
    handler.end_headers()


def test_redirects_are_not_followed(store: Store, sender: HttpSender) -> None:
    with receiver(_redirect) as hook:
        service = _service(store, sender)
        subscription_id, _ = _subscribe(service, hook.url)
        service.on_event(_event())  # type: ignore[arg-type]
        assert [request.path for request in hook.received] == ["/hooks/in"]
        (delivery,) = store.webhooks.list_deliveries(subscription_id, limit=5).items
        assert delivery.status is DeliveryStatus.PENDING
        assert delivery.last_status_code == 307
        assert delivery.last_error == "answered a redirect to /elsewhere: redirects are not followed"


def _chatty(handler: BaseHTTPRequestHandler) -> None:
    body = b"x" * 100_000
    handler.send_response(500)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def test_the_answer_is_read_up_to_1_kb(store: Store, sender: HttpSender) -> None:
    with receiver(_chatty) as hook:
        service = _service(store, sender)
        subscription_id, _ = _subscribe(service, hook.url)
        service.on_event(_event())  # type: ignore[arg-type]
        (delivery,) = store.webhooks.list_deliveries(subscription_id, limit=5).items
        assert delivery.last_status_code == 500
        assert delivery.last_response == "x" * 1024
        assert delivery.last_error == "answered HTTP 500"


def _slow(handler: BaseHTTPRequestHandler) -> None:
    time.sleep(2.5)
    handler.send_response(204)
    handler.end_headers()


def test_a_slow_receiver_times_out_and_is_retried_later(store: Store, sender: HttpSender) -> None:
    with receiver(_slow) as hook:
        service = _service(store, sender)
        subscription_id, _ = _subscribe(service, hook.url)
        started = time.monotonic()
        service.on_event(_event())  # type: ignore[arg-type]
        assert time.monotonic() - started < 2.0
        (delivery,) = store.webhooks.list_deliveries(subscription_id, limit=5).items
        assert delivery.status is DeliveryStatus.PENDING
        assert delivery.last_error == "timed out"
        assert delivery.last_status_code is None


def test_nothing_listening_is_a_failed_attempt_not_an_error(store: Store, sender: HttpSender) -> None:
    with receiver() as hook:
        url = hook.url
    service = _service(store, sender)
    subscription_id, _ = _subscribe(service, url)  # the receiver has stopped: connection refused
    service.on_event(_event())  # type: ignore[arg-type]
    (delivery,) = store.webhooks.list_deliveries(subscription_id, limit=5).items
    assert delivery.status is DeliveryStatus.PENDING
    assert delivery.last_error is not None
    assert delivery.last_error.startswith("ConnectError")


def test_the_sender_connects_to_the_checked_address_with_the_host_kept(sender: HttpSender) -> None:
    """`hooks.invalid` resolves nowhere: the request can only arrive because the sender connected to
    the address it was given, and the receiver still sees the URL's host."""
    with receiver() as hook:
        port = hook.url.split(":")[2].split("/")[0]
        target = Target(
            url=f"http://hooks.invalid:{port}/pinned", host="hooks.invalid", port=int(port), address="127.0.0.1"
        )
        result = sender(target, "{}", {"content-type": "application/json"})
        assert result.succeeded
        (request,) = hook.received
        assert request.path == "/pinned"
        assert request.headers["host"] == f"hooks.invalid:{port}"


def test_https_to_an_allowed_private_receiver_trusts_the_operators_ca_only(store: Store, tmp_path: Path) -> None:
    """Strict policy: a receiver at an allowed private address, on https with a private CA."""
    certificate = loopback_certificate(tmp_path)
    settings = make_settings(webhook_target_policy="strict", webhook_allowed_networks="127.0.0.1/32")
    with receiver(tls=certificate) as target:
        trusting = HttpSender(connect_timeout=1.0, timeout=2.0, ca_bundle=certificate[0])
        service = WebhookService(store, settings, TEST_SECRET.encode(), trusting)
        webhook_id, secret = _subscribe(service, target.url)
        service.on_event(_event())  # type: ignore[arg-type]
        trusting.shutdown()
        (delivery,) = store.webhooks.list_deliveries(webhook_id, limit=5).items
        assert (delivery.status, delivery.last_status_code) == (DeliveryStatus.SUCCEEDED, 204)
        Webhook(secret).verify(target.received[0].body, target.received[0].headers)

        public_only = HttpSender(connect_timeout=1.0, timeout=2.0)  # the same receiver, without its CA
        service = WebhookService(store, settings, TEST_SECRET.encode(), public_only)
        other_id, _ = _subscribe(service, target.url)
        service.on_event(_event())  # type: ignore[arg-type]
        public_only.shutdown()
        (refused,) = store.webhooks.list_deliveries(other_id, limit=5).items
        assert refused.status is DeliveryStatus.PENDING
        assert "CERTIFICATE_VERIFY_FAILED" in (refused.last_error or "")
