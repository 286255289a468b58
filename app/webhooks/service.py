"""Webhook rules: subscriptions (admin), deliveries of relayed events, retries and disabling.

A relayed event creates at most one delivery per matching subscription (its id is derived from
the event's and the subscription's, and the store creates it only if new), then tries it once at
once within a small time budget. A failed attempt schedules the next (`RETRY_DELAYS`, about a
day in all); the `webhooks-retry` task tries what is due, found through the store's due index.
Every attempt first claims its delivery (a conditional write that moves its due time past the
attempt), so the relay and the retry task, or two runs of it, never send one attempt twice at once.
A subscription whose deliveries fail for good `WEBHOOK_DISABLE_AFTER_FAILURES` times in a row is
disabled, with a `webhook.disabled` audit entry.
"""

from __future__ import annotations

import builtins
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.audit import audit_entry
from app.changefeed.envelope import envelope
from app.concurrency import Versions, etag
from app.config import Settings
from app.errors import ConflictError, FieldCode, InvalidInput, NotFoundError, PreconditionFailedError
from app.observability import request_id_var
from app.storage.base import Page, RecordMissing, StaleVersion, Store
from app.storage.records import (
    AuditEntry,
    DeliveryStatus,
    DomainEvent,
    Role,
    WebhookDelivery,
    WebhookSubscription,
)
from app.timeutil import time_ordered_id, utcnow
from app.webhooks import signing, targets
from app.webhooks.schemas import WebhookCreate, WebhookUpdate
from app.webhooks.transport import AttemptResult, Sender

logger = logging.getLogger("app.webhooks")

# After the first attempt fails: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (27 h 35 min in all).
RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
# A claimed delivery is not due for anyone else for this long: more than one attempt can take.
CLAIM = timedelta(seconds=60)
# The relay tries new deliveries of one event inline for at most this long; the rest wait for the
# retry task (seconds later), so a slow receiver can't hold up the feed.
INLINE_BUDGET_SECONDS = 5.0
MAX_SUBSCRIPTIONS = 100
PING_EVENT_TYPE = "webhook.ping"
SYSTEM_ACTOR = "system:webhooks"
_ATTEMPTS = 3  # optimistic writes retried on a concurrent change


def delivery_id(event_id: str, subscription_id: str) -> str:
    """The same for every relay of one event to one subscription (also its `webhook-id`)."""
    return f"{event_id}-{subscription_id}"


def payload(event: DomainEvent, role: Role) -> str:
    """The body as sent and signed: the envelope as `role` sees it, as compact JSON."""
    return json.dumps(envelope(event, role), separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class RetryRun:
    attempted: int = 0
    succeeded: int = 0
    failed: int = 0
    dropped: int = 0


class WebhookService:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        app_secret: bytes,
        sender: Sender,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.settings = settings
        self.app_secret = app_secret
        self.sender = sender
        self.clock = clock
        self.monotonic = monotonic

    # --- subscriptions (admin) -------------------------------------------------------------------------

    def create(self, actor: str, body: WebhookCreate) -> tuple[WebhookSubscription, str]:
        self._check_target(body.url)
        if len(self.store.webhooks.list(limit=MAX_SUBSCRIPTIONS).items) >= MAX_SUBSCRIPTIONS:
            raise ConflictError(f"at most {MAX_SUBSCRIPTIONS} webhooks can be subscribed; delete one first")
        now = self.clock()
        subscription = WebhookSubscription(
            id=uuid.uuid4().hex,
            url=body.url,
            event_types=list(body.event_types),
            description=body.description or None,
            role=body.role,
            active=body.active,
            secret_salt=signing.new_salt(),
            created_by=actor,
            created_at=now,
            updated_at=now,
        )
        self.store.webhooks.create(subscription, self._audit(actor, "webhook.create", None, subscription))
        return subscription, self.secret_of(subscription)

    def get(self, subscription_id: str) -> WebhookSubscription:
        subscription = self.store.webhooks.get(subscription_id)
        if subscription is None:
            raise NotFoundError(f"webhook {subscription_id!r} not found")
        return subscription

    def list(self, *, limit: int, cursor: str | None) -> Page[WebhookSubscription]:
        return self.store.webhooks.list(limit=limit, cursor=cursor)

    def update(
        self, actor: str, subscription_id: str, body: WebhookUpdate, *, expected_versions: Versions | None
    ) -> WebhookSubscription:
        values = body.model_dump(exclude_unset=True)
        for name, value in values.items():
            if value is None and name != "description":
                raise InvalidInput(f"body.{name}", "may not be null", code=FieldCode.NULL_NOT_ALLOWED)
        if "url" in values:
            self._check_target(values["url"])
        for _ in range(_ATTEMPTS):
            current = self._current(subscription_id, expected_versions)
            changes: dict[str, Any] = {**values, "updated_at": self.clock()}
            if "description" in changes:
                changes["description"] = changes["description"] or None
            if changes.get("active") and not current.active:
                changes["disabled_reason"] = None
            updated = current.model_copy(update=changes)
            try:
                self.store.webhooks.replace(current, updated, self._audit(actor, "webhook.update", current, updated))
            except StaleVersion:
                if expected_versions is not None:
                    raise
                continue
            if updated.active and not current.active:
                self.store.webhooks.reset_failures(subscription_id)  # a fresh start for the re-enabled one
            return updated
        raise StaleVersion(f"webhook {subscription_id!r} kept changing; retry")

    def delete(self, actor: str, subscription_id: str, *, expected_versions: Versions | None) -> None:
        for _ in range(_ATTEMPTS):
            current = self._current(subscription_id, expected_versions)
            try:
                self.store.webhooks.delete(current, self._audit(actor, "webhook.delete", current, None))
                return
            except StaleVersion:
                if expected_versions is not None:
                    raise
        raise StaleVersion(f"webhook {subscription_id!r} kept changing; retry")

    def rotate_secret(self, actor: str, subscription_id: str) -> tuple[WebhookSubscription, str]:
        for _ in range(_ATTEMPTS):
            current = self.get(subscription_id)
            updated = current.model_copy(update={"secret_salt": signing.new_salt(), "updated_at": self.clock()})
            audit = self._audit(actor, "webhook.rotate_secret", current, updated)
            try:
                self.store.webhooks.replace(current, updated, audit)
            except StaleVersion:
                continue
            return updated, self.secret_of(updated)
        raise StaleVersion(f"webhook {subscription_id!r} kept changing; retry")

    def secret_of(self, subscription: WebhookSubscription) -> str:
        return signing.secret_text(self._key(subscription))

    def _key(self, subscription: WebhookSubscription) -> bytes:
        return signing.secret_key(self.app_secret, subscription.id, subscription.secret_salt)

    def _current(self, subscription_id: str, expected_versions: Versions | None) -> WebhookSubscription:
        current = self.get(subscription_id)
        if expected_versions is not None and current.version not in expected_versions:
            raise PreconditionFailedError(
                f"webhook is at version {current.version}; reload it and retry",
                headers={"ETag": etag(current.version)},
            )
        return current

    def _target(self, url: str) -> targets.Target:
        settings = self.settings
        return targets.check(url, strict=settings.webhook_strict_targets, allowed=settings.webhook_allowed_networks)

    def _check_target(self, url: str) -> None:
        try:
            self._target(url)
        except targets.UnsafeTarget as refused:
            raise InvalidInput("body.url", str(refused), FieldCode.UNSAFE_URL) from None

    def _audit(
        self, actor: str, action: str, before: WebhookSubscription | None, after: WebhookSubscription | None
    ) -> AuditEntry:
        subject = after or before
        assert subject is not None
        hidden = {"secret_salt"}  # never copied out of the subscription: it derives the secret
        return audit_entry(
            actor=actor,
            action=action,
            entity_type="webhook",
            entity_id=subject.id,
            at=self.clock(),
            retention_days=self.settings.audit_retention_days,
            event_retention_days=self.settings.event_retention_days,
            before=before.model_dump(mode="json", exclude=hidden) if before else None,
            after=after.model_dump(mode="json", exclude=hidden) if after else None,
        )

    # --- the delivery log ------------------------------------------------------------------------------

    def deliveries(self, subscription_id: str, *, limit: int, cursor: str | None) -> Page[WebhookDelivery]:
        self.get(subscription_id)
        return self.store.webhooks.list_deliveries(subscription_id, limit=limit, cursor=cursor)

    def retry(self, subscription_id: str, delivery_id: str) -> WebhookDelivery:
        """Start the delivery's retries over, now: pending, a full schedule, tried at once."""
        subscription = self.get(subscription_id)
        if not subscription.active:
            raise ConflictError("the webhook is disabled: enable it (PATCH active=true) before retrying")
        for _ in range(_ATTEMPTS):
            current = self.store.webhooks.get_delivery(subscription_id, delivery_id)
            if current is None:
                raise NotFoundError(f"delivery {delivery_id!r} not found")
            now = self.clock()
            reset = current.model_copy(
                update={
                    "status": DeliveryStatus.PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    # Kept for a whole retry schedule from now, like a new delivery.
                    "expires_at": now + timedelta(days=self.settings.webhook_delivery_retention_days),
                }
            )
            try:
                self.store.webhooks.replace_delivery(current, reset)
            except StaleVersion:
                continue  # an attempt in flight wrote it meanwhile
            return self._attempt(subscription, reset) or reset
        raise StaleVersion(f"delivery {delivery_id!r} kept changing; retry")

    def ping(self, actor: str, subscription_id: str) -> WebhookDelivery:
        """Send a `webhook.ping` at once (active or not) and answer its one attempt's result."""
        subscription = self.get(subscription_id)
        now = self.clock()
        event = DomainEvent(
            id=time_ordered_id(),
            type=PING_EVENT_TYPE,
            at=now,
            subject=f"webhook/{subscription.id}",
            actor=actor,
            request_id=request_id_var.get(),
            data={"webhook_id": subscription.id},
        )
        delivery = self._new_delivery(subscription, event)
        self.store.webhooks.create_delivery(delivery)
        return self._attempt(subscription, delivery) or delivery

    # --- the change feed -------------------------------------------------------------------------------

    def on_event(self, event: DomainEvent) -> int:
        """Create this event's deliveries (once each, however often it is relayed) and try the new
        ones within the inline budget; returns how many were created. Raises only if the store does."""
        started = self.monotonic()
        created = 0
        for subscription in self._subscribed_to(event.type):
            delivery = self._new_delivery(subscription, event)
            if not self.store.webhooks.create_delivery(delivery):
                continue  # a relay before this one created it: its attempts are the retry task's
            created += 1
            if self.monotonic() - started < INLINE_BUDGET_SECONDS:
                self._attempt(subscription, delivery)
        return created

    def retry_due(self, *, limit: int = 100, budget_seconds: float = 60.0) -> RetryRun:
        """Try the deliveries that are due, earliest first, until `limit` or the time budget is spent."""
        started = self.monotonic()
        counts = {"attempted": 0, "succeeded": 0, "failed": 0, "dropped": 0}
        subscriptions: dict[str, WebhookSubscription | None] = {}
        for delivery in self.store.webhooks.due_deliveries(self.clock(), limit=limit):
            if self.monotonic() - started > budget_seconds:
                break
            if delivery.subscription_id not in subscriptions:
                subscriptions[delivery.subscription_id] = self.store.webhooks.get(delivery.subscription_id)
            subscription = subscriptions[delivery.subscription_id]
            if subscription is None or not subscription.active:
                why = "the webhook was deleted" if subscription is None else "the webhook is disabled"
                if self._give_up(delivery, why):
                    counts["dropped"] += 1
                continue
            outcome = self._attempt(subscription, delivery)
            if outcome is None:
                continue
            counts["attempted"] += 1
            if outcome.status is DeliveryStatus.SUCCEEDED:
                counts["succeeded"] += 1
            elif outcome.status is DeliveryStatus.FAILED:
                counts["failed"] += 1
        return RetryRun(**counts)

    def _subscribed_to(self, event_type: str) -> builtins.list[WebhookSubscription]:
        page = self.store.webhooks.list(limit=MAX_SUBSCRIPTIONS)
        found = list(page.items)
        while page.next_cursor:  # more than the cap only if creations raced past it
            page = self.store.webhooks.list(limit=MAX_SUBSCRIPTIONS, cursor=page.next_cursor)
            found += page.items
        return [item for item in found if item.active and event_type in item.event_types]

    def _new_delivery(self, subscription: WebhookSubscription, event: DomainEvent) -> WebhookDelivery:
        now = self.clock()
        return WebhookDelivery(
            id=delivery_id(event.id, subscription.id),
            subscription_id=subscription.id,
            event_id=event.id,
            event_type=event.type,
            payload=payload(event, subscription.role),
            created_at=now,
            next_attempt_at=now,
            expires_at=now + timedelta(days=self.settings.webhook_delivery_retention_days),
        )

    def _give_up(self, delivery: WebhookDelivery, why: str) -> bool:
        failed = delivery.model_copy(
            update={"status": DeliveryStatus.FAILED, "next_attempt_at": None, "last_error": why}
        )
        try:
            self.store.webhooks.replace_delivery(delivery, failed)
        except (StaleVersion, RecordMissing):
            return False
        return True

    def _attempt(self, subscription: WebhookSubscription, delivery: WebhookDelivery) -> WebhookDelivery | None:
        """One attempt, if this caller wins the delivery's claim; the delivery as it then is, or None."""
        claimed = delivery.model_copy(update={"next_attempt_at": self.clock() + CLAIM})
        try:
            self.store.webhooks.replace_delivery(delivery, claimed)
        except (StaleVersion, RecordMissing):
            return None  # another attempt has it, or it is gone
        result = self._send(subscription, claimed)
        now = self.clock()
        attempts = claimed.attempts + 1
        ping = claimed.event_type == PING_EVENT_TYPE
        if result.succeeded:
            status, next_attempt = DeliveryStatus.SUCCEEDED, None
        elif ping or attempts >= MAX_ATTEMPTS:
            status, next_attempt = DeliveryStatus.FAILED, None
        else:
            status, next_attempt = DeliveryStatus.PENDING, now + RETRY_DELAYS[attempts - 1]
        updated = claimed.model_copy(
            update={
                "status": status,
                "attempts": attempts,
                "next_attempt_at": next_attempt,
                "last_attempt_at": now,
                "last_status_code": result.status_code,
                "last_error": result.error,
                "last_response": result.response_excerpt,
            }
        )
        try:
            self.store.webhooks.replace_delivery(claimed, updated)
        except (StaleVersion, RecordMissing):
            return None  # our claim ran out and another attempt took over; its outcome stands
        # Ids and outcome only: the URL may carry the integrator's token, the body personal data.
        logger.info(
            "webhook attempt",
            extra={
                "webhook_id": subscription.id,
                "delivery_id": updated.id,
                "event_type": updated.event_type,
                "attempt": attempts,
                "status": status.value,
                "status_code": result.status_code,
            },
        )
        if not ping:
            if status is DeliveryStatus.SUCCEEDED:
                self.store.webhooks.reset_failures(subscription.id)
            elif status is DeliveryStatus.FAILED:
                run = self.store.webhooks.count_failure(subscription.id)
                if run >= self.settings.webhook_disable_after_failures:
                    self._disable(subscription.id, run)
        return updated

    def _send(self, subscription: WebhookSubscription, delivery: WebhookDelivery) -> AttemptResult:
        # Checked again before every attempt: what the host resolves to may have changed since.
        try:
            target = self._target(subscription.url)
        except targets.UnsafeTarget as refused:
            return AttemptResult(error=f"not sent: {refused}")
        headers = signing.signed_headers(self._key(subscription), delivery.id, self.clock(), delivery.payload)
        try:
            return self.sender(target, delivery.payload, headers)
        except Exception as exc:  # a sender's own failure is this attempt's failure, never the relay's
            logger.exception("webhook sender failed", extra={"webhook_id": subscription.id, "delivery_id": delivery.id})
            return AttemptResult(error=f"not sent: {type(exc).__name__}")

    def _disable(self, subscription_id: str, run: int) -> None:
        reason = f"{run} deliveries in a row failed after every retry"
        for _ in range(_ATTEMPTS):
            current = self.store.webhooks.get(subscription_id)
            if current is None or not current.active:
                return
            updated = current.model_copy(
                update={"active": False, "disabled_reason": reason, "updated_at": self.clock()}
            )
            try:
                self.store.webhooks.replace(
                    current, updated, self._audit(SYSTEM_ACTOR, "webhook.disabled", current, updated)
                )
                return
            except StaleVersion:
                continue
