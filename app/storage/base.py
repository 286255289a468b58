"""Repository protocols, shared records and the storage errors both backends raise.

Nothing above `app.storage` imports boto3 or pymongo: services talk to a `Store`, whose
repositories are implemented once for DynamoDB and once for MongoDB and proven equal by the
contract suite in `tests/storage`.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Literal, Protocol, TypeVar

from app.storage.records import (
    AuditEntry,
    RefreshTokenRecord,
    SubscriberRecord,
    SubscriberStatus,
    TokenFamilyRecord,
    UserRecord,
)

T = TypeVar("T")


# --- errors -------------------------------------------------------------------------------------------


class StorageError(Exception):
    """Base of every error the storage layer raises on purpose."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(StorageError):
    pass


class Conflict(StorageError):
    """A uniqueness claim, capacity or state condition did not hold; nothing was written."""


class PreconditionFailed(StorageError):
    """The caller's expected version is stale; nothing was written."""


class InvalidCursor(StorageError):
    def __init__(self, message: str = "cursor is malformed, tampered with or from another query") -> None:
        super().__init__(message, field="query.cursor")


class StoreUnavailable(StorageError):
    pass


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


class AuditRepository(Protocol):
    def append(self, entry: AuditEntry) -> None: ...

    def list_for_entity(
        self, entity_type: str, entity_id: str, *, limit: int, cursor: str | None = None
    ) -> Page[AuditEntry]: ...


class CounterRepository(Protocol):
    def increment(self, scope: str, deltas: dict[str, int]) -> None:
        """Atomically add each delta to the named counter of `scope` (e.g. scope=subscribers.status)."""
        ...

    def get(self, scope: str) -> dict[str, int]: ...

    def replace(self, scope: str, values: dict[str, int]) -> None:
        """Overwrite a scope's counters (used by reconciliation, never on the request path)."""
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
        """Conflict(field='username') if the username exists."""
        ...

    def get(self, username: str) -> UserRecord | None: ...

    def list(self, *, limit: int, cursor: str | None = None) -> Page[UserRecord]:
        """Ordered by username."""
        ...

    def replace(self, current: UserRecord, updated: UserRecord, audit: AuditEntry) -> None:
        """Write `updated` (version = current.version + 1) if the stored version is still `current.version`.

        PreconditionFailed if it changed; Conflict if it would leave no active admin.
        """
        ...

    def delete(self, current: UserRecord, audit: AuditEntry) -> None:
        """Same guards as `replace`; NotFound if already gone."""
        ...

    def record_login_failure(self, username: str, *, max_failures: int, lock_until: datetime) -> UserRecord | None:
        """Atomically count a failed login; lock the account when the count reaches `max_failures`."""
        ...

    def record_login_success(self, username: str, *, new_password_hash: str | None) -> None:
        """Reset the failure count (and store an upgraded hash, if given)."""
        ...

    def count_active_admins(self) -> int: ...


class SessionRepository(Protocol):
    """Refresh-token families (one per login), rotated refresh tokens and revoked access tokens."""

    def start(self, family: TokenFamilyRecord, token: RefreshTokenRecord) -> None: ...

    def rotate(self, used_token_hash: str, new_token: RefreshTokenRecord, *, now: datetime) -> TokenFamilyRecord:
        """Mark the presented token used and store its successor, atomically.

        NotFound if the token is unknown or expired. Conflict if it was already used (replay): the
        whole family is revoked before raising. Conflict too if the family was revoked.
        """
        ...

    def find_token(self, token_hash: str) -> RefreshTokenRecord | None: ...

    def get_family(self, family_id: str) -> TokenFamilyRecord | None: ...

    def revoke_family(self, family_id: str) -> None: ...

    def deny_access_token(self, jti: str, expires_at: datetime) -> None:
        """Deny-list an access token until it would have expired anyway (then the TTL removes it)."""
        ...

    def is_access_token_denied(self, jti: str) -> bool: ...


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
        """Conflict(field='body.uid' | 'body.msisdn' | 'body.imsi') when taken; nothing is written then."""
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
        NotFound if gone, PreconditionFailed if the version moved on, Conflict(field) if a new
        msisdn or imsi is taken.
        """
        ...

    def delete(self, current: SubscriberRecord, audit: AuditEntry) -> None:
        """Remove the subscriber (if still at current.version) and release its msisdn and imsi.

        NotFound if gone, PreconditionFailed if the version moved on.
        """
        ...

    def reconcile_counters(self, *, fix: bool) -> builtins.list[CounterDrift]:
        """Recount subscribers by status and plan (a maintenance scan, never on the request path).

        Returns every counter that differs from the data; with `fix`, overwrites them. Counters
        written concurrently with the recount may be reported as drift: run it in a quiet period.
        """
        ...


SortOrder = Literal["asc", "desc"]
Clock = Callable[[], datetime]


class Store(Protocol):
    """Every repository of one backend, created once per process."""

    backend: str

    @property
    def audit(self) -> AuditRepository: ...

    @property
    def counters(self) -> CounterRepository: ...

    @property
    def throttle(self) -> ThrottleRepository: ...

    @property
    def users(self) -> UserRepository: ...

    @property
    def sessions(self) -> SessionRepository: ...

    @property
    def subscribers(self) -> SubscriberRepository: ...

    def readiness(self) -> Readiness: ...

    def close(self) -> None: ...
