"""Webhook subscriptions and their deliveries in the single table.

A subscription is `WEBHOOK#<id>` / `WEBHOOK` (listed through GSI1 partition `WEBHOOKS`, by id);
its run of failed deliveries is a counter item beside it (`FAILURES`), so that counting never
races a versioned write of the subscription. Its deliveries share its partition
(`DELIVERY#<event id>`: event ids are time-ordered, so the log reads newest first). A pending
delivery also sits in a due index, GSI2 partition `WEBHOOKDUE#<shard>` sorted by next attempt
time: the retry task reads the due part of each shard, never the deliveries of every subscription.
"""

from __future__ import annotations

import builtins
import hashlib
from datetime import datetime
from typing import Any

from app.storage.base import ConditionFailed, Page, StorageError, ValueTaken, missing_or_stale
from app.storage.dynamodb.audit import audit_puts
from app.storage.dynamodb.codec import dump, load
from app.storage.dynamodb.schema import GSI1, GSI2
from app.storage.dynamodb.table import DynamoTable, key, serialize, serialize_values
from app.storage.records import AuditEntry, DeliveryStatus, WebhookDelivery, WebhookSubscription
from app.timeutil import epoch_seconds, sortable

SUBSCRIPTIONS_PARTITION = "WEBHOOKS"
SUBSCRIPTION_SK = "WEBHOOK"
FAILURES_SK = "FAILURES"
DELIVERY_PREFIX = "DELIVERY#"
DUE_PREFIX = "WEBHOOKDUE#"
# Spreads the due index over a few partitions: every pending delivery of every subscription is in it.
DUE_SHARDS = 4


def subscription_partition(subscription_id: str) -> str:
    return f"WEBHOOK#{subscription_id}"


def subscription_item(subscription: WebhookSubscription) -> dict[str, Any]:
    return {
        "PK": subscription_partition(subscription.id),
        "SK": SUBSCRIPTION_SK,
        "GSI1PK": SUBSCRIPTIONS_PARTITION,
        "GSI1SK": subscription.id,
        "type": "webhook",
        **dump(subscription),
    }


def due_shard(delivery: WebhookDelivery) -> int:
    digest = hashlib.sha256(f"{delivery.subscription_id}|{delivery.id}".encode()).digest()
    return digest[0] % DUE_SHARDS


def delivery_item(delivery: WebhookDelivery) -> dict[str, Any]:
    due = delivery.status is DeliveryStatus.PENDING and delivery.next_attempt_at is not None
    return {
        "PK": subscription_partition(delivery.subscription_id),
        "SK": DELIVERY_PREFIX + delivery.id,
        "GSI2PK": f"{DUE_PREFIX}{due_shard(delivery)}" if due else None,
        "GSI2SK": f"{sortable(delivery.next_attempt_at)}#{delivery.subscription_id}#{delivery.id}"  # type: ignore[arg-type]
        if due
        else None,
        "ttl": epoch_seconds(delivery.expires_at) if delivery.expires_at else None,
        "type": "webhook_delivery",
        **dump(delivery),
    }


def _versioned(version: int) -> dict[str, Any]:
    return {
        "ConditionExpression": "#v = :v",
        "ExpressionAttributeNames": {"#v": "version"},
        "ExpressionAttributeValues": serialize_values({":v": version}),
    }


class DynamoWebhookRepository:
    def __init__(self, table: DynamoTable) -> None:
        self.table = table

    # --- subscriptions -----------------------------------------------------------------------------

    def create(self, subscription: WebhookSubscription, audit: AuditEntry) -> None:
        put = {
            "Put": {
                "Item": serialize(subscription_item(subscription)),
                "ConditionExpression": "attribute_not_exists(PK)",
            }
        }

        def cancelled(codes: list[str]) -> StorageError:
            return ValueTaken(f"webhook {subscription.id!r} already exists", attribute="id")

        self.table.transact([put, *audit_puts(audit)], on_cancel=cancelled)

    def get(self, subscription_id: str) -> WebhookSubscription | None:
        item = self.table.get(subscription_partition(subscription_id), SUBSCRIPTION_SK)
        return load(WebhookSubscription, item) if item else None

    def list(self, *, limit: int, cursor: str | None = None) -> Page[WebhookSubscription]:
        items, next_cursor = self.table.query_page(
            scope="webhooks", partition=SUBSCRIPTIONS_PARTITION, index=GSI1, limit=limit, cursor=cursor
        )
        return Page([load(WebhookSubscription, item) for item in items], next_cursor)

    def replace(self, current: WebhookSubscription, updated: WebhookSubscription, audit: AuditEntry) -> None:
        updated.version = current.version + 1
        put = {"Put": {"Item": serialize(subscription_item(updated)), **_versioned(current.version)}}
        self.table.transact([put, *audit_puts(audit)], on_cancel=lambda codes: self._missing_or_stale(current))

    def delete(self, current: WebhookSubscription, audit: AuditEntry) -> None:
        partition = subscription_partition(current.id)
        remove = {"Delete": {"Key": key(partition, SUBSCRIPTION_SK), **_versioned(current.version)}}
        self.table.transact([remove, *audit_puts(audit)], on_cancel=lambda codes: self._missing_or_stale(current))
        # The subscription is gone (and audited); its deliveries and counter follow. A crash here
        # leaves deliveries that the retry task drops (their subscription is missing) or the TTL ends.
        leftovers = [(item["PK"], item["SK"]) for item in self.table.query_all(partition=partition)]
        self.table.batch_write(deletes=leftovers)

    def _missing_or_stale(self, current: WebhookSubscription) -> StorageError:
        return missing_or_stale("webhook", current.id, self.get(current.id))

    def count_failure(self, subscription_id: str) -> int:
        item = self.table.update(
            subscription_partition(subscription_id), FAILURES_SK, "ADD #n :one", names={"#n": "n"}, values={":one": 1}
        )
        return int(item["n"])

    def reset_failures(self, subscription_id: str) -> None:
        self.table.put({"PK": subscription_partition(subscription_id), "SK": FAILURES_SK, "type": "counter", "n": 0})

    # --- deliveries --------------------------------------------------------------------------------

    def create_delivery(self, delivery: WebhookDelivery) -> bool:
        try:
            self.table.put(delivery_item(delivery), condition="attribute_not_exists(PK)")
        except ConditionFailed:
            return False
        return True

    def get_delivery(self, subscription_id: str, delivery_id: str) -> WebhookDelivery | None:
        item = self.table.get(subscription_partition(subscription_id), DELIVERY_PREFIX + delivery_id)
        return load(WebhookDelivery, item) if item else None

    def list_deliveries(self, subscription_id: str, *, limit: int, cursor: str | None = None) -> Page[WebhookDelivery]:
        partition = subscription_partition(subscription_id)
        items, next_cursor = self.table.query_page(
            scope=f"webhook-deliveries|{subscription_id}",
            partition=partition,
            sort_condition="begins_with(#sk, :prefix)",
            values={":prefix": DELIVERY_PREFIX},
            limit=limit,
            cursor=cursor,
            forward=False,
        )
        return Page([load(WebhookDelivery, item) for item in items], next_cursor)

    def replace_delivery(self, current: WebhookDelivery, updated: WebhookDelivery) -> None:
        updated.revision = current.revision + 1

        def stale() -> StorageError:
            stored = self.get_delivery(current.subscription_id, current.id)
            return missing_or_stale("delivery", current.id, stored)

        self.table.put(
            delivery_item(updated),
            condition="#r = :r",
            names={"#r": "revision"},
            values={":r": current.revision},
            on_condition_failed=stale,
        )

    def due_deliveries(self, now: datetime, *, limit: int) -> builtins.list[WebhookDelivery]:
        # '$' sorts right after '#': every key of a time at or before `now` is below the bound.
        bound = {":due": sortable(now) + "$"}
        due: builtins.list[WebhookDelivery] = []
        for shard in range(DUE_SHARDS):
            partition = f"{DUE_PREFIX}{shard}"
            items, _ = self.table.query_page(
                scope=partition, partition=partition, index=GSI2, sort_condition="#sk < :due", values=bound, limit=limit
            )
            due.extend(load(WebhookDelivery, item) for item in items)
        due.sort(key=lambda delivery: (delivery.next_attempt_at or now, delivery.id))
        return due[:limit]
