"""Every record model through each backend's codec: written in exactly the shape stored today (what
existing DynamoDB tables, local state files and MongoDB documents hold), read back from that shape,
and round-tripped with every optional field set and with every one left out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import bson
import pytest
from bson.codec_options import CodecOptions
from pydantic import BaseModel, ConfigDict

from app.storage.dynamodb import codec as dynamo_codec
from app.storage.dynamodb.audit import audit_item
from app.storage.dynamodb.bookings import booking_item, resource_item, status_item
from app.storage.dynamodb.events import event_item
from app.storage.dynamodb.jobs import error_item, job_item
from app.storage.dynamodb.notifications import notification_item, reminder_item
from app.storage.dynamodb.sessions import family_item, token_item
from app.storage.dynamodb.subscribers import subscriber_item
from app.storage.dynamodb.table import deserialize, serialize
from app.storage.dynamodb.users import user_item
from app.storage.dynamodb.webhooks import delivery_item, subscription_item
from app.storage.mongo import codec as mongo_codec
from app.storage.mongo.transfer import ENTITIES
from app.storage.records import JobCounts, OpeningHours, Record, ScheduleException
from app.storage.transfer import MODELS
from tests.storage.records_samples import AT, LATER, SAMPLES

AT_TEXT, LATER_TEXT = "2026-03-04T05:06:07.890000Z", "2026-03-05T06:07:08.900000Z"
AT_ORDER = "2026-03-04T05:06:07.890000Z"
USER_ID = "u0123456789abcdef0123456789abcde"
TOKEN = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
SCHEDULE = {"mon": [{"open": "09:00", "close": "12:00"}, {"open": "13:00", "close": "24:00"}]}
EXCEPTIONS = [
    {"date": "2026-12-25", "closed": True, "hours": []},
    {"date": "2026-12-24", "closed": False, "hours": [{"open": "09:00", "close": "13:00"}]},
]
COUNTS = {"total": 10, "processed": 10, "created": 6, "updated": 2, "skipped": 1, "deleted": 0, "failed": 1}
ATTRIBUTES = {"tier": "b", "limit": 5, "ratio": 0.25, "roaming": True}
EVENT_DATA = {"uid": "sub-1", "from_status": "ACTIVE", "to_status": "SUSPENDED", "subscriber": {"plan": "gold"}}

DYNAMO_WRITERS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "users": user_item,
    "token_families": family_item,
    "refresh_tokens": token_item,
    "subscribers": subscriber_item,
    "jobs": job_item,
    "job_errors": error_item,
    "audit": audit_item,
    "events": event_item,
    "resources": resource_item,
    "bookings": booking_item,
    "notifications": notification_item,
    "reminders": reminder_item,
    "webhooks": subscription_item,
    "webhook_deliveries": delivery_item,
}
_WEBHOOK_FIELDS = {
    "id": "wh-1",
    "url": "https://crm.example.com/hooks",
    "event_types": ["booking.confirmed", "user.locked"],
    "description": "CRM",
    "role": "admin",
    "active": False,
    "secret_salt": "c2FsdHNhbHRzYWx0c2FsdHNhbHQ",
    "disabled_reason": "5 deliveries in a row failed after every retry",
    "created_by": "ada",
}
_DELIVERY_FIELDS = {
    "id": "evt-1-wh-1",
    "subscription_id": "wh-1",
    "event_id": "evt-1",
    "event_type": "booking.confirmed",
    "payload": '{"id":"evt-1"}',
    "status": "pending",
    "attempts": 2,
}
_DELIVERY_OUTCOME = {"last_status_code": 503, "last_error": "answered HTTP 503", "last_response": "busy", "revision": 4}
_BOOKING_FIELDS = {
    "id": "bk-1",
    "resource_id": "store-1",
    "subscriber_uid": "sub-1",
    "start": AT_TEXT,
    "end": LATER_TEXT,
    "local_date": "2026-03-04",
    "status": "CANCELLED",
    "notes": "bring ID",
    "created_by": "ada",
    "created_at": AT_TEXT,
    "updated_at": LATER_TEXT,
    "cancelled_at": LATER_TEXT,
    "cancel_reason": "asked",
    "version": 2,
}
# The items of SAMPLES as DynamoDB holds them (written by the code before the codec).
TODAYS_ITEMS: dict[str, dict[str, Any]] = {
    "users": {
        "PK": "USER#ada",
        "SK": "USER",
        "GSI1PK": "USERS",
        "GSI1SK": "ada",
        "type": "user",
        "username": "ada",
        "user_id": USER_ID,
        "email": "ada@example.com",
        "full_name": "Ada Lovelace",
        "role": "admin",
        "active": False,
        "password_hash": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
        "created_at": AT_TEXT,
        "updated_at": LATER_TEXT,
        "password_changed_at": AT_TEXT,
        "failed_logins": 2,
        "locked_until": LATER_TEXT,
        "token_generation": 3,
        "import_job_id": "job-1",
        "version": 4,
    },
    "token_families": {
        "PK": "RFAMILY#fam-1",
        "SK": "RFAMILY",
        "GSI1PK": "USERSESSIONS#ada",
        "GSI1SK": "RFAMILY#fam-1",
        "type": "token_family",
        "ttl": 1772690828,
        "family_id": "fam-1",
        "username": "ada",
        "user_id": USER_ID,
        "token_generation": 3,
        "created_at": AT_TEXT,
        "expires_at": LATER_TEXT,
        "revoked": True,
    },
    "refresh_tokens": {
        "PK": f"RTOKEN#{TOKEN}",
        "SK": "RTOKEN",
        "GSI1PK": "USERSESSIONS#ada",
        "GSI1SK": f"RTOKEN#{TOKEN}",
        "type": "refresh_token",
        "ttl": 1772690828,
        "token_hash": TOKEN,
        "family_id": "fam-1",
        "username": "ada",
        "issued_at": AT_TEXT,
        "expires_at": LATER_TEXT,
        "used_at": LATER_TEXT,
    },
    "subscribers": {
        "PK": "SUB#sub-1",
        "SK": "SUBSCRIBER",
        "type": "subscriber",
        "GSI1PK": "SUBS#7",
        "GSI1SK": "sub-1",
        "GSI2PK": "SUBSTATUS#SUSPENDED#7",
        "GSI2SK": "sub-1",
        "GSI3PK": "SUBPLAN#gold#7",
        "GSI3SK": "SUSPENDED#sub-1",
        "GSI4PK": "SUBEMAIL#grace@example.com",
        "GSI4SK": "sub-1",
        "uid": "sub-1",
        "msisdn": "+447911123456",
        "imsi": "234150123456789",
        "iccid": "8944110012345678901",
        "email": "grace@example.com",
        "first_name": "Grace",
        "last_name": "Hopper",
        "status": "SUSPENDED",
        "plan": "gold",
        "attributes": ATTRIBUTES,
        "notifications_opt_out": True,
        "notification_channel": "sms",
        "created_at": AT_TEXT,
        "updated_at": LATER_TEXT,
        "created_by": "ada",
        "updated_by": "bob",
        "version": 2,
        "import_job_id": "job-1",
        "import_row": 17,
    },
    "jobs": {
        "PK": "JOB#job-1",
        "SK": "JOB",
        "item_type": "job",
        "cancel_requested": True,
        "id": "job-1",
        "type": "import",
        "status": "COMPLETED_WITH_ERRORS",
        "options": {"format": "csv", "delimiter": ";", "mapping": {"msisdn": "MSISDN"}},
        "input_key": "uploads/job-1/input.csv",
        "input_received_at": AT_TEXT,
        "output_key": "exports/job-1.csv",
        "counts": COUNTS,
        "checkpoint": {"row": 10, "batch_rows": 500},
        "created_by": "ada",
        "created_by_id": USER_ID,
        "created_at": AT_TEXT,
        "started_at": AT_TEXT,
        "finished_at": LATER_TEXT,
        "heartbeat_at": LATER_TEXT,
        "error_summary": "1 row failed",
        "related_job_id": "job-0",
        "attempts": 1,
        "version": 7,
        "GSI1PK": "JOBSTATUS#COMPLETED_WITH_ERRORS",
        "GSI1SK": f"{AT_ORDER}#job-1",
        "GSI2PK": "JOBS",
        "GSI2SK": f"{AT_ORDER}#job-1",
        "lease_owner": "worker-1",
        "lease_until": LATER_TEXT,
    },
    "job_errors": {
        "PK": "JOB#job-1",
        "SK": "ERR#000000000007#msisdn",
        "type": "job_error",
        "job_id": "job-1",
        "row": 7,
        "field": "msisdn",
        "code": "invalid",
        "message": "not E.164",
        "value": "0791112",
    },
    "audit": {
        "PK": "AUDIT#subscriber#sub-1",
        "SK": f"{AT_ORDER}#01HZX3V9K2",
        "GSI1PK": "AUDITACTOR#ada",
        "GSI1SK": f"{AT_ORDER}#01HZX3V9K2",
        "GSI2PK": "AUDITDAY#2026-03-04",
        "GSI2SK": f"{AT_ORDER}#01HZX3V9K2",
        "ttl": 1772690828,
        "type": "audit",
        "id": "01HZX3V9K2",
        "at": AT_TEXT,
        "actor": "ada",
        "action": "subscriber.update",
        "entity_type": "subscriber",
        "entity_id": "sub-1",
        "request_id": "req-1",
        "before": {"plan": "silver", "attributes": {"limit": 4}},
        "after": {"plan": "gold", "attributes": {"limit": 5}},
        "expires_at": LATER_TEXT,
    },
    "events": {
        "PK": "EVENT#subscriber/sub-1",
        "SK": "0189f0a1b2c3d4e5a1b2c3d4",
        "GSI1PK": "EVENTOUTBOX",
        "GSI1SK": "0189f0a1b2c3d4e5a1b2c3d4",
        "ttl": 1772690828,
        "item_type": "event",
        "id": "0189f0a1b2c3d4e5a1b2c3d4",
        "type": "subscriber.status_changed",
        "at": AT_TEXT,
        "subject": "subscriber/sub-1",
        "actor": "ada",
        "request_id": "req-1",
        "data_version": 1,
        "data": EVENT_DATA,
        "expires_at": LATER_TEXT,
    },
    "resources": {
        "PK": "RESOURCE#store-1",
        "SK": "RESOURCE",
        "GSI1PK": "RESOURCES",
        "GSI1SK": "store-1",
        "type": "resource",
        "id": "store-1",
        "name": "High Street",
        "kind": "store",
        "timezone": "Europe/London",
        "slot_minutes": 30,
        "capacity": 2,
        "weekly_schedule": SCHEDULE,
        "exceptions": EXCEPTIONS,
        "active": False,
        "created_by": "ada",
        "created_at": AT_TEXT,
        "updated_at": LATER_TEXT,
        "version": 3,
        "bookings_revision": 9,
    },
    "bookings": {
        "PK": "BOOKING#bk-1",
        "SK": "BOOKING",
        "GSI1PK": "RESBOOKINGS#store-1",
        "GSI1SK": f"{AT_ORDER}#bk-1",
        "GSI2PK": "SUBBOOKINGS#sub-1",
        "GSI2SK": f"{AT_ORDER}#bk-1",
        "type": "booking",
        **_BOOKING_FIELDS,
    },
    "notifications": {
        "PK": "NOTIFICATION#ev-1-confirmation",
        "SK": "NOTIFICATION",
        "type": "notification",
        "ttl": 1772690828,
        "id": "ev-1-confirmation",
        "kind": "confirmation",
        "booking_id": "bk-1",
        "subscriber_uid": "sub-1",
        "event_id": "ev-1",
        "status": "SENT",
        "channel": "email",
        "destination": "g***@example.com",
        "reason": "send_failed",
        "provider_id": "ses-1",
        "attempts": 2,
        "claimed_at": AT_TEXT,
        "lease_until": LATER_TEXT,
        "finished_at": LATER_TEXT,
        "expires_at": LATER_TEXT,
    },
    "reminders": {
        "PK": "REMINDER#bk-1",
        "SK": "REMINDER",
        "type": "reminder",
        "GSI1PK": "REMINDERDUE#0",
        "GSI1SK": f"{AT_ORDER}#bk-1",
        "ttl": 1772690828,
        "booking_id": "bk-1",
        "due_at": AT_TEXT,
        "start": LATER_TEXT,
        "event_id": "ev-1",
        "expires_at": LATER_TEXT,
    },
    "webhooks": {
        "PK": "WEBHOOK#wh-1",
        "SK": "WEBHOOK",
        "GSI1PK": "WEBHOOKS",
        "GSI1SK": "wh-1",
        "type": "webhook",
        **_WEBHOOK_FIELDS,
        "created_at": AT_TEXT,
        "updated_at": LATER_TEXT,
        "version": 3,
    },
    "webhook_deliveries": {
        "PK": "WEBHOOK#wh-1",
        "SK": "DELIVERY#evt-1-wh-1",
        "GSI2PK": "WEBHOOKDUE#3",
        "GSI2SK": f"{LATER_TEXT}#wh-1#evt-1-wh-1",
        "ttl": 1772690828,
        "type": "webhook_delivery",
        **_DELIVERY_FIELDS,
        "created_at": AT_TEXT,
        "next_attempt_at": LATER_TEXT,
        "last_attempt_at": AT_TEXT,
        **_DELIVERY_OUTCOME,
        "expires_at": LATER_TEXT,
    },
}
TODAYS_STATUS_ITEM = {"PK": "BOOKSTATUS#CANCELLED#2026-03", "SK": f"{AT_ORDER}#bk-1", "type": "booking_status"}

# The documents of SAMPLES as MongoDB holds them, in their field order (written before the codec).
TODAYS_DOCUMENTS: dict[str, dict[str, Any]] = {
    "users": {
        "user_id": USER_ID,
        "email": "ada@example.com",
        "full_name": "Ada Lovelace",
        "role": "admin",
        "active": False,
        "password_hash": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
        "created_at": AT,
        "updated_at": LATER,
        "password_changed_at": AT,
        "failed_logins": 2,
        "locked_until": LATER,
        "token_generation": 3,
        "import_job_id": "job-1",
        "version": 4,
        "_id": "ada",
    },
    "token_families": {
        "username": "ada",
        "user_id": USER_ID,
        "token_generation": 3,
        "created_at": AT,
        "expires_at": LATER,
        "revoked": True,
        "_id": "fam-1",
    },
    "refresh_tokens": {
        "family_id": "fam-1",
        "username": "ada",
        "issued_at": AT,
        "expires_at": LATER,
        "used_at": LATER,
        "_id": TOKEN,
    },
    "subscribers": {
        "msisdn": "+447911123456",
        "imsi": "234150123456789",
        "iccid": "8944110012345678901",
        "email": "grace@example.com",
        "first_name": "Grace",
        "last_name": "Hopper",
        "status": "SUSPENDED",
        "plan": "gold",
        "attributes": ATTRIBUTES,
        "notifications_opt_out": True,
        "notification_channel": "sms",
        "created_at": AT,
        "updated_at": LATER,
        "created_by": "ada",
        "updated_by": "bob",
        "version": 2,
        "import_job_id": "job-1",
        "import_row": 17,
        "_id": "sub-1",
    },
    "jobs": {
        "type": "import",
        "status": "COMPLETED_WITH_ERRORS",
        "options": {"format": "csv", "delimiter": ";", "mapping": {"msisdn": "MSISDN"}},
        "input_key": "uploads/job-1/input.csv",
        "input_received_at": AT,
        "output_key": "exports/job-1.csv",
        "counts": COUNTS,
        "checkpoint": {"row": 10, "batch_rows": 500},
        "created_by": "ada",
        "created_by_id": USER_ID,
        "created_at": AT,
        "started_at": AT,
        "finished_at": LATER,
        "heartbeat_at": LATER,
        "error_summary": "1 row failed",
        "related_job_id": "job-0",
        "attempts": 1,
        "version": 7,
        "_id": "job-1",
        "order": f"{AT_ORDER}#job-1",
        "cancel_requested": True,
        "lease_owner": "worker-1",
        "lease_until": LATER,
    },
    "job_errors": {
        "_id": "job-1:000000000007:msisdn",
        "job_id": "job-1",
        "row": 7,
        "field": "msisdn",
        "code": "invalid",
        "message": "not E.164",
        "value": "0791112",
    },
    "audit": {
        "at": AT,
        "actor": "ada",
        "action": "subscriber.update",
        "entity_type": "subscriber",
        "entity_id": "sub-1",
        "request_id": "req-1",
        "before": {"plan": "silver", "attributes": {"limit": 4}},
        "after": {"plan": "gold", "attributes": {"limit": 5}},
        "expires_at": LATER,
        "_id": "01HZX3V9K2",
        "order": f"{AT_ORDER}#01HZX3V9K2",
    },
    "events": {
        "type": "subscriber.status_changed",
        "at": AT,
        "subject": "subscriber/sub-1",
        "actor": "ada",
        "request_id": "req-1",
        "data_version": 1,
        "data": EVENT_DATA,
        "expires_at": LATER,
        "_id": "0189f0a1b2c3d4e5a1b2c3d4",
    },
    "resources": {
        "name": "High Street",
        "kind": "store",
        "timezone": "Europe/London",
        "slot_minutes": 30,
        "capacity": 2,
        "weekly_schedule": SCHEDULE,
        "exceptions": EXCEPTIONS,
        "active": False,
        "created_by": "ada",
        "created_at": AT,
        "updated_at": LATER,
        "version": 3,
        "bookings_revision": 9,
        "_id": "store-1",
    },
    "bookings": {
        "resource_id": "store-1",
        "subscriber_uid": "sub-1",
        "start": AT,
        "end": LATER,
        "local_date": "2026-03-04",
        "status": "CANCELLED",
        "notes": "bring ID",
        "created_by": "ada",
        "created_at": AT,
        "updated_at": LATER,
        "cancelled_at": LATER,
        "cancel_reason": "asked",
        "version": 2,
        "_id": "bk-1",
        "order": f"{AT_ORDER}#bk-1",
    },
    "notifications": {
        "kind": "confirmation",
        "booking_id": "bk-1",
        "subscriber_uid": "sub-1",
        "event_id": "ev-1",
        "status": "SENT",
        "channel": "email",
        "destination": "g***@example.com",
        "reason": "send_failed",
        "provider_id": "ses-1",
        "attempts": 2,
        "claimed_at": AT,
        "lease_until": LATER,
        "finished_at": LATER,
        "expires_at": LATER,
        "_id": "ev-1-confirmation",
    },
    "reminders": {"due_at": AT, "start": LATER, "event_id": "ev-1", "expires_at": LATER, "_id": "bk-1"},
    "webhooks": {
        **{name: value for name, value in _WEBHOOK_FIELDS.items() if name != "id"},
        "created_at": AT,
        "updated_at": LATER,
        "version": 3,
        "_id": "wh-1",
    },
    "webhook_deliveries": {
        "_id": "wh-1:evt-1-wh-1",
        **_DELIVERY_FIELDS,
        "created_at": AT,
        "next_attempt_at": LATER,
        "last_attempt_at": AT,
        **_DELIVERY_OUTCOME,
        "expires_at": LATER,
        "due": LATER,
    },
}
KINDS = list(SAMPLES)
_TZ_AWARE: CodecOptions[Any] = CodecOptions(tz_aware=True)


def without_optionals(record: Record) -> Record:
    """The record with every field that may be None left None (stores drop or keep them as null)."""
    return record.model_copy(
        update={name: None for name, field in type(record).model_fields.items() if field.default is None}
    )


def through_dynamodb(item: dict[str, Any]) -> dict[str, Any]:
    return deserialize(serialize(item))


def through_bson(document: dict[str, Any], options: CodecOptions[Any] = _TZ_AWARE) -> dict[str, Any]:
    return dict(bson.decode(bson.encode(document), codec_options=options))


def _subclasses(model: type[Record]) -> set[type[Record]]:
    direct = set(model.__subclasses__())
    return direct.union(*(_subclasses(sub) for sub in direct))


def test_the_samples_cover_every_stored_record_model() -> None:
    nested = {JobCounts, OpeningHours, ScheduleException}  # stored inside another record only
    assert _subclasses(Record) - nested == set(MODELS.values())
    assert {kind: type(record) for kind, record in SAMPLES.items()} == MODELS


@pytest.mark.parametrize("kind", KINDS)
def test_dynamodb_writes_the_items_stored_today(kind: str) -> None:
    assert serialize(DYNAMO_WRITERS[kind](SAMPLES[kind])) == serialize(TODAYS_ITEMS[kind])


def test_dynamodb_writes_the_booking_status_item_stored_today() -> None:
    expected = {**TODAYS_STATUS_ITEM, **_BOOKING_FIELDS}
    assert serialize(status_item(SAMPLES["bookings"])) == serialize(expected)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", KINDS)
def test_dynamodb_reads_the_items_stored_today(kind: str) -> None:
    assert dynamo_codec.load(MODELS[kind], through_dynamodb(TODAYS_ITEMS[kind])) == SAMPLES[kind]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", [lambda record: record, without_optionals], ids=["full", "bare"])
def test_dynamodb_round_trip(kind: str, shape: Callable[[Record], Record]) -> None:
    record = shape(SAMPLES[kind])
    assert dynamo_codec.load(MODELS[kind], through_dynamodb(DYNAMO_WRITERS[kind](record))) == record


@pytest.mark.parametrize("kind", KINDS)
def test_mongodb_writes_the_documents_stored_today(kind: str) -> None:
    """Byte for byte: the same fields, in the same order, with the same BSON types."""
    written = ENTITIES[kind].document(SAMPLES[kind])
    assert bson.encode(written) == bson.encode(TODAYS_DOCUMENTS[kind])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("tz_aware", [True, False], ids=["aware-client", "naive-client"])
def test_mongodb_reads_the_documents_stored_today(kind: str, tz_aware: bool) -> None:
    stored = through_bson(TODAYS_DOCUMENTS[kind], CodecOptions(tz_aware=tz_aware))
    assert ENTITIES[kind].record(stored) == SAMPLES[kind]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", [lambda record: record, without_optionals], ids=["full", "bare"])
def test_mongodb_round_trip(kind: str, shape: Callable[[Record], Record]) -> None:
    record = shape(SAMPLES[kind])
    assert ENTITIES[kind].record(through_bson(ENTITIES[kind].document(record))) == record


class _WithDates(BaseModel):
    """A model with field types no record has yet: the codecs find them from the annotations."""

    model_config = ConfigDict(extra="forbid")

    key: str
    tariff_end_date: date
    renewed_at: datetime | None = None
    history: dict[str, datetime] = {}


def test_a_new_date_or_datetime_field_needs_no_codec_change() -> None:
    record = _WithDates(key="k", tariff_end_date=date(2027, 1, 31), renewed_at=AT, history={"a": AT})
    stored = mongo_codec.document(record, "key")
    assert (stored["tariff_end_date"], stored["renewed_at"]) == ("2027-01-31", AT)  # BSON has no date type
    assert stored["history"] == {"a": AT_TEXT}  # only fields typed datetime are BSON dates
    assert mongo_codec.load(_WithDates, through_bson(stored), "key") == record
    assert dynamo_codec.load(_WithDates, through_dynamodb(dynamo_codec.dump(record))) == record
