"""Webhook subscriptions (`webhooks`, written through the audit outbox) and their deliveries
(`webhook_deliveries`, `_id` = `<subscription id>:<delivery id>` so one subscription's log is one
index range, newest first). A pending delivery carries `due` (its next attempt time), which the
sparse `due` index holds: the retry task reads only deliveries that are due."""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from app.storage.base import Page, ValueTaken, missing_or_stale
from app.storage.cursor import CursorCodec
from app.storage.mongo import codec, outbox
from app.storage.mongo.paging import find_page
from app.storage.records import AuditEntry, DeliveryStatus, WebhookDelivery, WebhookSubscription

FAILURE_RUN = "failure_run"  # beside the record's fields: counted without a versioned write


def to_subscription(document: dict[str, Any]) -> WebhookSubscription:
    return codec.load(WebhookSubscription, document, "id")


def to_delivery(document: dict[str, Any]) -> WebhookDelivery:
    return codec.load(WebhookDelivery, document)


def delivery_document(delivery: WebhookDelivery) -> dict[str, Any]:
    document = {"_id": f"{delivery.subscription_id}:{delivery.id}", **codec.dump(delivery)}
    if delivery.status is DeliveryStatus.PENDING and delivery.next_attempt_at is not None:
        document["due"] = delivery.next_attempt_at
    return document


class MongoWebhookRepository:
    collection_name = "webhooks"

    def __init__(self, db: Any, cursors: CursorCodec) -> None:
        self.db = db
        self.collection = db[self.collection_name]
        self.deliveries = db["webhook_deliveries"]
        self.cursors = cursors

    # --- subscriptions -----------------------------------------------------------------------------

    def create(self, subscription: WebhookSubscription, audit: AuditEntry) -> None:
        document = codec.document(subscription, "id")
        document[outbox.PENDING] = [outbox.pending(audit)]
        try:
            self.collection.insert_one(document)
        except DuplicateKeyError:
            raise ValueTaken(f"webhook {subscription.id!r} already exists", attribute="id") from None
        outbox.flush(self.db, self.collection_name, subscription.id)

    def get(self, subscription_id: str) -> WebhookSubscription | None:
        document = self.collection.find_one({"_id": subscription_id, **outbox.LIVE})
        return to_subscription(document) if document else None

    def list(self, *, limit: int, cursor: str | None = None) -> Page[WebhookSubscription]:
        return find_page(
            self.collection,
            outbox.LIVE,
            to_subscription,
            limit=limit,
            cursor=cursor,
            scope="webhooks",
            cursors=self.cursors,
        )

    def replace(self, current: WebhookSubscription, updated: WebhookSubscription, audit: AuditEntry) -> None:
        updated.version = current.version + 1
        result = self.collection.update_one(
            {"_id": current.id, "version": current.version, **outbox.LIVE},
            {"$set": codec.dump(updated, exclude={"id"}), "$push": {outbox.PENDING: outbox.pending(audit)}},
        )
        if result.matched_count == 0:
            raise missing_or_stale("webhook", current.id, self.get(current.id))
        outbox.flush(self.db, self.collection_name, current.id)

    def delete(self, current: WebhookSubscription, audit: AuditEntry) -> None:
        result = self.collection.update_one(
            {"_id": current.id, "version": current.version, **outbox.LIVE},
            {"$set": {outbox.DELETED: True}, "$push": {outbox.PENDING: outbox.pending(audit)}},
        )
        if result.matched_count == 0:
            raise missing_or_stale("webhook", current.id, self.get(current.id))
        outbox.finish_delete(self.db, self.collection_name, current.id)
        # A crash before this leaves deliveries the retry task drops (their subscription is gone).
        self.deliveries.delete_many({"subscription_id": current.id})

    def count_failure(self, subscription_id: str) -> int:
        document = self.collection.find_one_and_update(
            {"_id": subscription_id}, {"$inc": {FAILURE_RUN: 1}}, return_document=ReturnDocument.AFTER
        )
        return int(document.get(FAILURE_RUN, 0)) if document else 0

    def reset_failures(self, subscription_id: str) -> None:
        self.collection.update_one({"_id": subscription_id}, {"$set": {FAILURE_RUN: 0}})

    # --- deliveries --------------------------------------------------------------------------------

    def create_delivery(self, delivery: WebhookDelivery) -> bool:
        try:
            self.deliveries.insert_one(delivery_document(delivery))
        except DuplicateKeyError:
            return False
        return True

    def get_delivery(self, subscription_id: str, delivery_id: str) -> WebhookDelivery | None:
        document = self.deliveries.find_one({"_id": f"{subscription_id}:{delivery_id}"})
        return to_delivery(document) if document else None

    def list_deliveries(self, subscription_id: str, *, limit: int, cursor: str | None = None) -> Page[WebhookDelivery]:
        return find_page(
            self.deliveries,
            {"subscription_id": subscription_id},
            to_delivery,
            limit=limit,
            cursor=cursor,
            scope=f"webhook-deliveries|{subscription_id}",
            cursors=self.cursors,
            descending=True,
        )

    def replace_delivery(self, current: WebhookDelivery, updated: WebhookDelivery) -> None:
        updated.revision = current.revision + 1
        document = delivery_document(updated)
        result = self.deliveries.replace_one({"_id": document["_id"], "revision": current.revision}, document)
        if result.matched_count == 0:
            raise missing_or_stale("delivery", current.id, self.get_delivery(current.subscription_id, current.id))

    def due_deliveries(self, now: datetime, *, limit: int) -> builtins.list[WebhookDelivery]:
        found = self.deliveries.find({"due": {"$lte": now}}).sort([("due", 1), ("_id", 1)]).limit(limit)
        return [to_delivery(document) for document in found]
