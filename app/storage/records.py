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


class SubscriberStatus(StrEnum):
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"
    SUSPENDED = "SUSPENDED"
    TERMINATED = "TERMINATED"


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
    created_at: datetime
    updated_at: datetime
    created_by: str
    updated_by: str
    version: int = 1
