from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"
    version: str
    environment: str


class Check(BaseModel):
    ok: bool
    detail: str


class ReadinessReport(BaseModel):
    status: Literal["ready", "not_ready"]
    backend: str = Field(description="`dynamodb` or `mongo`.")
    checks: dict[str, Check]


class AuditEntryOut(BaseModel):
    id: str
    at: datetime
    actor: str
    action: str
    entity_type: str
    entity_id: str
    request_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    next_cursor: str | None = Field(description="Pass back as `cursor` for the next page; null when done.")
