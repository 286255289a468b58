"""Builders and raw-store inspection shared by the subscriber tests (contract suite and API tests)."""

from __future__ import annotations

import itertools
import uuid
from datetime import timedelta
from typing import Any

from app.storage.base import Store
from app.storage.dynamodb.store import DynamoStore
from app.storage.mongo.store import MongoStore
from app.storage.records import AuditEntry, SubscriberRecord
from app.subscribers.fields import luhn_valid
from app.timeutil import utcnow


def msisdn(n: int) -> str:
    """Valid UK mobile numbers (+44 7911 ...)."""
    return f"+4479111{n:05d}"


def imsi(n: int) -> str:
    return f"23415{n:010d}"


def iccid(n: int) -> str:
    """19 digits with a correct Luhn check digit."""
    body = f"894411{n:012d}"
    return next(body + digit for digit in "0123456789" if luhn_valid(body + digit))


def _fields(n: int) -> dict[str, Any]:
    """Subscriber n's own fields, as both the API body and the stored record carry them."""
    return {
        "uid": f"sub-{n:04d}",
        "msisdn": msisdn(n),
        "imsi": imsi(n),
        "iccid": iccid(n),
        "email": f"person{n}@example.com",
        "first_name": "Jane",
        "last_name": f"Doe {n}",
        "status": "ACTIVE",
        "plan": "GOLD",
    }


def record(n: int, **overrides: Any) -> SubscriberRecord:
    now = utcnow()
    values: dict[str, Any] = {
        **_fields(n),
        "attributes": {"tier": "gold", "roaming": True, "limit": 50, "ratio": 1.5},
        "created_at": now,
        "updated_at": now,
        "created_by": "tester",
        "updated_by": "tester",
        "version": 1,
    }
    values.update(overrides)
    return SubscriberRecord.model_validate(values)


_audit_clock = itertools.count()


def audit_for(subscriber: SubscriberRecord, action: str = "subscriber.create") -> AuditEntry:
    """An entry 1 ms after the previous one, so history order is defined even for fast tests."""
    return AuditEntry(
        id=uuid.uuid4().hex,
        at=utcnow() + timedelta(milliseconds=next(_audit_clock)),
        actor="tester",
        action=action,
        entity_type="subscriber",
        entity_id=subscriber.uid,
        after={"status": subscriber.status.value},
    )


def body(n: int, **overrides: Any) -> dict[str, Any]:
    """A valid API body for POST /subscribers."""
    values: dict[str, Any] = {**_fields(n), "attributes": {"tier": "gold", "roaming": True}}
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not ...}


# --- raw store ------------------------------------------------------------------------------------


def raw_snapshot(store: Store) -> Any:
    """Everything the store holds, in a comparable form: to prove a refused request wrote nothing."""
    match store:
        case DynamoStore():
            return sorted(store.table.scan_all(), key=lambda item: (item["PK"], item["SK"]))
        case MongoStore():
            return {
                name: sorted(store.db[name].find(), key=lambda doc: str(doc["_id"]))
                for name in ("subscribers", "audit", "counters")
            }
    raise _unknown(store)


def assert_consistent(store: Store) -> None:
    """Claims (DynamoDB) or documents (MongoDB) match the subscribers exactly; counters match the data."""
    match store:
        case DynamoStore():
            items = list(store.table.scan_all())
            subscribers = [item for item in items if item.get("type") == "subscriber"]
            claims = {item["PK"]: item["uid"] for item in items if item.get("type") == "claim"}
            expected = {f"MSISDN#{s['msisdn']}": s["uid"] for s in subscribers} | {
                f"IMSI#{s['imsi']}": s["uid"] for s in subscribers
            }
            assert claims == expected, "orphan or missing claims"
        case MongoStore():
            collection = store.db["subscribers"]
            leftovers = list(collection.find({"$or": [{"_pending_audit": {"$exists": True}}, {"_deleted": True}]}))
            assert leftovers == [], "unfinished outbox writes"
            documents = list(collection.find())
            assert len({d["msisdn"] for d in documents}) == len(documents)
            assert len({d["imsi"] for d in documents}) == len(documents)
        case _:
            raise _unknown(store)
    assert store.subscribers.reconcile_counters(fix=False) == [], "counters drifted from the data"


def _unknown(store: Store) -> TypeError:
    return TypeError(f"no raw view of a {store.backend!r} store: teach tests/subscribers/support.py its layout")


def subscriber_count(store: Store) -> int:
    return sum(store.counters.get("subscribers.status").values())


def counts(store: Store, scope: str) -> dict[str, int]:
    """A scope's counters without the zeros left behind by counts that went back down."""
    return {name: value for name, value in store.counters.get(scope).items() if value}
