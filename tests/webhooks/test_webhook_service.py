"""Webhook rules on both stores, on an injected clock and a recording sender: one delivery per
(event, subscription) however often the event is relayed, the retry schedule up to `failed`,
disabling after repeated failure (audited), manual retry, ping, and payloads masked per role."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from app.changefeed import catalog
from app.errors import ConflictError
from app.storage.base import Store
from app.storage.records import DeliveryStatus, DomainEvent, Role, SubscriberRecord, WebhookSubscription
from app.timeutil import time_ordered_id
from app.webhooks import signing
from app.webhooks.schemas import WebhookCreate
from app.webhooks.service import MAX_ATTEMPTS, RETRY_DELAYS, WebhookService, delivery_id
from app.webhooks.transport import AttemptResult
from tests.storage.records_samples import SAMPLES
from tests.support import TEST_SECRET, make_settings
from tests.webhooks.support import Clock, RecordingSender

FAIL = AttemptResult(status_code=503, error="answered HTTP 503")
OK = AttemptResult(status_code=200)


def _service(store: Store, sender: RecordingSender, clock: Clock, **settings: object) -> WebhookService:
    values: dict[str, object] = {"webhook_target_policy": "local", **settings}
    return WebhookService(store, make_settings(**values), TEST_SECRET.encode(), sender, clock=clock)


def _subscribe(service: WebhookService, role: Role = Role.VIEWER, **fields: object) -> WebhookSubscription:
    body = WebhookCreate.model_validate(
        {"url": "https://hooks.example.test/in", "event_types": ["subscriber.created"], "role": role, **fields}
    )
    subscription, _ = service.create("admin", body)
    return subscription


def _created_event() -> DomainEvent:
    record = SAMPLES["subscribers"]
    assert isinstance(record, SubscriberRecord)
    (event,) = catalog.events_for(
        action="subscriber.create",
        entity_type="subscriber",
        entity_id=record.uid,
        actor="ada",
        at=record.created_at,
        request_id="req-1",
        retention_days=7,
        before=None,
        after=record.model_dump(mode="json", exclude={"import_job_id", "import_row"}),
    )
    return event


def test_an_event_relayed_twice_makes_one_delivery_and_one_attempt(store: Store) -> None:
    sender, clock = RecordingSender(), Clock()
    service = _service(store, sender, clock)
    subscription = _subscribe(service)
    _subscribe(service, event_types=["booking.confirmed"])  # another type: not sent
    _subscribe(service, active=False)  # inactive: not sent
    event = _created_event()

    assert service.on_event(event) == 1
    assert service.on_event(event) == 0
    assert len(sender.sent) == 1
    delivery = store.webhooks.get_delivery(subscription.id, delivery_id(event.id, subscription.id))
    assert delivery is not None
    assert delivery.status is DeliveryStatus.SUCCEEDED
    assert delivery.attempts == 1
    assert delivery.last_status_code == 204
    headers = sender.sent[0].headers
    assert headers["webhook-id"] == delivery.id
    key = signing.secret_key(TEST_SECRET.encode(), subscription.id, subscription.secret_salt)
    assert headers["webhook-signature"] == signing.signature(key, delivery.id, clock.now, sender.sent[0].body)


def test_payloads_are_masked_for_the_subscription_role(store: Store) -> None:
    sender = RecordingSender()
    service = _service(store, sender, Clock())
    viewer, admin = _subscribe(service, Role.VIEWER), _subscribe(service, Role.ADMIN)
    event = _created_event()
    service.on_event(event)
    bodies = {sent.headers["webhook-id"].rsplit("-", 1)[1]: json.loads(sent.body) for sent in sender.sent}
    assert bodies[admin.id]["data"]["subscriber"]["imsi"] == "234150123456789"
    assert bodies[viewer.id]["data"]["subscriber"]["imsi"] != "234150123456789"
    assert "234150123456789" not in json.dumps(bodies[viewer.id])
    assert bodies[viewer.id]["type"] == "subscriber.created"
    assert bodies[viewer.id]["id"] == event.id


def test_failures_are_retried_on_the_schedule_then_fail(store: Store) -> None:
    sender, clock = RecordingSender([FAIL]), Clock()
    service = _service(store, sender, clock)
    subscription = _subscribe(service)
    event = _created_event()
    service.on_event(event)
    delivery_key = (subscription.id, delivery_id(event.id, subscription.id))

    for attempt, delay in enumerate(RETRY_DELAYS, start=1):
        delivery = store.webhooks.get_delivery(*delivery_key)
        assert delivery is not None
        assert delivery.status is DeliveryStatus.PENDING
        assert delivery.attempts == attempt
        assert delivery.next_attempt_at == clock.now + delay
        # Not due a moment before its time: nothing is sent.
        clock.advance(delay - timedelta(seconds=1))
        assert service.retry_due().attempted == 0
        clock.advance(timedelta(seconds=1))
        assert service.retry_due().attempted == 1

    delivery = store.webhooks.get_delivery(*delivery_key)
    assert delivery is not None
    assert delivery.status is DeliveryStatus.FAILED
    assert delivery.attempts == MAX_ATTEMPTS
    assert delivery.next_attempt_at is None
    assert delivery.last_error == "answered HTTP 503"
    assert len(sender.sent) == MAX_ATTEMPTS
    assert len({sent.headers["webhook-id"] for sent in sender.sent}) == 1  # stable across retries
    assert len({sent.body for sent in sender.sent}) == 1
    clock.advance(timedelta(days=2))
    assert service.retry_due().attempted == 0
    assert sum(RETRY_DELAYS, timedelta()) > timedelta(hours=24)


def test_a_success_after_failures_ends_the_retries(store: Store) -> None:
    sender, clock = RecordingSender([FAIL, FAIL, OK]), Clock()
    service = _service(store, sender, clock)
    subscription = _subscribe(service)
    service.on_event(_created_event())
    clock.advance(RETRY_DELAYS[0])
    service.retry_due()
    clock.advance(RETRY_DELAYS[1])
    assert service.retry_due().succeeded == 1
    (delivery,) = store.webhooks.list_deliveries(subscription.id, limit=5).items
    assert delivery.status is DeliveryStatus.SUCCEEDED
    assert delivery.attempts == 3


def _exhaust(service: WebhookService, clock: Clock, events: int) -> None:
    for _ in range(events):
        event = _created_event().model_copy(update={"id": time_ordered_id()})
        service.on_event(event)
    for delay in RETRY_DELAYS:
        clock.advance(delay)
        service.retry_due()


def test_a_subscription_failing_again_and_again_is_disabled_with_an_audit_entry(store: Store) -> None:
    sender, clock = RecordingSender([FAIL]), Clock()
    service = _service(store, sender, clock, webhook_disable_after_failures=3)
    subscription = _subscribe(service)
    _exhaust(service, clock, events=2)
    still = store.webhooks.get(subscription.id)
    assert still is not None
    assert still.active is True

    _exhaust(service, clock, events=1)
    disabled = store.webhooks.get(subscription.id)
    assert disabled is not None
    assert disabled.active is False
    assert disabled.disabled_reason == "3 deliveries in a row failed after every retry"
    entries = store.audit.list_for_entity("webhook", subscription.id, limit=10).items
    assert entries[0].action == "webhook.disabled"
    assert entries[0].actor == "system:webhooks"
    assert entries[0].after is not None
    assert entries[0].after["active"] is False
    assert entries[0].after["disabled_reason"] == disabled.disabled_reason
    assert "secret_salt" not in json.dumps([entry.model_dump(mode="json") for entry in entries])

    # Disabled: new events make no delivery, a manual retry is refused until it is enabled again.
    sender.sent.clear()
    assert service.on_event(_created_event().model_copy(update={"id": time_ordered_id()})) == 0
    failed = store.webhooks.list_deliveries(subscription.id, limit=1).items[0]
    with pytest.raises(ConflictError):
        service.retry(subscription.id, failed.id)
    assert sender.sent == []


def test_a_success_resets_the_run_of_failures(store: Store) -> None:
    sender, clock = RecordingSender([FAIL]), Clock()
    service = _service(store, sender, clock, webhook_disable_after_failures=2)
    subscription = _subscribe(service)
    _exhaust(service, clock, events=1)
    sender.answers = [OK]
    service.on_event(_created_event().model_copy(update={"id": time_ordered_id()}))
    sender.answers = [FAIL]
    _exhaust(service, clock, events=1)
    stored = store.webhooks.get(subscription.id)
    assert stored is not None
    assert stored.active is True


def test_manual_retry_starts_a_failed_delivery_over_and_tries_it_now(store: Store) -> None:
    sender, clock = RecordingSender([FAIL]), Clock()
    service = _service(store, sender, clock)
    subscription = _subscribe(service)
    _exhaust(service, clock, events=1)
    (failed,) = store.webhooks.list_deliveries(subscription.id, limit=5).items
    assert failed.status is DeliveryStatus.FAILED

    sender.answers = [FAIL]
    retried = service.retry(subscription.id, failed.id)
    assert retried.status is DeliveryStatus.PENDING
    assert retried.attempts == 1
    assert retried.next_attempt_at == clock.now + RETRY_DELAYS[0]
    sender.answers = [OK]
    clock.advance(RETRY_DELAYS[0])
    assert service.retry_due().succeeded == 1
    assert sender.sent[-1].headers["webhook-id"] == failed.id


def test_ping_sends_one_attempt_and_answers_its_result(store: Store) -> None:
    sender, clock = RecordingSender([FAIL]), Clock()
    service = _service(store, sender, clock, webhook_disable_after_failures=1)
    subscription = _subscribe(service, active=False)
    failed = service.ping("admin", subscription.id)
    assert failed.status is DeliveryStatus.FAILED  # no retries for a ping
    assert failed.attempts == 1
    body = json.loads(sender.sent[0].body)
    assert body["type"] == "webhook.ping"
    assert body["data"] == {"webhook_id": subscription.id}
    sender.answers = [OK]
    assert service.ping("admin", subscription.id).status is DeliveryStatus.SUCCEEDED
    clock.advance(timedelta(days=2))
    assert service.retry_due().attempted == 0
    # A failed ping is no failed delivery: it doesn't count towards disabling.
    stored = store.webhooks.get(subscription.id)
    assert stored is not None
    assert stored.disabled_reason is None


def test_due_deliveries_of_a_disabled_or_deleted_webhook_are_dropped(store: Store) -> None:
    sender, clock = RecordingSender([FAIL]), Clock()
    service = _service(store, sender, clock)
    kept, disabled, deleted = _subscribe(service), _subscribe(service), _subscribe(service)
    service.on_event(_created_event())
    service.update("admin", disabled.id, _update(active=False), expected_versions=None)
    service.delete("admin", deleted.id, expected_versions=None)
    clock.advance(RETRY_DELAYS[0])
    run = service.retry_due()
    assert run.attempted == 1
    assert run.dropped == 1  # the deleted one's deliveries went with it
    (dropped,) = store.webhooks.list_deliveries(disabled.id, limit=5).items
    assert dropped.status is DeliveryStatus.FAILED
    assert dropped.last_error == "the webhook is disabled"
    assert store.webhooks.list_deliveries(kept.id, limit=5).items[0].status is DeliveryStatus.PENDING


def test_a_claimed_delivery_is_not_attempted_twice(store: Store) -> None:
    sender, clock = RecordingSender([FAIL]), Clock()
    service = _service(store, sender, clock)
    subscription = _subscribe(service)
    service.on_event(_created_event())
    clock.advance(RETRY_DELAYS[0])
    (due,) = store.webhooks.due_deliveries(clock.now, limit=5)
    # Another attempt (the relay, a second task run) claims it first: this one must not send.
    claimed = due.model_copy(update={"next_attempt_at": clock.now + timedelta(seconds=60)})
    store.webhooks.replace_delivery(due, claimed)
    assert service._attempt(subscription, due) is None
    assert len(sender.sent) == 1


def _update(**fields: object) -> object:
    from app.webhooks.schemas import WebhookUpdate

    return WebhookUpdate.model_validate(fields)


def test_a_sender_that_raises_fails_the_attempt_not_the_relay(store: Store) -> None:
    def broken(*_: object) -> AttemptResult:
        raise RuntimeError("bug in the sender")

    clock = Clock()
    service = WebhookService(
        store, make_settings(webhook_target_policy="local"), TEST_SECRET.encode(), broken, clock=clock
    )
    subscription = _subscribe(service)
    assert service.on_event(_created_event()) == 1
    (delivery,) = store.webhooks.list_deliveries(subscription.id, limit=5).items
    assert delivery.status is DeliveryStatus.PENDING
    assert delivery.last_error == "not sent: RuntimeError"
    assert delivery.next_attempt_at == clock.now + RETRY_DELAYS[0]
