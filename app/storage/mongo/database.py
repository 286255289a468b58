"""MongoDB connection, collections and indexes (created idempotently at start)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import PyMongoError

from app.storage.base import CheckResult, Readiness

logger = logging.getLogger(__name__)

# collection -> indexes, each by name: a change of keys or options needs `migrate_indexes`.
# Unique indexes give the same atomic guarantees as DynamoDB's claim items.
INDEXES: dict[str, list[IndexModel]] = {
    "audit": [
        IndexModel([("entity_type", ASCENDING), ("entity_id", ASCENDING), ("order", DESCENDING)], name="by_entity"),
        IndexModel([("actor", ASCENDING), ("order", DESCENDING)], name="by_actor"),
        IndexModel([("order", DESCENDING)], name="by_time"),
        IndexModel([("expires_at", ASCENDING)], name="ttl", expireAfterSeconds=0),
    ],
    "counters": [IndexModel([("scope", ASCENDING), ("key", ASCENDING)], name="by_scope", unique=True)],
    "throttle": [IndexModel([("expires_at", ASCENDING)], name="ttl", expireAfterSeconds=0)],
    "users": [
        IndexModel([("_pending_audit", ASCENDING)], name="pending_audit", sparse=True),
        IndexModel([("_deleted", ASCENDING)], name="deleted", sparse=True),
    ],
    "refresh_tokens": [
        IndexModel([("family_id", ASCENDING)], name="by_family"),
        IndexModel([("username", ASCENDING)], name="by_username"),
        IndexModel([("expires_at", ASCENDING)], name="ttl", expireAfterSeconds=0),
    ],
    "token_families": [
        IndexModel([("username", ASCENDING)], name="by_username"),
        IndexModel([("expires_at", ASCENDING)], name="ttl", expireAfterSeconds=0),
    ],
    "subscribers": [
        IndexModel([("msisdn", ASCENDING)], name="msisdn_unique", unique=True),
        IndexModel([("imsi", ASCENDING)], name="imsi_unique", unique=True),
        IndexModel([("status", ASCENDING), ("_id", ASCENDING)], name="by_status"),
        IndexModel([("plan", ASCENDING), ("status", ASCENDING), ("_id", ASCENDING)], name="by_plan"),
        IndexModel([("email", ASCENDING), ("_id", ASCENDING)], name="by_email"),
        IndexModel([("_pending_audit", ASCENDING)], name="pending_audit", sparse=True),
        IndexModel([("_deleted", ASCENDING)], name="deleted", sparse=True),
    ],
    "resources": [
        IndexModel([("_pending_audit", ASCENDING)], name="pending_audit", sparse=True),
        IndexModel([("_deleted", ASCENDING)], name="deleted", sparse=True),
    ],
    "bookings": [
        IndexModel([("resource_id", ASCENDING), ("order", ASCENDING)], name="by_resource"),
        IndexModel([("subscriber_uid", ASCENDING), ("order", ASCENDING)], name="by_subscriber"),
        IndexModel([("status", ASCENDING), ("order", ASCENDING)], name="by_status"),
        # The Idempotency-Key is stored in the booking it created: key and booking are one write.
        IndexModel([("idempotency.key", ASCENDING)], name="idempotency_key", unique=True, sparse=True),
        IndexModel([("_pending_audit", ASCENDING)], name="pending_audit", sparse=True),
        IndexModel([("_deleted", ASCENDING)], name="deleted", sparse=True),
        IndexModel([("_claiming", ASCENDING)], name="claiming", sparse=True),
        IndexModel([("_moving.at", ASCENDING)], name="moving", sparse=True),
        IndexModel([("_releasing.start", ASCENDING)], name="releasing", sparse=True),
    ],
    "slots": [IndexModel([("resource_id", ASCENDING), ("start", ASCENDING)], name="by_resource_start")],
    "subscriber_busy": [IndexModel([("expires_at", ASCENDING)], name="ttl", expireAfterSeconds=0)],
    "denied_tokens": [IndexModel([("expires_at", ASCENDING)], name="ttl", expireAfterSeconds=0)],
    "jobs": [
        IndexModel([("_pending_audit", ASCENDING)], name="pending_audit", sparse=True),
        IndexModel([("_deleted", ASCENDING)], name="deleted", sparse=True),
        IndexModel([("status", ASCENDING), ("order", DESCENDING)], name="by_status"),
        IndexModel([("order", DESCENDING)], name="newest_first"),
    ],
    "job_errors": [IndexModel([("job_id", ASCENDING), ("_id", ASCENDING)], name="by_job")],
    "events": [
        IndexModel([("pending", ASCENDING), ("_id", ASCENDING)], name="outbox", sparse=True),
        IndexModel([("subject", ASCENDING), ("_id", ASCENDING)], name="by_subject"),
        IndexModel([("expires_at", ASCENDING)], name="ttl", expireAfterSeconds=0),
    ],
    "notifications": [IndexModel([("expires_at", ASCENDING)], name="ttl", expireAfterSeconds=0)],
    "reminders": [
        IndexModel([("due_at", ASCENDING), ("_id", ASCENDING)], name="by_due"),
        IndexModel([("expires_at", ASCENDING)], name="ttl", expireAfterSeconds=0),
    ],
    "webhooks": [
        IndexModel([("_pending_audit", ASCENDING)], name="pending_audit", sparse=True),
        IndexModel([("_deleted", ASCENDING)], name="deleted", sparse=True),
    ],
    "webhook_deliveries": [
        IndexModel([("subscription_id", ASCENDING), ("_id", DESCENDING)], name="by_subscription"),
        # Only pending deliveries carry `due`: the retry task's index holds nothing else.
        IndexModel([("due", ASCENDING), ("_id", ASCENDING)], name="due", sparse=True),
        IndexModel([("expires_at", ASCENDING)], name="ttl", expireAfterSeconds=0),
    ],
}
# Collections whose writes go through the audit outbox (see outbox.py).
AUDITED_COLLECTIONS = ("users", "subscribers", "resources", "bookings", "jobs", "webhooks")


# The options an index is compared on; any other difference is in its keys.
COMPARED_OPTIONS = ("unique", "sparse", "expireAfterSeconds")
BUILT_IN = "_id_"


def index_differences(db: Any) -> dict[str, dict[str, str]]:
    """collection -> index name -> how the server's index differs from INDEXES ("missing",
    "keys ...", "unique ...", or "not in the model" for an index INDEXES no longer names)."""
    differences: dict[str, dict[str, str]] = {}
    for collection, indexes in INDEXES.items():
        present = db[collection].index_information()
        found: dict[str, str] = {}
        for index in indexes:
            wanted = index.document
            have = present.get(wanted["name"])
            change = "missing" if have is None else _difference(wanted, have)
            if change:
                found[wanted["name"]] = change
        named = {index.document["name"] for index in indexes}
        found.update({name: "not in the model" for name in present if name not in named and name != BUILT_IN})
        if found:
            differences[collection] = found
    return differences


def _difference(wanted: Mapping[str, Any], have: Mapping[str, Any]) -> str:
    wanted_keys = [(field, int(direction)) for field, direction in wanted["key"].items()]
    have_keys = [(field, int(direction)) for field, direction in have["key"]]
    if wanted_keys != have_keys:
        return f"keys {have_keys} on the server, {wanted_keys} in the model"
    for option in COMPARED_OPTIONS:
        if wanted.get(option) != have.get(option):
            return f"{option} {have.get(option)!r} on the server, {wanted.get(option)!r} in the model"
    return ""


def ensure_indexes(db: Any) -> None:
    """Create the missing indexes. A changed one is left alone (the server would refuse to create
    it under its name: IndexOptionsConflict) and logged; readiness reports it until
    `migrate_indexes` (`portal migrate-indexes`) rebuilds it."""
    for collection, found in index_differences(db).items():
        missing = [index for index in INDEXES[collection] if found.get(index.document["name"]) == "missing"]
        if missing:
            db[collection].create_indexes(missing)
        for name, change in found.items():
            if change != "missing":
                logger.warning("index %s.%s differs from the model: %s", collection, name, change)


def migrate_indexes(db: Any) -> list[str]:
    """Rebuild every index that differs from INDEXES and drop those it no longer names; returns
    what was done, one line per index. A unique index is rebuilt only if the data allows it."""
    done: list[str] = []
    for collection, found in index_differences(db).items():
        for name, change in found.items():
            if change != "missing":
                db[collection].drop_index(name)
            model = [index for index in INDEXES[collection] if index.document["name"] == name]
            if model:
                db[collection].create_indexes(model)
            done.append(f"{collection}.{name}: {change} -> {'rebuilt' if model else 'dropped'}")
    return done


def readiness(db: Any) -> Readiness:
    result = Readiness(backend="mongo")
    try:
        db.command("ping")
        result.checks["server"] = CheckResult(True, "ping ok")
        differences = index_differences(db)
        for collection in INDEXES:
            found = differences.get(collection, {})
            detail = "; ".join(f"{name}: {change}" for name, change in sorted(found.items()))
            result.checks[f"indexes:{collection}"] = CheckResult(not found, detail or "ok")
    except PyMongoError as exc:
        result.checks["server"] = CheckResult(False, f"unreachable: {type(exc).__name__}")
    return result
