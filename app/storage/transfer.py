"""Whole-store copy (`portal migrate-store`): every entity as a record both backends understand.

Each backend reads its own layout into `TransferRecord`s (kind, identity, canonical JSON data) and
writes them back into its own layout, rebuilding what it derives from them itself: DynamoDB's
msisdn/imsi claim items, index keys and booking status items; MongoDB's seat holders. The canonical
data is the record model dumped as JSON, so the same entity read from either store gives the same
bytes and therefore the same checksum.

Not copied, on purpose: login throttle windows (minutes long), a webhook's run of failed
deliveries (it starts again at zero in the target), and the MongoDB outbox's
bookkeeping (`recover()` empties it when the store opens). Job files live in the blob store
(S3 or DATA_DIR), which both stores share, so a job's `input_key`/`output_key` stay valid.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import BaseModel

from app.storage.records import (
    AuditEntry,
    BookingRecord,
    DomainEvent,
    JobRecord,
    JobRowError,
    NotificationRecord,
    RefreshTokenRecord,
    ReminderTimer,
    ResourceRecord,
    SubscriberRecord,
    TokenFamilyRecord,
    UserRecord,
    WebhookDelivery,
    WebhookSubscription,
)
from app.timeutil import sortable

# Phase 1 kinds refer to bookings (a slot's seat holders, an idempotency key's booking), so they
# are copied once every booking is in the target.
PHASES: tuple[tuple[str, ...], ...] = (
    (
        "users",
        "subscribers",
        "resources",
        "bookings",
        "busy_ledgers",
        "jobs",
        "job_errors",
        "audit",
        "counters",
        "token_families",
        "refresh_tokens",
        "denied_tokens",
        "events",
        "notifications",
        "reminders",
        "webhooks",
        "webhook_deliveries",
    ),
    ("slots", "idempotency_keys"),
)
KINDS: tuple[str, ...] = tuple(kind for phase in PHASES for kind in phase)

# The fields of a kind's canonical data that identify it in either store.
IDENTITY: dict[str, tuple[str, ...]] = {
    "users": ("username",),
    "subscribers": ("uid",),
    "resources": ("id",),
    "bookings": ("id",),
    "busy_ledgers": ("subscriber_uid", "day"),
    "jobs": ("id",),
    "job_errors": ("job_id", "row", "field"),
    "audit": ("entity_type", "entity_id", "at", "id"),
    "events": ("subject", "id"),
    "counters": ("scope", "key"),
    "token_families": ("family_id",),
    "refresh_tokens": ("token_hash",),
    "denied_tokens": ("jti",),
    "notifications": ("id",),
    "reminders": ("booking_id",),
    "slots": ("resource_id", "start"),
    "idempotency_keys": ("key",),
    "webhooks": ("id",),
    "webhook_deliveries": ("subscription_id", "id"),
}
MODELS: dict[str, type[BaseModel]] = {
    "users": UserRecord,
    "subscribers": SubscriberRecord,
    "resources": ResourceRecord,
    "bookings": BookingRecord,
    "jobs": JobRecord,
    "job_errors": JobRowError,
    "audit": AuditEntry,
    "events": DomainEvent,
    "token_families": TokenFamilyRecord,
    "refresh_tokens": RefreshTokenRecord,
    "notifications": NotificationRecord,
    "reminders": ReminderTimer,
    "webhooks": WebhookSubscription,
    "webhook_deliveries": WebhookDelivery,
}

Key = tuple[str, ...]


@dataclass(frozen=True)
class TransferRecord:
    kind: str
    data: dict[str, Any]

    @property
    def key(self) -> Key:
        return tuple(str(self.data[name]) for name in IDENTITY[self.kind])

    def digest(self) -> bytes:
        canonical = json.dumps(self.data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(f"{self.kind}\n{canonical}".encode()).digest()

    def model(self) -> Any:
        """The record model of an entity kind (users, subscribers, ...), validated."""
        return MODELS[self.kind].model_validate(self.data)


@dataclass(frozen=True)
class Refused:
    """A record the target would not take (e.g. its msisdn belongs to another subscriber there)."""

    kind: str
    key: Key
    reason: str


def entity(kind: str, record: BaseModel) -> TransferRecord:
    return TransferRecord(kind, record.model_dump(mode="json"))


def counter(scope: str, key: str, value: int) -> TransferRecord:
    return TransferRecord("counters", {"scope": scope, "key": key, "n": int(value)})


def slot(resource_id: str, start: datetime | str, booked: int) -> TransferRecord:
    start_text = start if isinstance(start, str) else sortable(start)
    return TransferRecord("slots", {"resource_id": resource_id, "start": start_text, "booked": int(booked)})


def busy_ledger(subscriber_uid: str, day: str, intervals: list[dict[str, Any]]) -> TransferRecord:
    """Intervals as sortable UTC text, in time order (both stores keep them in insertion order)."""
    normalised = [
        {
            "booking_id": str(entry["booking_id"]),
            "start": _text(entry["start"]),
            "end": _text(entry["end"]),
        }
        for entry in intervals
    ]
    normalised.sort(key=lambda entry: (entry["start"], entry["booking_id"]))
    return TransferRecord("busy_ledgers", {"subscriber_uid": subscriber_uid, "day": day, "intervals": normalised})


def idempotency_record(key: str, request_hash: str, booking_id: str, expires_at: datetime) -> TransferRecord:
    data = {"key": key, "request_hash": request_hash, "booking_id": booking_id, "expires_at": sortable(expires_at)}
    return TransferRecord("idempotency_keys", data)


def denied_token(jti: str, expires_at: datetime) -> TransferRecord:
    """To the second: DynamoDB keeps only the TTL (epoch seconds); a JWT's `exp` is whole seconds anyway."""
    return TransferRecord("denied_tokens", {"jti": jti, "expires_at": sortable(expires_at.replace(microsecond=0))})


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _text(value: datetime | str) -> str:
    return value if isinstance(value, str) else sortable(value)


class StoreTransfer(Protocol):
    """One backend's side of a store-to-store copy."""

    def read(self, phase: int, position: str | None, limit: int) -> tuple[list[TransferRecord], str | None]:
        """The next records of the phase's kinds after `position` (None: from the start), about
        `limit` of them, and the position to continue from (None once the phase is read).
        Positions are opaque text, kept in the copy's state file so a copy can resume."""
        ...

    def write(self, records: list[TransferRecord]) -> list[Refused]:
        """Upsert by identity, with what the store derives from each record; idempotent. Records
        the store refuses (a uniqueness clash with other data) are returned, not written."""
        ...

    def fetch(self, kind: str, keys: list[Key]) -> dict[Key, TransferRecord]:
        """The records of `kind` with these identities that exist (verification)."""
        ...
