from __future__ import annotations

from typing import Literal

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
