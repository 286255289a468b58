from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from app.errors import FieldCode, invalid_value
from app.migration.mapping import MappingSpec, mapping_of
from app.storage.records import JobCounts, JobRecord, JobRowError, JobStatus, JobType

ImportTarget = Literal["subscribers", "users"]
InputFormat = Literal["csv", "json", "ndjson"]


class ExportFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["ACTIVE", "INACTIVE", "SUSPENDED", "TERMINATED"] | None = None
    plan: str | None = Field(None, min_length=1, max_length=32)


class JobCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "type": "import",
                "target": "subscribers",
                "format": "csv",
                "mode": "upsert",
                "dry_run": False,
                "mapping": {
                    "columns": {"MSISDN": "msisdn", "Tariff": "plan"},
                    "transforms": {"status": ["trim", "upper", {"map": {"A": "ACTIVE"}}]},
                    "unmapped": "attributes",
                },
            }
        },
    )

    type: Literal["import", "export", "delete"]
    target: ImportTarget = Field("subscribers", description="What an import creates.")
    format: Literal["csv", "json", "ndjson"] | None = Field(
        None, description="Input format (import, delete: required) or export file format (csv or ndjson)."
    )
    delimiter: Literal[",", ";", "\t"] | None = Field(None, description="CSV delimiter; detected when omitted.")
    mode: Literal["create", "upsert", "update"] = Field(
        "create", description="Imports: create only, create or replace, or update existing only."
    )
    dry_run: StrictBool = Field(False, description="Validate and check against the store; write nothing.")
    mapping: MappingSpec | None = None
    default_region: str | None = Field(
        None,
        min_length=2,
        max_length=3,
        description="Subscriber imports: ISO 3166 region national MSISDNs are read in (default: the server's).",
    )
    filters: ExportFilters | None = Field(None, description="Export: which subscribers.")
    mask: StrictBool = Field(False, description="Export: mask IMSI, ICCID and email as viewers see them.")
    file_name: str | None = Field(None, min_length=1, max_length=200, pattern=r"^[^/\\]+$")

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, value: str | None) -> str | None:
        from app.subscribers.fields import is_supported_region

        if value is None:
            return None
        value = value.upper()
        if not is_supported_region(value):
            raise invalid_value(FieldCode.UNKNOWN_REGION, f"{value!r} is not a known ISO 3166 region (e.g. GB, US, DE)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> JobCreate:
        if self.type in ("import", "delete") and self.format is None:
            raise invalid_value(FieldCode.INVALID_COMBINATION, "format is required for import and delete jobs")
        if self.type == "export" and self.format not in (None, "csv", "ndjson"):
            raise invalid_value(FieldCode.INVALID_COMBINATION, "an export is written as csv or ndjson")
        if self.type != "import" and (
            self.mapping is not None or self.mode != "create" or self.dry_run or self.default_region
        ):
            raise invalid_value(
                FieldCode.INVALID_COMBINATION, "mapping, mode, dry_run and default_region apply to imports only"
            )
        if self.type != "export" and (self.filters is not None or self.mask):
            raise invalid_value(FieldCode.INVALID_COMBINATION, "filters and mask apply to exports only")
        if self.type == "delete" and self.target != "subscribers":
            raise invalid_value(FieldCode.INVALID_COMBINATION, "delete jobs delete subscribers")
        return self


def shown_options(options: dict[str, Any]) -> dict[str, Any]:
    """A job's options as they were given: the stored mapping's pairs as objects again."""
    if "mapping" not in options:
        return options
    return {**options, "mapping": mapping_of(options["mapping"]).model_dump(mode="json")}


class JobOut(BaseModel):
    id: str
    type: JobType
    status: JobStatus
    options: dict[str, Any]
    counts: JobCounts
    percent: float | None = Field(description="Processed share of the total, when the total is known.")
    created_by: str
    created_at: datetime
    input_received_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    error_summary: str | None
    cancel_requested: bool
    related_job_id: str | None
    has_output: bool

    @classmethod
    def of(cls, job: JobRecord) -> JobOut:
        return cls(
            **job.model_dump(
                include={
                    "id",
                    "type",
                    "status",
                    "counts",
                    "created_by",
                    "created_at",
                    "input_received_at",
                    "started_at",
                    "finished_at",
                    "heartbeat_at",
                    "error_summary",
                    "cancel_requested",
                    "related_job_id",
                }
            ),
            options=shown_options(job.options),
            percent=job.percent,
            has_output=job.output_key is not None and job.status.finished,
        )


class UploadInstructions(BaseModel):
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)  # `method` is always sent

    method: Literal["PUT"] = "PUT"
    url: str = Field(
        description="A presigned S3 URL in AWS; elsewhere the absolute path of this API's "
        "`/migration/jobs/{job_id}/input`, with the API's path prefix (e.g. an API Gateway stage)."
    )
    headers: dict[str, str]
    max_bytes: int
    expires_at: datetime | None


class JobCreated(BaseModel):
    job: JobOut
    upload: UploadInstructions | None = Field(description="Where to send the input file (imports and deletes).")


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None


class JobErrorOut(BaseModel):
    row: int
    field: str
    code: str
    message: str
    value: str | None

    @classmethod
    def of(cls, error: JobRowError) -> JobErrorOut:
        return cls.model_validate(error.model_dump(exclude={"job_id"}))


class JobErrorPage(BaseModel):
    items: list[JobErrorOut]
    next_cursor: str | None
