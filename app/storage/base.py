"""Repository protocols, shared records and the storage errors both backends raise.

Nothing above `app.storage` imports boto3 or pymongo: services talk to a `Store`, whose
repositories are implemented once for DynamoDB and once for MongoDB and proven equal by the
contract suite in `tests/storage`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

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


# --- shared records -----------------------------------------------------------------------------------


class Record(BaseModel):
    """Base of stored records: strict about unknown fields, so a typo never silently persists."""

    model_config = ConfigDict(extra="forbid")


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


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None = None


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str


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

    def readiness(self) -> Readiness: ...

    def close(self) -> None: ...
