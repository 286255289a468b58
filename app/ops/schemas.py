from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.api_types import PageOut
from app.bookings.schemas import DayCount
from app.config import StorageBackend
from app.storage.records import AuditEntry
from app.subscribers.schemas import masked_unless


class Liveness(BaseModel):
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)  # `status` is always sent

    status: Literal["ok"] = "ok"
    version: str
    environment: str


class Check(BaseModel):
    ok: bool
    detail: str


class ReadinessReport(BaseModel):
    status: Literal["ready", "not_ready"]
    backend: StorageBackend = Field(description="The store this deployment uses.")
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

    @classmethod
    def of(cls, entry: AuditEntry, *, unmasked: bool) -> AuditEntryOut:
        """The entry with imsi, iccid and email in before/after masked for callers without subscribers:unmasked."""
        values = entry.model_dump(exclude={"expires_at", "before", "after"})
        before = masked_unless(entry.before, unmasked=unmasked)
        return cls(**values, before=before, after=masked_unless(entry.after, unmasked=unmasked))


class AuditPage(PageOut):
    items: list[AuditEntryOut]


class JobsLast24h(BaseModel):
    completed: int = Field(description="COMPLETED and COMPLETED_WITH_ERRORS.")
    failed: int
    cancelled: int
    success_rate: float | None = Field(description="completed / (completed + failed); null when none finished.")


class DashboardStats(BaseModel):
    subscribers_by_status: dict[str, int]
    subscribers_by_plan: dict[str, int]
    subscribers_total: int
    bookings_today: int
    bookings_next_7_days: list[DayCount] = Field(description="Today and the 7 days after it.")
    jobs_by_status: dict[str, int]
    jobs_last_24h: JobsLast24h
    generated_at: datetime
