"""The DynamoDB side of a store-to-store copy: the table read with a Scan, written back item by item.

Items are recognised by their key shape (the table's ground truth, see docs/data-model.md). Items
derived from others are not exported but rebuilt on write: msisdn/imsi claims from subscribers,
status-index items from bookings. An item of an unknown shape stops the copy rather than being
silently left behind.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from app.storage.base import IdempotencyKey, StorageError
from app.storage.dynamodb.audit import audit_item, audit_key
from app.storage.dynamodb.bookings import (
    booking_item,
    booking_key,
    idempotency_item,
    idempotency_key,
    ledger_item,
    ledger_key,
    resource_item,
    resource_key,
    slot_key,
    status_item,
)
from app.storage.dynamodb.codec import load
from app.storage.dynamodb.counters import counter_item, counter_key
from app.storage.dynamodb.events import event_item
from app.storage.dynamodb.jobs import error_item, error_key, job_item, job_key
from app.storage.dynamodb.notifications import notification_item, notification_key, reminder_item, reminder_key
from app.storage.dynamodb.sessions import (
    denied_item,
    denied_key,
    family_item,
    family_key,
    token_item,
    token_key,
)
from app.storage.dynamodb.subscribers import (
    imsi_claim_key,
    msisdn_claim_key,
    subscriber_item,
    subscriber_key,
)
from app.storage.dynamodb.table import TRANSACTION_LIMIT, DynamoTable, deserialize, key, serialize, serialize_values
from app.storage.dynamodb.users import user_item, user_key
from app.storage.dynamodb.webhooks import (
    DELIVERY_PREFIX,
    FAILURES_SK,
    SUBSCRIPTION_SK,
    delivery_item,
    subscription_item,
    subscription_partition,
)
from app.storage.records import SubscriberRecord
from app.storage.transfer import (
    MODELS,
    Key,
    Refused,
    TransferRecord,
    busy_ledger,
    counter,
    denied_token,
    entity,
    idempotency_record,
    parse_time,
    slot,
)

# Items nothing is copied from: rebuilt from their owner on write, or short-lived.
_DERIVED_OR_TRANSIENT = ("MSISDN", "IMSI", "BOOKSTATUS", "THROTTLE")
# Phase 1 (state that refers to bookings) is read with a filter; phase 0 is everything else.
_PHASE_FILTER = "begins_with(PK, :idempotency) OR begins_with(SK, :slot)"
_PHASE_VALUES = {":idempotency": "IDEMPOTENCY#", ":slot": "SLOT#"}
_PHASE_1_PAGE = 1000


class _ClaimsRefused(StorageError):
    def __init__(self, codes: list[str]) -> None:
        super().__init__("claims refused")
        self.codes = codes


def _record(item: dict[str, Any]) -> TransferRecord | None:
    """The transfer record an item holds; None for derived or short-lived items."""
    pk, sk = str(item["PK"]), str(item["SK"])
    prefix, _, rest = pk.partition("#")
    if prefix in _DERIVED_OR_TRANSIENT:
        return None
    if prefix == "USER" and sk == "USER":
        return _entity("users", item)
    if prefix == "SUB" and sk == "SUBSCRIBER":
        return _entity("subscribers", item)
    if prefix == "RESOURCE" and sk == "RESOURCE":
        return _entity("resources", item)
    if prefix == "RESOURCE" and sk.startswith("SLOT#"):
        return slot(rest, sk.removeprefix("SLOT#"), int(item.get("booked", 0)))
    if prefix == "BOOKING" and sk == "BOOKING":
        return _entity("bookings", item)
    if prefix == "SUBBUSY":
        return busy_ledger(rest, sk, list(item.get("intervals", [])))
    if prefix == "IDEMPOTENCY":
        expires = parse_time(str(item["expires_at"]))
        return idempotency_record(rest, str(item["request_hash"]), str(item["booking_id"]), expires)
    if prefix == "JOB" and sk == "JOB":
        return _entity("jobs", item)
    if prefix == "JOB" and sk.startswith("ERR#"):
        return _entity("job_errors", item)
    if prefix == "AUDIT":
        return _entity("audit", item)
    if prefix == "EVENT":
        return _entity("events", item)
    if prefix == "COUNTER":
        return counter(rest, sk, int(item.get("n", 0)))
    if prefix == "RFAMILY":
        return _entity("token_families", item)
    if prefix == "RTOKEN":
        return _entity("refresh_tokens", item)
    if prefix == "NOTIFICATION" and sk == "NOTIFICATION":
        return _entity("notifications", item)
    if prefix == "REMINDER" and sk == "REMINDER":
        return _entity("reminders", item)
    if prefix == "DENY":
        return denied_token(rest, datetime.fromtimestamp(int(item["ttl"]), UTC))
    if prefix == "WEBHOOK" and sk == SUBSCRIPTION_SK:
        return _entity("webhooks", item)
    if prefix == "WEBHOOK" and sk.startswith(DELIVERY_PREFIX):
        return _entity("webhook_deliveries", item)
    if prefix == "WEBHOOK" and sk == FAILURES_SK:
        return None  # a run of failed deliveries: it starts again in the target
    raise StorageError(f"the copy does not know the item {pk} / {sk}; nothing was skipped silently")


def _entity(kind: str, item: dict[str, Any]) -> TransferRecord:
    return entity(kind, load(MODELS[kind], item))


def _items(record: TransferRecord) -> list[dict[str, Any]]:
    """The item(s) a record becomes (subscribers are written apart, with their claims)."""
    data, kind = record.data, record.kind
    if kind == "users":
        return [user_item(record.model())]
    if kind == "resources":
        return [resource_item(record.model())]
    if kind == "bookings":
        booking = record.model()
        return [booking_item(booking), status_item(booking)]
    if kind == "busy_ledgers":
        return [ledger_item(data["subscriber_uid"], data["day"], data["intervals"], version=1)]
    if kind == "jobs":
        return [job_item(record.model())]
    if kind == "job_errors":
        return [error_item(record.model())]
    if kind == "audit":
        return [audit_item(record.model())]
    if kind == "events":  # history: relayed by the source store already, never again by the target
        return [event_item(record.model(), pending=False)]
    if kind == "counters":
        return [counter_item(data["scope"], data["key"], data["n"])]
    if kind == "token_families":
        return [family_item(record.model())]
    if kind == "refresh_tokens":
        return [token_item(record.model())]
    if kind == "denied_tokens":
        return [denied_item(data["jti"], parse_time(data["expires_at"]))]
    if kind == "notifications":
        return [notification_item(record.model())]
    if kind == "reminders":
        return [reminder_item(record.model())]
    if kind == "slots":
        pk, sk = slot_key(data["resource_id"], parse_time(data["start"]))
        return [{"PK": pk, "SK": sk, "type": "slot", **data}]
    if kind == "webhooks":
        return [subscription_item(record.model())]
    if kind == "webhook_deliveries":
        return [delivery_item(record.model())]
    if kind == "idempotency_keys":
        stored = IdempotencyKey(data["key"], data["request_hash"], parse_time(data["expires_at"]))
        return [idempotency_item(stored, data["booking_id"])]
    raise ValueError(f"unknown kind {kind!r}")


# Where the record of each kind lives, from its identity (see transfer.IDENTITY).
_LOCATIONS: dict[str, Callable[[Key], tuple[str, str]]] = {
    "users": lambda k: user_key(k[0]),
    "subscribers": lambda k: subscriber_key(k[0]),
    "resources": lambda k: resource_key(k[0]),
    "bookings": lambda k: booking_key(k[0]),
    "busy_ledgers": lambda k: ledger_key(k[0], k[1]),
    "jobs": lambda k: job_key(k[0]),
    "job_errors": lambda k: error_key(k[0], int(k[1]), k[2]),
    "audit": lambda k: audit_key(k[0], k[1], parse_time(k[2]), k[3]),
    "events": lambda k: (f"EVENT#{k[0]}", k[1]),
    "counters": lambda k: counter_key(k[0], k[1]),
    "token_families": lambda k: family_key(k[0]),
    "refresh_tokens": lambda k: token_key(k[0]),
    "denied_tokens": lambda k: denied_key(k[0]),
    "notifications": lambda k: notification_key(k[0]),
    "reminders": lambda k: reminder_key(k[0]),
    "slots": lambda k: slot_key(k[0], parse_time(k[1])),
    "idempotency_keys": lambda k: idempotency_key(k[0]),
    "webhooks": lambda k: (subscription_partition(k[0]), SUBSCRIPTION_SK),
    "webhook_deliveries": lambda k: (subscription_partition(k[0]), DELIVERY_PREFIX + k[1]),
}


class DynamoTransfer:
    def __init__(self, table: DynamoTable) -> None:
        self.table = table

    def read(self, phase: int, position: str | None, limit: int) -> tuple[list[TransferRecord], str | None]:
        kwargs: dict[str, Any] = {
            "TableName": self.table.name,
            # Limit counts items read, not items kept: phase 1 keeps few (slots, idempotency keys), so
            # it reads larger pages rather than crossing the whole table 99 items at a time.
            "Limit": max(limit, _PHASE_1_PAGE) if phase else limit,
            "ConsistentRead": True,
            "FilterExpression": _PHASE_FILTER if phase else f"NOT ({_PHASE_FILTER})",
            "ExpressionAttributeValues": serialize_values(_PHASE_VALUES),
        }
        if position:
            kwargs["ExclusiveStartKey"] = json.loads(position)
        while True:
            response = self.table.call("scan", **kwargs)
            records = [r for raw in response.get("Items", []) if (r := _record(deserialize(raw))) is not None]
            last = response.get("LastEvaluatedKey")
            if records or not last:
                return records, json.dumps(last) if last else None
            kwargs["ExclusiveStartKey"] = last

    def write(self, records: list[TransferRecord]) -> list[Refused]:
        subscribers = [SubscriberRecord.model_validate(r.data) for r in records if r.kind == "subscribers"]
        self.table.batch_write(item for r in records if r.kind != "subscribers" for item in _items(r))
        if not subscribers:
            return []
        stored = {item["uid"]: item for item in self.table.get_many(subscriber_key(s.uid) for s in subscribers)}
        refused: list[Refused] = []
        group: list[tuple[SubscriberRecord, list[dict[str, Any]]]] = []
        for subscriber in subscribers:
            actions = _subscriber_writes(subscriber, stored.get(subscriber.uid))
            if sum(len(a) for _, a in group) + len(actions) > TRANSACTION_LIMIT:
                refused += self._write_subscribers(group)
                group = []
            group.append((subscriber, actions))
        return refused + self._write_subscribers(group)

    def _write_subscribers(self, group: list[tuple[SubscriberRecord, list[dict[str, Any]]]]) -> list[Refused]:
        """One transaction for the group. A claim held by another uid refuses its subscriber (the
        target holds other data); the rest of the group is sent again without it."""
        refused: list[Refused] = []
        while group:
            try:
                self.table.transact([a for _, actions in group for a in actions], on_cancel=_ClaimsRefused)
                return refused
            except _ClaimsRefused as exc:
                keep, offset = [], 0
                for subscriber, actions in group:
                    codes = exc.codes[offset : offset + len(actions)]
                    offset += len(actions)
                    if any(code == "ConditionalCheckFailed" for code in codes):
                        reason = "its msisdn or imsi is held by another subscriber in the target"
                        refused.append(Refused("subscribers", (subscriber.uid,), reason))
                    else:
                        keep.append((subscriber, actions))
                if len(keep) == len(group):
                    raise StorageError(f"subscriber transaction cancelled: {exc.codes}") from exc
                group = keep
        return refused

    def fetch(self, kind: str, keys: list[Key]) -> dict[Key, TransferRecord]:
        locate = _LOCATIONS[kind]
        found = (_record(item) for item in self.table.get_many(locate(k) for k in keys))
        return {record.key: record for record in found if record is not None and record.kind == kind}


def _subscriber_writes(subscriber: SubscriberRecord, stored: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The subscriber and its claims, which must be free or already its own (so a repeated copy
    passes). A copy made again after the source changed a number releases the old claim."""
    writes: list[dict[str, Any]] = [{"Put": {"Item": serialize(subscriber_item(subscriber))}}]
    owned = {"ConditionExpression": "attribute_not_exists(PK) OR #uid = :uid", **_uid_is(subscriber.uid)}
    for claim_key, old_value, value in (
        (msisdn_claim_key, (stored or {}).get("msisdn"), subscriber.msisdn),
        (imsi_claim_key, (stored or {}).get("imsi"), subscriber.imsi),
    ):
        pk, sk = claim_key(value)
        writes.append(
            {"Put": {"Item": serialize({"PK": pk, "SK": sk, "type": "claim", "uid": subscriber.uid}), **owned}}
        )
        if old_value and old_value != value:
            writes.append({"Delete": {"Key": key(*claim_key(old_value)), **owned}})
    return writes


def _uid_is(uid: str) -> dict[str, Any]:
    return {"ExpressionAttributeNames": {"#uid": "uid"}, "ExpressionAttributeValues": serialize_values({":uid": uid})}
