"""Records as stored: the shapes repositories accept and return, identical on both backends.

They are internal (API schemas live in each domain's `schemas.py`) and forbid unknown fields, so
a typo never silently persists.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Record(BaseModel):
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


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"


class UserRecord(Record):
    username: str
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
    version: int = 1

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
    token_generation: int
    created_at: datetime
    expires_at: datetime
    revoked: bool = False


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


class BookingStatus(StrEnum):
    CONFIRMED = "CONFIRMED"
    CANCELLED = "CANCELLED"
    COMPLETED = "COMPLETED"
    NO_SHOW = "NO_SHOW"


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
