"""MongoDB connection, collections and indexes (created idempotently at start)."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import PyMongoError

from app.storage.base import CheckResult, Readiness

# collection -> indexes. Unique indexes give the same atomic guarantees as DynamoDB's claim items.
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
        IndexModel([("status", ASCENDING), ("order", DESCENDING)], name="by_status"),
        IndexModel([("order", DESCENDING)], name="newest_first"),
    ],
    "job_errors": [IndexModel([("job_id", ASCENDING), ("_id", ASCENDING)], name="by_job")],
}
# Collections whose writes go through the audit outbox (see outbox.py).
AUDITED_COLLECTIONS = ("users", "subscribers", "resources", "bookings")


def ensure_indexes(db: Any) -> None:
    for collection, indexes in INDEXES.items():
        db[collection].create_indexes(indexes)


def readiness(db: Any) -> Readiness:
    result = Readiness(backend="mongo")
    try:
        db.command("ping")
        result.checks["server"] = CheckResult(True, "ping ok")
        for collection, indexes in INDEXES.items():
            present = set(db[collection].index_information())
            missing = sorted(index.document["name"] for index in indexes if index.document["name"] not in present)
            result.checks[f"indexes:{collection}"] = CheckResult(not missing, f"missing {missing}" if missing else "ok")
    except PyMongoError as exc:
        result.checks["server"] = CheckResult(False, f"unreachable: {type(exc).__name__}")
    return result
