"""Records as stored: the shapes repositories accept and return, identical on both backends.

They are internal (API schemas live in each domain's `schemas.py`) and forbid unknown fields, so
a typo never silently persists.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


def record_fields(model: type[BaseModel], stored: Mapping[str, Any]) -> dict[str, Any]:
    """The model's fields among what a store returned, which also holds keys and bookkeeping."""
    return {name: stored[name] for name in model.model_fields if name in stored}


class DomainEvent(Record):
    """A change as published (`app.changefeed`): stored in the same atomic write as the change.

    `data` holds what the change's type documents (`app.changefeed.catalog`), unmasked; it is
    masked for each consumer by the role that consumer is granted when it leaves the store.
    """

    id: str = Field(description="Unique and time-ordered: consumers de-duplicate by it.")
    type: str = Field(description="e.g. subscriber.created, booking.cancelled")
    at: datetime
    subject: str = Field(description="What changed, as `<entity type>/<id>`: events of one subject are in order.")
    actor: str
    request_id: str | None = None
    data_version: int = 1
    data: dict[str, Any] = Field(default_factory=dict)
    expires_at: datetime | None = Field(None, description="Removed by the store's TTL after this time.")


class AuditEntry(Record):
    id: str
    at: datetime
    actor: str
    action: str = Field(description="e.g. subscriber.create, user.update, auth.login_failed")
    entity_type: str
    entity_id: str
    request_id: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    expires_at: datetime | None = Field(None, description="Removed by the store's TTL after this time.")
    events: list[DomainEvent] = Field(
        default_factory=list,
        exclude=True,
        description="The events this change publishes: written with it, never stored in the entry itself.",
    )


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"


class UserRecord(Record):
    username: str
    user_id: str = Field(
        description="Random and immutable, new for every user created: tokens and sessions carry it, so a "
        "deleted user's tokens never work for a later user of the same name.",
    )
    email: str | None = None
    full_name: str | None = None
    role: Role
    active: bool = True
    password_hash: str
    created_at: datetime
    updated_at: datetime
    password_changed_at: datetime
    failed_logins: int = 0
    locked_until: datetime | None = None
    token_generation: int = Field(
        0,
        description="Bumped on password change, disable and reset: tokens of older generations are refused.",
    )
    import_job_id: str | None = Field(None, description="The import job that created the user, if any.")
    version: int = 1

    @model_validator(mode="before")
    @classmethod
    def _id_of_a_user_stored_before_user_ids(cls, data: Any) -> Any:
        # Derived from what tells one user of a name from a later one, so it is the same at every read.
        if isinstance(data, dict) and "user_id" not in data and "username" in data and "created_at" in data:
            stamp = f"{data['username']}|{data['created_at']}".encode()
            data = {**data, "user_id": "u" + hashlib.sha256(stamp).hexdigest()[:31]}
        return data

    @property
    def is_active_admin(self) -> bool:
        return self.active and self.role is Role.ADMIN


class RefreshTokenRecord(Record):
    token_hash: str = Field(description="SHA-256 of the token; the token itself is never stored.")
    family_id: str
    username: str
    issued_at: datetime
    expires_at: datetime
    used_at: datetime | None = None


class TokenFamilyRecord(Record):
    """A login session: every refresh token rotated from one login shares the family."""

    family_id: str
    username: str
    user_id: str = Field("", description="The user's `user_id`; empty in sessions older than user ids (match no user).")
    token_generation: int
    created_at: datetime
    expires_at: datetime
    revoked: bool = False


class SubscriberStatus(StrEnum):
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"
    SUSPENDED = "SUSPENDED"
    TERMINATED = "TERMINATED"


class NotificationChannel(StrEnum):
    """How a subscriber is told about their bookings: email (SES) or SMS (SNS) to their msisdn."""

    EMAIL = "email"
    SMS = "sms"


class SubscriberRecord(Record):
    """A subscriber as stored. Values are already normalised (`app.subscribers.fields`)."""

    uid: str
    msisdn: str = Field(description="E.164, e.g. +447911123456; unique.")
    imsi: str = Field(description="15 digits; unique.")
    iccid: str | None = None
    email: str | None = Field(None, description="Lower-cased.")
    first_name: str
    last_name: str
    status: SubscriberStatus
    plan: str
    attributes: dict[str, str | int | float | bool] = Field(default_factory=dict)
    notifications_opt_out: bool = Field(False, description="The subscriber asked not to get booking messages.")
    notification_channel: NotificationChannel | None = Field(
        None, description="Preferred channel; None: the configured default (`NOTIFICATIONS_DEFAULT_CHANNEL`)."
    )
    created_at: datetime
    updated_at: datetime
    created_by: str
    updated_by: str
    version: int = 1
    import_job_id: str | None = Field(
        None, description="The import job that last wrote the subscriber (bookkeeping; never shown in the API)."
    )
    import_row: int | None = Field(None, description="Its row in that job's file: a batch redone after a crash.")


# Bookkeeping fields of a subscriber, left out of API output and history diffs.
SUBSCRIBER_BOOKKEEPING = frozenset({"import_job_id", "import_row"})


class JobType(StrEnum):
    IMPORT = "import"
    EXPORT = "export"
    DELETE = "delete"
    ROLLBACK = "rollback"


class JobStatus(StrEnum):
    PENDING = "PENDING"
    VALIDATING = "VALIDATING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    COMPLETED_WITH_ERRORS = "COMPLETED_WITH_ERRORS"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_ERRORS, JobStatus.FAILED, JobStatus.CANCELLED)


class JobCounts(Record):
    # Shown in every job the API returns, defaults included: required in the OpenAPI document.
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    total: int | None = None
    processed: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    deleted: int = 0
    failed: int = 0

    def plus(self, other: JobCounts) -> JobCounts:
        return JobCounts(
            total=self.total,
            processed=self.processed + other.processed,
            created=self.created + other.created,
            updated=self.updated + other.updated,
            skipped=self.skipped + other.skipped,
            deleted=self.deleted + other.deleted,
            failed=self.failed + other.failed,
        )


class JobRecord(Record):
    """A bulk job. Its row errors are separate records (`JobRowError`), never a list in here."""

    id: str
    type: JobType
    status: JobStatus = JobStatus.PENDING
    options: dict[str, Any] = Field(default_factory=dict)
    input_key: str | None = None
    input_received_at: datetime | None = None
    output_key: str | None = None
    counts: JobCounts = Field(default_factory=JobCounts)
    checkpoint: dict[str, Any] = Field(
        default_factory=dict, description="Where to resume: e.g. the last committed row, or a store cursor."
    )
    created_by: str
    created_by_id: str | None = Field(
        None, description="The creator's user id (None for the console): a re-created username is someone else."
    )
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None
    error_summary: str | None = None
    cancel_requested: bool = False
    lease_owner: str | None = None
    lease_until: datetime | None = None
    related_job_id: str | None = Field(None, description="For a rollback: the import it undoes.")
    attempts: int = Field(
        0, description="Runs in a row that ended on an unexpected error with no progress; at 3 the job fails."
    )
    version: int = 1

    @property
    def percent(self) -> float | None:
        if self.status.finished and self.status is not JobStatus.FAILED:
            return 100.0
        if not self.counts.total:
            return None
        return round(min(100.0, 100.0 * self.counts.processed / self.counts.total), 1)


class JobRowError(Record):
    job_id: str
    row: int
    field: str
    code: str
    message: str
    value: str | None = Field(None, description="The raw value as read (truncated), for the report.")


# --- bookings -----------------------------------------------------------------------------------------


class ResourceKind(StrEnum):
    STORE = "store"
    TECHNICIAN = "technician"
    AGENT = "agent"
    ROOM = "room"


class OpeningHours(Record):
    """One opening interval of a local day, `HH:MM` wall-clock times; `close` may be `24:00`."""

    open: str
    close: str


class ScheduleException(Record):
    """A date (local to the resource) that is closed, or has special hours instead of the weekly ones."""

    date: str = Field(description="YYYY-MM-DD, in the resource's time zone.")
    closed: bool = False
    hours: list[OpeningHours] = Field(default_factory=list)


class ResourceRecord(Record):
    id: str
    name: str
    kind: ResourceKind
    timezone: str = Field(description="IANA time zone name, e.g. Europe/London.")
    slot_minutes: int
    capacity: int
    weekly_schedule: dict[str, list[OpeningHours]] = Field(description="Keys mon..sun; a missing day is closed.")
    exceptions: list[ScheduleException] = Field(default_factory=list)
    active: bool = True
    created_by: str
    created_at: datetime
    updated_at: datetime
    version: int = 1
    bookings_revision: int = Field(
        0,
        description="Bumped by every booking made or moved on this resource, in the same atomic step; a schedule "
        "or capacity change is written only if it is unchanged, so no booking slips in between its check and write.",
    )


@dataclass(frozen=True)
class BookingRelease:
    """What a booking gives back when its status changes: its busy time, its seat, its count."""

    time: bool
    seat: bool
    count: bool

    @property
    def anything(self) -> bool:
        return self.time or self.seat or self.count


class BookingStatus(StrEnum):
    """A booking's status: CONFIRMED until it is cancelled, or marked COMPLETED or NO_SHOW."""

    # The lifecycle's rules are the properties below: services and both backends ask them and never
    # name a status, so a new status is its member and its answers here.

    CONFIRMED = "CONFIRMED"
    CANCELLED = "CANCELLED"
    COMPLETED = "COMPLETED"
    NO_SHOW = "NO_SHOW"

    @property
    def open(self) -> bool:
        """Still to take place: it may be moved, cancelled or marked, a schedule change must not strand
        it, and its subscriber can't be deleted while it is in the future."""
        return self is BookingStatus.CONFIRMED

    @property
    def occupies_subscriber(self) -> bool:
        """Its time is in the subscriber's busy ledger: no other booking of theirs may overlap it."""
        return self is BookingStatus.CONFIRMED

    @property
    def holds_seat(self) -> bool:
        """It keeps its seat of the slot (a completed or missed booking used it)."""
        return self is not BookingStatus.CANCELLED

    @property
    def counted(self) -> bool:
        """It counts in the bookings per day and per resource and day (`bookings.day`, `bookings.resource`)."""
        return self is not BookingStatus.CANCELLED

    def release_to(self, new: BookingStatus) -> BookingRelease:
        """What a booking in this status gives back when it moves to `new`."""
        return BookingRelease(
            time=self.occupies_subscriber and not new.occupies_subscriber,
            seat=self.holds_seat and not new.holds_seat,
            count=self.counted and not new.counted,
        )


class BookingRecord(Record):
    id: str
    resource_id: str
    subscriber_uid: str
    start: datetime
    end: datetime
    local_date: str = Field(description="Date of the slot in the resource's time zone (YYYY-MM-DD): the counter key.")
    status: BookingStatus = BookingStatus.CONFIRMED
    notes: str | None = None
    created_by: str
    created_at: datetime
    updated_at: datetime
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    version: int = 1


# --- notifications ------------------------------------------------------------------------------------


class NotificationKind(StrEnum):
    """What a message to a subscriber is about (each has its templates in app/notifications/templates)."""

    CONFIRMATION = "confirmation"
    CHANGE = "change"
    CANCELLATION = "cancellation"
    REMINDER = "reminder"


class NotificationStatus(StrEnum):
    """CLAIMED while one worker holds it (until `lease_until`); then SENT, SKIPPED or FAILED for good."""

    CLAIMED = "CLAIMED"
    SENT = "SENT"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"

    @property
    def final(self) -> bool:
        return self is not NotificationStatus.CLAIMED


class NotificationRecord(Record):
    """One message to a subscriber, claimed before it is sent so that it is sent once.

    Its id is derived from the event that caused it and its kind (`<event id>-<kind>`): a second
    delivery of the same event finds the claim and sends nothing. No contact detail or message text
    is kept: only the channel and a masked destination, for support ("was it sent, where to?").
    """

    id: str
    kind: NotificationKind
    booking_id: str
    subscriber_uid: str
    event_id: str
    status: NotificationStatus = NotificationStatus.CLAIMED
    channel: NotificationChannel | None = None
    destination: str | None = Field(None, description="Masked address or number it was sent to.")
    reason: str | None = Field(None, description="Why it was skipped or failed, e.g. opted_out, not_active.")
    provider_id: str | None = Field(None, description="The SES/SNS message id, or the local file's name.")
    attempts: int = 1
    claimed_at: datetime
    lease_until: datetime = Field(description="A CLAIMED record may be claimed again after this (a crashed sender).")
    finished_at: datetime | None = None
    expires_at: datetime = Field(description="Removed by the store's TTL after this time.")


class ReminderTimer(Record):
    """A booking's pending reminder, stored by due time (never found by scanning bookings).

    One per booking: scheduling again replaces it, unless the stored one came from a later event
    (`event_id` is time-ordered), so a late duplicate of an old event can't bring back an old time.
    """

    booking_id: str
    due_at: datetime
    start: datetime = Field(description="The slot start it reminds of: checked against the booking at send time.")
    event_id: str = Field(description="The event that scheduled it (booking.confirmed or booking.rescheduled).")
    expires_at: datetime = Field(description="Removed by the store's TTL after this time (long after the slot).")


class WebhookSubscription(Record):
    """An integrator's webhook: where to send which events, masked as `role` sees them.

    The signing secret is not stored: `secret_salt` (random, new at creation and rotation) and the
    app's signing secret derive it (`app.webhooks.secrets`), so the store alone never reveals it.
    """

    id: str
    url: str
    event_types: list[str]
    description: str | None = None
    role: Role = Role.VIEWER
    active: bool = True
    secret_salt: str
    disabled_reason: str | None = Field(None, description="Why the service disabled it (repeated failure).")
    created_by: str
    created_at: datetime
    updated_at: datetime
    version: int = 1


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class WebhookDelivery(Record):
    """One event sent to one subscription: the same id, body and signature key on every attempt.

    `id` is the event's id (unique within its subscription), so a relayed event can create at most
    one delivery per subscription. `revision` moves on every write: writes are conditional on it.
    """

    id: str
    subscription_id: str
    event_id: str
    event_type: str
    payload: str = Field(description="The JSON body as sent (masked for the subscription's role).")
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    created_at: datetime
    next_attempt_at: datetime | None = Field(None, description="Set while pending: when it is due.")
    last_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    last_response: str | None = Field(None, description="The start of the receiver's last answer (at most 1 KB).")
    revision: int = 1
    expires_at: datetime | None = Field(None, description="Removed by the store's TTL after this time.")
