"""Repository protocols, shared records and the storage errors both backends raise.

Nothing above `app.storage` imports boto3 or pymongo (the one other AWS home is `app.aws`;
tests/test_layers.py checks both): services talk to a `Store`, whose repositories are implemented
once for DynamoDB and once for MongoDB and proven equal by the contract suite in `tests/storage`.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from app.changefeed.catalog import DEFAULT_RETENTION_DAYS
from app.storage.records import (
    AuditEntry,
    BookingRecord,
    BookingStatus,
    DomainEvent,
    JobRecord,
    JobRowError,
    JobStatus,
    JobType,
    NotificationRecord,
    NotificationStatus,
    RefreshTokenRecord,
    ReminderTimer,
    ResourceRecord,
    SubscriberRecord,
    SubscriberStatus,
    TokenFamilyRecord,
    UserRecord,
    WebhookDelivery,
    WebhookSubscription,
)

if TYPE_CHECKING:  # importing uses the counters, which use this module
    from app.storage.importing import ImportMode, ImportOutcome, ImportRow
    from app.storage.transfer import StoreTransfer

T = TypeVar("T")


# --- errors -------------------------------------------------------------------------------------------


class StorageError(Exception):
    """Base of every error the storage layer raises on purpose: a fact about the store, worded for
    people. It names stored things (records, attributes), never the API's fields or HTTP statuses:
    what a fact means to a caller is the service's to say (`app.errors.meaning_of` by default)."""


class RecordMissing(StorageError):
    """The record (or file) is not stored, or no longer."""


class StaleVersion(StorageError):
    """The stored record is not at the version the caller read; nothing was written."""


class ResourceChanged(StaleVersion):
    """A booking write found its resource changed (or deactivated, or deleted) since it was read."""


class ConditionFailed(StorageError):
    """A uniqueness claim, capacity or state condition did not hold; nothing was written."""


class ValueTaken(ConditionFailed):
    """A unique stored attribute (a key, msisdn, imsi, username) already holds this value."""

    def __init__(self, message: str, *, attribute: str) -> None:
        super().__init__(message)
        self.attribute = attribute


def missing_or_stale(entity: str, identifier: str, stored: object | None) -> RecordMissing | StaleVersion:
    """Why a write conditional on the version read failed, from what is stored now: gone, or changed since."""
    if stored is None:
        return RecordMissing(f"{entity} {identifier!r} not found")
    return StaleVersion(f"{entity} {identifier!r} was changed by someone else; reload it")


class SlotFull(ConditionFailed):
    """Every seat of the slot is taken."""


class OverlappingBooking(ConditionFailed):
    """The subscriber already holds a confirmed booking overlapping this time."""


class BookingsChanged(ConditionFailed):
    """A booking was made or moved on the resource since it was read; re-check and retry."""


class IdempotencyKeyTaken(ConditionFailed):
    """Another request with this Idempotency-Key was stored first (or is still in flight)."""


class CursorRejected(StorageError):
    """The cursor does not decode to a position of this query (malformed, edited, or another query's)."""

    def __init__(self, message: str = "cursor is malformed, tampered with or from another query") -> None:
        super().__init__(message)


class StoreUnavailable(StorageError):
    """The store is unreachable, or kept refusing (throttling, contention)."""


class BlobTooLarge(StorageError):
    """A file stream went past its size limit; nothing was stored."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the file exceeds {limit} bytes")


# --- results ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None = None


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str


@dataclass(frozen=True)
class CounterDrift:
    """A counter whose stored value differs from the count recomputed from the data."""

    scope: str
    key: str
    stored: int
    actual: int


@dataclass
class Readiness:
    backend: str
    checks: dict[str, CheckResult] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks.values())


# --- repositories -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditQuery:
    """Filters of the audit log; `entity_id` needs `entity_type`. Times are inclusive bounds."""

    since: datetime
    until: datetime
    entity_type: str | None = None
    entity_id: str | None = None
    actor: str | None = None
    window: str = ""  # the window as the caller gave it; empty for a default window

    @property
    def scope(self) -> str:
        """Binds a cursor to the caller's filters. A default window ('the last 7 days') moves with the
        clock between pages, so it is not part of the binding; the keyset position keeps pages disjoint."""
        return f"audit|{self.entity_type}|{self.entity_id}|{self.actor}|{self.window}"


class AuditRepository(Protocol):
    """Reads never return an entry past its `expires_at` (the retention), deleted by the store's TTL or not yet."""

    def append(self, entry: AuditEntry) -> None: ...

    def list_for_entity(
        self, entity_type: str, entity_id: str, *, limit: int, cursor: str | None = None
    ) -> Page[AuditEntry]: ...

    def search(self, query: AuditQuery, *, limit: int, cursor: str | None = None) -> Page[AuditEntry]:
        """Newest first. Served by the entity partition, the actor index, or day partitions."""
        ...


class EventRepository(Protocol):
    """Domain events, written by the other repositories in the atomic write of their change."""

    def pending(self, *, limit: int, before: datetime | None = None) -> list[DomainEvent]:
        """Events not yet relayed, oldest first; with `before`, only those that happened before it."""
        ...

    def mark_relayed(self, events: Iterable[DomainEvent]) -> None:
        """Out of the outbox (they stay readable until the event retention ends)."""
        ...

    def list_for_subject(self, subject: str, *, limit: int) -> list[DomainEvent]:
        """One subject's events, oldest first (pending or relayed)."""
        ...


class NotificationRepository(Protocol):
    """Claims of messages to subscribers: a message is sent by whoever creates its claim."""

    def claim(self, notification: NotificationRecord, *, now: datetime) -> NotificationRecord | None:
        """Create the claim (CLAIMED, attempts 1); or take over a CLAIMED one whose lease ended
        before `now` (attempts + 1, the lease of `notification`). None if it is held or final."""
        ...

    def get(self, notification_id: str) -> NotificationRecord | None: ...

    def finish(
        self,
        claimed: NotificationRecord,
        status: NotificationStatus,
        *,
        now: datetime,
        channel: str | None = None,
        destination: str | None = None,
        reason: str | None = None,
        provider_id: str | None = None,
    ) -> None:
        """Record the outcome of a claim (SENT, SKIPPED, FAILED); nothing when it is final already."""
        ...

    def release(self, claimed: NotificationRecord, *, now: datetime, reason: str) -> None:
        """Give a CLAIMED record back (a send failed and may be tried again): claimable from `now`."""
        ...


# DynamoDB partitions of the reminder index: timers spread over them by booking id.
REMINDER_SHARDS = 4


class ReminderRepository(Protocol):
    """Reminder timers, one per booking, read by due time (never by scanning bookings)."""

    def schedule(self, timer: ReminderTimer) -> bool:
        """Store the booking's timer in place of its current one, unless that one came from the same
        or a later event (then nothing changes and the answer is False)."""
        ...

    def cancel(self, booking_id: str, *, event_id: str) -> None:
        """Remove the booking's timer if it came from an event before `event_id`."""
        ...

    def get(self, booking_id: str) -> ReminderTimer | None: ...

    def due(self, now: datetime, *, limit: int) -> list[ReminderTimer]:
        """Timers due at or before `now`, earliest first (at most `limit`)."""
        ...

    def remove(self, timer: ReminderTimer) -> None:
        """Remove this timer, if the booking's timer is still this one (same event)."""
        ...


class CounterRepository(Protocol):
    def increment(self, scope: str, deltas: dict[str, int]) -> None:
        """Atomically add each delta to the named counter of `scope` (e.g. scope=subscribers.status)."""
        ...

    def get(self, scope: str) -> dict[str, int]: ...

    def replace(self, scope: str, values: dict[str, int]) -> None:
        """Overwrite a scope's counters (used by reconciliation, never on the request path)."""
        ...

    def get_keys(self, scope: str, keys: list[str]) -> dict[str, int]:
        """The named counters of `scope` (0 for a counter never written): one read per key, not the scope."""
        ...


class ThrottleRepository(Protocol):
    def hit(self, key: str, window_seconds: int, *, now: datetime) -> int:
        """Count one hit for `key` in the current fixed window; return the count including this hit."""
        ...


class UserRepository(Protocol):
    """Users, keyed by username. Every change is written together with its audit entry.

    The number of active admins is kept as a counter updated in the same atomic step as the user,
    so "the last active admin can't be removed" holds under concurrency.
    """

    def create(self, user: UserRecord, audit: AuditEntry) -> None:
        """ValueTaken(attribute='username') if the username exists."""
        ...

    def get(self, username: str) -> UserRecord | None: ...

    def list(self, *, limit: int, cursor: str | None = None) -> Page[UserRecord]:
        """Ordered by username."""
        ...

    def replace(self, current: UserRecord, updated: UserRecord, audit: AuditEntry) -> None:
        """Write `updated` (version = current.version + 1) if the stored version is still `current.version`.

        StaleVersion if it changed; ConditionFailed if it would leave no active admin.
        """
        ...

    def delete(self, current: UserRecord, audit: AuditEntry) -> None:
        """Same guards as `replace`; RecordMissing if already gone."""
        ...

    def record_login_failure(
        self, username: str, *, max_failures: int, lock_until: datetime, lock_audit: AuditEntry
    ) -> UserRecord | None:
        """Atomically count a failed login; lock the account when the count reaches `max_failures`,
        writing `lock_audit` (and its events) with the lock, and only then."""
        ...

    def record_login_success(self, username: str, *, new_password_hash: str | None) -> None:
        """Reset the failure count (and store an upgraded hash, if given)."""
        ...

    def count_active_admins(self) -> int: ...


class SessionRepository(Protocol):
    """Refresh-token families (one per login, i.e. sessions), rotated refresh tokens, and the
    deny-list of ended sessions whose access tokens may not have expired yet."""

    def start(self, family: TokenFamilyRecord, token: RefreshTokenRecord) -> None: ...

    def rotate(self, used_token_hash: str, new_token: RefreshTokenRecord, *, now: datetime) -> TokenFamilyRecord:
        """Mark the presented token used and store its successor, atomically.

        RecordMissing if the token is unknown or expired. ConditionFailed if it was already used (replay):
        the whole family is revoked before raising. ConditionFailed too if the family was revoked.
        """
        ...

    def find_token(self, token_hash: str) -> RefreshTokenRecord | None: ...

    def get_family(self, family_id: str) -> TokenFamilyRecord | None: ...

    def revoke_family(self, family_id: str) -> None: ...

    def delete_for_user(self, username: str) -> None:
        """Delete every family and refresh token of the user (when the user is deleted)."""
        ...

    def deny_session(self, family_id: str, until: datetime) -> None:
        """Deny-list the access tokens of a session until the last of them has expired (then the TTL removes it)."""
        ...

    def is_session_denied(self, family_id: str) -> bool: ...


JOB_STATUS_SCOPE = "jobs.status"


def job_outcome_counters(job: JobRecord) -> list[tuple[str, str]]:
    """(scope, key) counted when a job finishes: `jobs.finished.<day>` / `<hour>|<status>`, which the
    dashboard reads for the last 24 hours (two small scopes, never the job list)."""
    if not job.status.finished or job.finished_at is None:
        return []
    return [(f"jobs.finished.{job.finished_at.date().isoformat()}", f"{job.finished_at.hour:02d}|{job.status.value}")]


class JobRepository(Protocol):
    """Bulk jobs and their row errors. Job writes are optimistic (version); a lease keeps two
    workers (an SQS redelivery, the sweeper) from running one job at the same time."""

    def create(self, job: JobRecord) -> None: ...

    def get(self, job_id: str) -> JobRecord | None: ...

    def list_newest(
        self, *, status: JobStatus | None, job_type: JobType | None, limit: int, cursor: str | None = None
    ) -> Page[JobRecord]:
        """Newest first; by status from an index, never a scan."""
        ...

    def replace(self, current: JobRecord, updated: JobRecord, audit: AuditEntry | None = None) -> JobRecord:
        """Write `updated` as version current.version + 1; StaleVersion if the job changed.

        `audit` (a status change: the job's end) is written with it, and so are its events."""
        ...

    def claim(self, job_id: str, *, owner: str, now: datetime, lease_until: datetime) -> JobRecord | None:
        """Take (or renew) the job's lease if it is free, expired or already ours and the job is not
        finished; None otherwise. Does not change the version."""
        ...

    def request_cancel(self, job_id: str) -> JobRecord:
        """Flag an unfinished job for cancellation (the worker stops at its next batch boundary).
        RecordMissing, or ConditionFailed if it already finished. Does not change the version."""
        ...

    def add_errors(self, errors: list[JobRowError]) -> None:
        """Idempotent per (job, row, field): a batch processed again after a crash writes no duplicate."""
        ...

    def list_errors(self, job_id: str, *, limit: int, cursor: str | None = None) -> Page[JobRowError]:
        """In row order."""
        ...

    def list_unfinished(self, *, limit: int) -> list[JobRecord]:
        """PENDING, VALIDATING and RUNNING jobs (for the sweeper), from the status index."""


@dataclass(frozen=True)
class IdempotencyKey:
    """An `Idempotency-Key` as stored with the booking it created (scoped by the caller)."""

    key: str
    request_hash: str
    expires_at: datetime


@dataclass(frozen=True)
class StoredIdempotency:
    request_hash: str
    booking_id: str | None = None  # None while the first request is still in flight (MongoDB)


class ResourceRepository(Protocol):
    """Bookable resources and their per-slot seat counts. Every change is written with its audit entry."""

    def create(self, resource: ResourceRecord, audit: AuditEntry) -> None:
        """ValueTaken(attribute='id') if the id exists."""
        ...

    def get(self, resource_id: str) -> ResourceRecord | None: ...

    def list(self, *, limit: int, cursor: str | None = None) -> Page[ResourceRecord]:
        """Ordered by id."""
        ...

    def replace(self, current: ResourceRecord, updated: ResourceRecord, audit: AuditEntry) -> None:
        """Write `updated` (version + 1) if neither `version` nor `bookings_revision` changed since `current`.

        RecordMissing if gone, StaleVersion if the version changed, BookingsChanged if only bookings did.
        """
        ...

    def delete(self, current: ResourceRecord, audit: AuditEntry) -> None:
        """Same guards as `replace`."""
        ...

    def seats_taken(self, resource_id: str, start: datetime, end: datetime) -> dict[datetime, int]:
        """Seats taken per slot start in [start, end): reads only the slots inside the window."""
        ...


class BookingRepository(Protocol):
    """Bookings, with capacity, overlap and idempotency enforced atomically by the store.

    Every write also keeps the slot's seat count, the subscriber's busy intervals, the
    `bookings.day` / `bookings.resource` counters and the audit log in step with the booking.
    """

    def create(
        self,
        booking: BookingRecord,
        audit: AuditEntry,
        *,
        resource: ResourceRecord,
        idempotency: IdempotencyKey | None = None,
    ) -> None:
        """Store a CONFIRMED booking, taking one seat of its slot (capacity `resource.capacity`).

        SlotFull if no seat is left; OverlappingBooking if the subscriber holds an overlapping confirmed
        booking; ResourceChanged if the resource changed (or was deactivated/deleted) since `resource`
        was read; IdempotencyKeyTaken if the key is already stored. Nothing is written on any of these.
        """
        ...

    def get(self, booking_id: str) -> BookingRecord | None: ...

    def find_idempotency(self, key: str, now: datetime) -> StoredIdempotency | None:
        """The unexpired key, if stored."""
        ...

    def change_status(self, current: BookingRecord, updated: BookingRecord, audit: AuditEntry) -> None:
        """Move an open booking to another status (CANCELLED, COMPLETED, NO_SHOW), giving back in the same
        step what the new status no longer holds (`BookingStatus.release_to`: time, seat, count).

        StaleVersion if the booking changed since `current` was read; RecordMissing if it is gone.
        """
        ...

    def reschedule(
        self, current: BookingRecord, updated: BookingRecord, audit: AuditEntry, *, resource: ResourceRecord
    ) -> None:
        """Move a CONFIRMED booking to a new slot of the same resource: the new seat is taken and the old
        one freed in one step, or nothing changes (SlotFull, OverlappingBooking, ResourceChanged for the
        resource, StaleVersion or RecordMissing for the booking)."""
        ...

    def list_for_resource(
        self,
        resource_id: str,
        *,
        start_from: datetime | None,
        start_to: datetime | None,
        limit: int,
        cursor: str | None = None,
    ) -> Page[BookingRecord]:
        """By start time, then id."""
        ...

    def list_for_subscriber(
        self,
        subscriber_uid: str,
        *,
        start_from: datetime | None,
        start_to: datetime | None,
        limit: int,
        cursor: str | None = None,
    ) -> Page[BookingRecord]: ...

    def list_by_status(
        self, status: BookingStatus, *, start_from: datetime, start_to: datetime, limit: int, cursor: str | None = None
    ) -> Page[BookingRecord]: ...

    def future_confirmed_for_resource(self, resource_id: str, now: datetime) -> list[BookingRecord]:
        """Open bookings of the resource starting after `now` (for schedule-change checks)."""
        ...

    def has_future_confirmed(self, subscriber_uid: str, now: datetime) -> bool:
        """Whether the subscriber holds an open booking starting after `now` (subscriber delete guard)."""


SUBSCRIBER_STATUS_SCOPE = "subscribers.status"
SUBSCRIBER_PLAN_SCOPE = "subscribers.plan"


class SubscriberRepository(Protocol):
    """Subscribers, keyed by uid; msisdn and imsi are unique too.

    Every write is one atomic step together with its audit entry and the counters of subscribers
    by status (`subscribers.status`) and by plan (`subscribers.plan`). Uniqueness is enforced by
    the store (claim items in DynamoDB, unique indexes in MongoDB), never by reading first.
    Lists are ordered by uid, except a list filtered by plan alone, which is ordered by status,
    then uid (see docs/data-model.md).
    """

    def create(self, subscriber: SubscriberRecord, audit: AuditEntry) -> None:
        """ValueTaken(attribute='uid' | 'msisdn' | 'imsi') when taken; nothing is written then."""
        ...

    def get(self, uid: str) -> SubscriberRecord | None: ...

    def get_by_msisdn(self, msisdn: str) -> SubscriberRecord | None: ...

    def get_by_imsi(self, imsi: str) -> SubscriberRecord | None: ...

    def find_by_email(self, email: str, *, limit: int, cursor: str | None = None) -> Page[SubscriberRecord]:
        """Exact (lower-cased) address; several subscribers may share one. Ordered by uid."""
        ...

    def find_by_uid_prefix(self, prefix: str, *, limit: int, cursor: str | None = None) -> Page[SubscriberRecord]: ...

    def list(
        self,
        *,
        status: SubscriberStatus | None = None,
        plan: str | None = None,
        limit: int,
        cursor: str | None = None,
    ) -> Page[SubscriberRecord]: ...

    def replace(self, current: SubscriberRecord, updated: SubscriberRecord, audit: AuditEntry) -> None:
        """Write `updated` (its version must be current.version + 1) if the stored version is current.version.

        A changed msisdn or imsi releases the old value and claims the new one in the same step.
        RecordMissing if gone, StaleVersion if the version moved on, ValueTaken(attribute) if a new
        msisdn or imsi is taken.
        """
        ...

    def delete(self, current: SubscriberRecord, audit: AuditEntry) -> None:
        """Remove the subscriber (if still at current.version) and release its msisdn and imsi.

        RecordMissing if gone, StaleVersion if the version moved on.
        """
        ...

    def import_batch(
        self,
        rows: builtins.list[ImportRow],
        *,
        mode: ImportMode,
        job_id: str,
        dry_run: bool = False,
        between_writes: Callable[[], None] | None = None,
        event_retention_days: int = DEFAULT_RETENTION_DAYS,
    ) -> builtins.list[ImportOutcome]:
        """Write a batch of imported subscribers (uids, msisdns and imsis distinct within the batch).

        `between_writes` is called after each write request (the job's heartbeat); what it raises
        stops the batch there, with the requests made so far committed and the rest not written.

        One outcome per row, in any order: created, updated or failed (field + code: `exists`,
        `not_found`, `duplicate_in_file`, `changed_concurrently`). A failed row writes nothing;
        counters stay exact; no audit entry per row (the job has one), but each written row's
        events (`importing.row_events`) are written with it. Rows this job already wrote
        (same import_job_id and import_row) count again without a write, so a batch may be redone.
        With `dry_run`, only reads: the outcome each row would have.
        """
        ...

    def reconcile_counters(self, *, fix: bool) -> builtins.list[CounterDrift]:
        """Recount subscribers by status and plan (a maintenance scan, never on the request path).

        Returns every counter that differs from the data; with `fix`, overwrites them. Counters
        written concurrently with the recount may be reported as drift: run it in a quiet period.
        """
        ...


class WebhookRepository(Protocol):
    """Webhook subscriptions (written with their audit entry) and their deliveries.

    A subscription's deliveries are listed newest first (delivery ids are time-ordered event ids).
    Pending deliveries are also kept in a due index sorted by `next_attempt_at`, so the retry task
    reads only what is due, never the deliveries of every subscription.
    """

    def create(self, subscription: WebhookSubscription, audit: AuditEntry) -> None: ...

    def get(self, subscription_id: str) -> WebhookSubscription | None: ...

    def list(self, *, limit: int, cursor: str | None = None) -> Page[WebhookSubscription]:
        """Ordered by id."""
        ...

    def replace(self, current: WebhookSubscription, updated: WebhookSubscription, audit: AuditEntry) -> None:
        """Write `updated` as version current.version + 1; RecordMissing or StaleVersion otherwise."""
        ...

    def delete(self, current: WebhookSubscription, audit: AuditEntry) -> None:
        """Remove the subscription (if still at current.version) and its deliveries."""
        ...

    def count_failure(self, subscription_id: str) -> int:
        """Count one delivery that failed for good; returns the run of such failures since the
        last success or reset (atomic, and no versioned change of the subscription)."""
        ...

    def reset_failures(self, subscription_id: str) -> None:
        """End the run of failed deliveries (a delivery succeeded, or an admin re-enabled it)."""
        ...

    def create_delivery(self, delivery: WebhookDelivery) -> bool:
        """Store a new delivery; False (and nothing written) if that delivery id exists already."""
        ...

    def get_delivery(self, subscription_id: str, delivery_id: str) -> WebhookDelivery | None: ...

    def list_deliveries(self, subscription_id: str, *, limit: int, cursor: str | None = None) -> Page[WebhookDelivery]:
        """Newest first."""
        ...

    def replace_delivery(self, current: WebhookDelivery, updated: WebhookDelivery) -> None:
        """Write `updated` (revision = current.revision + 1) if the stored revision is still current's;
        StaleVersion if another writer got there first, RecordMissing if it is gone."""
        ...

    def due_deliveries(self, now: datetime, *, limit: int) -> builtins.list[WebhookDelivery]:
        """Pending deliveries whose `next_attempt_at` is at or before `now`, earliest first."""
        ...


class Store(Protocol):
    """Every repository of one backend, created once per process."""

    backend: str

    @property
    def audit(self) -> AuditRepository: ...

    @property
    def counters(self) -> CounterRepository: ...

    @property
    def events(self) -> EventRepository: ...

    @property
    def throttle(self) -> ThrottleRepository: ...

    @property
    def notifications(self) -> NotificationRepository: ...

    @property
    def reminders(self) -> ReminderRepository: ...

    @property
    def users(self) -> UserRepository: ...

    @property
    def sessions(self) -> SessionRepository: ...

    @property
    def jobs(self) -> JobRepository: ...

    @property
    def resources(self) -> ResourceRepository: ...

    @property
    def bookings(self) -> BookingRepository: ...

    @property
    def subscribers(self) -> SubscriberRepository: ...

    @property
    def webhooks(self) -> WebhookRepository: ...

    @property
    def transfer(self) -> StoreTransfer:
        """The whole store as backend-neutral records (store-to-store copy)."""
        ...

    def readiness(self) -> Readiness: ...

    def close(self) -> None: ...
