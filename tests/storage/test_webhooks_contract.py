"""Contract tests of the webhook repository on every backend: subscriptions with their audit
entries, idempotent deliveries, the newest-first log, conditional delivery writes and the due index."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.storage.base import AuditQuery, RecordMissing, StaleVersion, Store, ValueTaken
from app.storage.records import AuditEntry, DeliveryStatus, WebhookDelivery, WebhookSubscription
from app.timeutil import time_ordered_id, utcnow


def _subscription(subscription_id: str = "wh1", **overrides: object) -> WebhookSubscription:
    now = utcnow()
    values: dict[str, object] = {
        "id": subscription_id,
        "url": "https://hooks.example.com/in",
        "event_types": ["booking.confirmed"],
        "secret_salt": "c2FsdA",
        "created_by": "admin",
        "created_at": now,
        "updated_at": now,
    }
    values.update(overrides)
    return WebhookSubscription.model_validate(values)


def _audit(action: str, entity_id: str = "wh1") -> AuditEntry:
    return AuditEntry(
        id=time_ordered_id(), at=utcnow(), actor="admin", action=action, entity_type="webhook", entity_id=entity_id
    )


def _delivery(subscription_id: str = "wh1", **overrides: object) -> WebhookDelivery:
    now = utcnow()
    event_id = time_ordered_id()
    values: dict[str, object] = {
        "id": event_id,
        "subscription_id": subscription_id,
        "event_id": event_id,
        "event_type": "booking.confirmed",
        "payload": '{"id": "x"}',
        "created_at": now,
        "next_attempt_at": now,
        "expires_at": now + timedelta(days=30),
    }
    values.update(overrides)
    return WebhookDelivery.model_validate(values)


def test_subscription_round_trip_versioned_and_audited(store: Store) -> None:
    subscription = _subscription()
    store.webhooks.create(subscription, _audit("webhook.create"))
    with pytest.raises(ValueTaken):
        store.webhooks.create(subscription, _audit("webhook.create"))
    assert store.webhooks.get("wh1") == subscription

    updated = subscription.model_copy(update={"active": False, "disabled_reason": "failing"})
    store.webhooks.replace(subscription, updated, _audit("webhook.disabled"))
    stored = store.webhooks.get("wh1")
    assert stored is not None
    assert stored.version == 2
    assert stored.active is False
    with pytest.raises(StaleVersion):
        store.webhooks.replace(subscription, updated.model_copy(), _audit("webhook.update"))

    page = store.audit.list_for_entity("webhook", "wh1", limit=10)
    assert [entry.action for entry in page.items] == ["webhook.disabled", "webhook.create"]
    assert store.audit.search(AuditQuery(since=utcnow() - timedelta(hours=1), until=utcnow()), limit=10).items


def test_list_is_paginated_by_id(store: Store) -> None:
    for name in ("wh3", "wh1", "wh2"):
        store.webhooks.create(_subscription(name), _audit("webhook.create", name))
    first = store.webhooks.list(limit=2)
    assert [item.id for item in first.items] == ["wh1", "wh2"]
    assert first.next_cursor
    second = store.webhooks.list(limit=2, cursor=first.next_cursor)
    assert [item.id for item in second.items] == ["wh3"]
    assert second.next_cursor is None


def test_delete_removes_the_subscription_and_its_deliveries(store: Store) -> None:
    subscription = _subscription()
    store.webhooks.create(subscription, _audit("webhook.create"))
    delivery = _delivery()
    assert store.webhooks.create_delivery(delivery)
    store.webhooks.delete(subscription, _audit("webhook.delete"))
    assert store.webhooks.get("wh1") is None
    assert store.webhooks.get_delivery("wh1", delivery.id) is None
    assert store.webhooks.due_deliveries(utcnow() + timedelta(minutes=1), limit=10) == []
    with pytest.raises(RecordMissing):
        store.webhooks.delete(subscription, _audit("webhook.delete"))


def test_failure_run_counts_and_resets_without_a_version_change(store: Store) -> None:
    store.webhooks.create(_subscription(), _audit("webhook.create"))
    assert [store.webhooks.count_failure("wh1") for _ in range(3)] == [1, 2, 3]
    store.webhooks.reset_failures("wh1")
    assert store.webhooks.count_failure("wh1") == 1
    stored = store.webhooks.get("wh1")
    assert stored is not None
    assert stored.version == 1


def test_delivery_create_is_idempotent_and_the_log_is_newest_first(store: Store) -> None:
    deliveries = [_delivery() for _ in range(3)]
    for delivery in deliveries:
        assert store.webhooks.create_delivery(delivery) is True
    again = deliveries[0].model_copy(update={"payload": "{}"})
    assert store.webhooks.create_delivery(again) is False
    assert store.webhooks.get_delivery("wh1", deliveries[0].id) == deliveries[0]
    assert store.webhooks.create_delivery(_delivery("wh2"))

    first = store.webhooks.list_deliveries("wh1", limit=2)
    assert [item.id for item in first.items] == [deliveries[2].id, deliveries[1].id]
    assert first.next_cursor
    second = store.webhooks.list_deliveries("wh1", limit=2, cursor=first.next_cursor)
    assert [item.id for item in second.items] == [deliveries[0].id]
    assert second.next_cursor is None


def test_delivery_writes_are_conditional_on_the_revision(store: Store) -> None:
    delivery = _delivery()
    store.webhooks.create_delivery(delivery)
    claimed = delivery.model_copy(update={"next_attempt_at": utcnow() + timedelta(minutes=1)})
    store.webhooks.replace_delivery(delivery, claimed)
    assert claimed.revision == 2
    with pytest.raises(StaleVersion):
        store.webhooks.replace_delivery(delivery, delivery.model_copy(update={"attempts": 9}))
    stored = store.webhooks.get_delivery("wh1", delivery.id)
    assert stored == claimed
    with pytest.raises(RecordMissing):
        store.webhooks.replace_delivery(_delivery(), _delivery())


def test_due_index_holds_only_pending_deliveries_that_are_due(store: Store) -> None:
    now = utcnow()
    late = _delivery(next_attempt_at=now - timedelta(minutes=5))
    due = _delivery("wh2", next_attempt_at=now - timedelta(seconds=1))
    later = _delivery(next_attempt_at=now + timedelta(hours=1))
    done = _delivery(status=DeliveryStatus.SUCCEEDED, next_attempt_at=None)
    for delivery in (later, due, done, late):
        store.webhooks.create_delivery(delivery)
    assert [item.id for item in store.webhooks.due_deliveries(now, limit=10)] == [late.id, due.id]
    assert [item.id for item in store.webhooks.due_deliveries(now, limit=1)] == [late.id]

    # Moving on (a claim, a success) moves the delivery in or out of the index.
    succeeded = late.model_copy(update={"status": DeliveryStatus.SUCCEEDED, "next_attempt_at": None})
    store.webhooks.replace_delivery(late, succeeded)
    postponed = due.model_copy(update={"next_attempt_at": now + timedelta(minutes=2)})
    store.webhooks.replace_delivery(due, postponed)
    assert store.webhooks.due_deliveries(now, limit=10) == []
    assert [item.id for item in store.webhooks.due_deliveries(now + timedelta(hours=2), limit=10)] == [
        postponed.id,
        later.id,
    ]
