from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    GetCoreSchemaHandler,
    GetPydanticSchema,
    RootModel,
    StrictBool,
    Tag,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError, core_schema

from app.api_types import PageOut
from app.auth.schemas import UserImport
from app.errors import FieldCode, invalid_value
from app.migration.mapping import MappingSpec, mapping_of
from app.storage.records import JobCounts, JobRecord, JobRowError, JobStatus, JobType
from app.subscribers.schemas import SubscriberIn

InputFormat = Literal["csv", "json", "ndjson"]
Delimiter = Literal[",", ";", "\t"]
JOB_TYPES = ("import", "export", "delete")
FORMAT_DETECTED = (
    "the one the file's name says (.csv or .tsv, .json, .ndjson or .jsonl), else the one its content "
    "shows: a JSON array if its first character other than white space is `[`, NDJSON if it is `{`, "
    "otherwise CSV."
)


class ExportFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["ACTIVE", "INACTIVE", "SUSPENDED", "TERMINATED"] | None = None
    plan: str | None = Field(None, min_length=1, max_length=32)


class _JobCreateBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file_name: str | None = Field(None, min_length=1, max_length=200, pattern=r"^[^/\\]+$")


def _known_regions(schema: dict[str, Any]) -> None:
    from app.subscribers.fields import supported_regions

    # The regions the server has phone metadata for (lower case is read as upper case too).
    schema["enum"] = supported_regions()


KnownRegion = Annotated[str, Field(json_schema_extra=_known_regions)]


def _field_of(target: str, fields: tuple[str, ...]) -> Any:
    """A field name of `target`, stated in the document as the enum of them."""

    def known(name: str) -> str:
        if name not in fields:
            choices = ", ".join(fields)
            raise invalid_value(FieldCode.INVALID_CHOICE, f"{target} have no field {name!r} (one of: {choices})")
        return name

    return Annotated[str, AfterValidator(known), Field(json_schema_extra={"enum": list(fields)})]


SubscriberField = _field_of("subscribers", tuple(SubscriberIn.model_fields))
UserField = _field_of("users", tuple(UserImport.model_fields))


class SubscriberMapping(MappingSpec[SubscriberField]):  # type: ignore[valid-type]
    """How a subscriber import's columns map to subscriber fields."""


class UserMapping(MappingSpec[UserField]):  # type: ignore[valid-type]
    """How a users import's columns map to user fields."""


class _ImportJobFields(_JobCreateBase):
    type: Literal["import"]
    format: InputFormat = Field(description="The input file's format.")
    delimiter: Delimiter | None = Field(None, description="CSV delimiter; detected when omitted.")
    mode: Literal["create", "upsert", "update"] = Field(
        "create", description="Create only, create or replace, or update existing only."
    )
    dry_run: StrictBool = Field(False, description="Validate and check against the store; write nothing.")
    default_region: KnownRegion | None = Field(
        None, description="Subscriber imports: ISO 3166 region national MSISDNs are read in (default: the server's)."
    )

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


class SubscriberImportJobCreate(_ImportJobFields):
    """An import of subscribers (the default target)."""

    target: Literal["subscribers"] = Field("subscribers", description="What the import creates.")
    mapping: SubscriberMapping | None = None


class UserImportJobCreate(_ImportJobFields):
    """An import of users with their password hashes."""

    target: Literal["users"] = Field(description="What the import creates.")
    mapping: UserMapping | None = None


def _target_of(value: Any) -> str:
    """An import's tag: its target (subscribers when left out); anything else is no tag of the union."""
    target = value.get("target", "subscribers") if isinstance(value, dict) else getattr(value, "target", None)
    return target if isinstance(target, str) else ""


class ImportJobCreate(
    RootModel[
        Annotated[
            Annotated[SubscriberImportJobCreate, Tag("subscribers")] | Annotated[UserImportJobCreate, Tag("users")],
            Discriminator(_target_of),
        ]
    ]
):
    """An import: its `mapping` names the fields of its `target`."""


class ExportJobCreate(_JobCreateBase):
    type: Literal["export"]
    target: Literal["subscribers"] = Field("subscribers", description="Exports write subscribers.")
    format: Literal["csv", "ndjson"] | None = Field(None, description="The file written (default: csv).")
    filters: ExportFilters | None = Field(None, description="Which subscribers.")
    mask: StrictBool = Field(False, description="Mask IMSI, ICCID and email as viewers see them.")


class DeleteJobCreate(_JobCreateBase):
    type: Literal["delete"]
    target: Literal["subscribers"] = Field("subscribers", description="Delete jobs delete subscribers.")
    format: InputFormat = Field(description="The format of the file listing the subscribers to delete.")
    delimiter: Delimiter | None = Field(None, description="CSV delimiter; detected when omitted.")


def _errors_without_tag(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """The job as its own model (an import unwrapped from `ImportJobCreate`). pydantic puts the
    matched `type` (and an import's `target`) first in a tagged union's error locations
    (`import.subscribers.format`); the API names the field as sent (`format`), and a missing or
    unknown type or target as `type` or `target` itself."""
    try:
        job = handler(value)
    except ValidationError as exc:
        errors: list[InitErrorDetails] = []
        for error in exc.errors(include_url=False):
            kind, message, location = error["type"], error["msg"], error["loc"]
            if kind == "union_tag_not_found":
                kind, message, location = "missing", "Field required", ("type",)
            elif kind == "union_tag_invalid" and not location:
                kind, message, location = "literal_error", "Input should be 'import', 'export' or 'delete'", ("type",)
            elif kind == "union_tag_invalid":
                kind, message, location = "literal_error", "Input should be 'subscribers' or 'users'", ("target",)
            elif location and location[0] in JOB_TYPES:
                location = location[2:] if location[0] == "import" else location[1:]
            escaped = message.replace("{", "{{").replace("}", "}}")  # the message is a template
            errors.append({"type": PydanticCustomError(kind, escaped), "loc": location, "input": error["input"]})
        raise ValidationError.from_exception_data(exc.title, errors) from None
    return job.root if isinstance(job, ImportJobCreate) else job


ImportRequest = SubscriberImportJobCreate | UserImportJobCreate
JobRequest = ImportRequest | ExportJobCreate | DeleteJobCreate


def _by_type(_source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
    """Validated as a union tagged by `type` (an import by `target` too), answered as the job's own model."""
    tagged = Annotated[ImportJobCreate | ExportJobCreate | DeleteJobCreate, Discriminator("type")]
    return core_schema.no_info_wrap_validator_function(_errors_without_tag, handler(tagged))


class JobCreate(RootModel[Annotated[JobRequest, GetPydanticSchema(_by_type)]]):
    """A new job: its fields depend on its `type`."""

    model_config = ConfigDict(
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


def upload_options_schema(schema: dict[str, Any]) -> None:
    """`POST /migration/upload`'s `options` as the document states it: a JSON object (the form
    field's text) with an import's fields (of subscribers or users) or a delete's, where `type`
    defaults to import and `format` to the one the file says. The models nested in them are
    components already."""
    branches = []
    imports = (SubscriberImportJobCreate, UserImportJobCreate)
    for model in (*imports, DeleteJobCreate):
        optional = {"type", "format"} if model in imports else {"format"}
        branch = model.model_json_schema(ref_template="#/components/schemas/{model}")
        branch.pop("$defs", None)
        branch["required"] = [name for name in branch["required"] if name not in optional]
        branch["properties"]["format"]["description"] += f" Default: {FORMAT_DETECTED}"
        if model in imports:
            branch["properties"]["type"]["default"] = "import"
        branches.append(branch)
    schema.clear()
    schema["oneOf"] = branches
    schema["description"] = "The job's fields, as for `POST /migration/jobs`: an import (the default) or a delete."


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


class JobPage(PageOut):
    items: list[JobOut]


class JobErrorOut(BaseModel):
    row: int
    field: str
    code: str
    message: str
    value: str | None

    @classmethod
    def of(cls, error: JobRowError) -> JobErrorOut:
        return cls.model_validate(error.model_dump(exclude={"job_id"}))


class JobErrorPage(PageOut):
    items: list[JobErrorOut]
