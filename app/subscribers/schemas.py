"""Subscriber API models, and the one input schema the API and the bulk importer share.

`SubscriberIn` validates and normalises one subscriber; national MSISDNs need a default region,
passed as validation context. The importer validates each row the same way the API does:

    row = parse_subscriber({"msisdn": "07911 123456", ...}, phone_region="GB")

which raises pydantic's `ValidationError` (`app.errors.as_field_error` words its errors for the
API) or returns the normalised model.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from app.api_types import PageOut
from app.errors import FieldCode, invalid_value
from app.storage.records import AuditEntry, NotificationChannel, SubscriberRecord, SubscriberStatus
from app.subscribers.fields import (
    EMAIL_SCHEMA,
    ICCID_FORMAT,
    IMSI_PATTERN,
    MAX_ATTRIBUTE_INT,
    MAX_ATTRIBUTE_MAGNITUDE,
    MAX_ATTRIBUTE_STRING,
    MAX_ATTRIBUTES,
    MAX_ATTRIBUTES_BYTES,
    MAX_EMAIL_LENGTH,
    MIN_ATTRIBUTE_MAGNITUDE,
    PHONE_NUMBER_FORMAT,
    PLAN_PATTERN,
    RESERVED_UIDS,
    UID_PATTERN,
    AttributeValue,
    check_attribute_name,
    mask_email,
    mask_iccid,
    mask_imsi,
    normalise_attribute_value,
    normalise_attributes,
    normalise_email,
    normalise_iccid,
    normalise_imsi,
    normalise_msisdn,
    normalise_plan,
    normalise_uid,
)

PHONE_REGION = "phone_region"  # validation context key: the region national MSISDNs are read in

Uid = Annotated[
    str,
    StringConstraints(max_length=64),
    AfterValidator(normalise_uid),
    Field(
        description="1-64 of `A-Z a-z 0-9 _ -`, not `search`; generated when omitted on create.",
        examples=["sub-000123"],
        json_schema_extra={"pattern": f"^{UID_PATTERN.pattern}$", "not": {"enum": sorted(RESERVED_UIDS)}},
    ),
]


def _msisdn(value: str, info: ValidationInfo) -> str:
    return normalise_msisdn(value, (info.context or {}).get(PHONE_REGION))


Msisdn = Annotated[
    str,
    StringConstraints(max_length=32),
    AfterValidator(_msisdn),
    Field(
        description="Phone number: E.164 (`+447911123456`) or national (`07911 123456`, read in the "
        "DEFAULT_PHONE_REGION), valid per libphonenumber's metadata; stored as E.164.",
        examples=["+447911123456"],
        json_schema_extra={"format": PHONE_NUMBER_FORMAT},
    ),
]
Imsi = Annotated[
    str,
    StringConstraints(max_length=32),
    AfterValidator(normalise_imsi),
    Field(
        description="Exactly 15 digits.",
        examples=["234150999999999"],
        json_schema_extra={"pattern": rf"^\s*{IMSI_PATTERN.pattern}\s*$"},
    ),
]
Iccid = Annotated[
    str,
    StringConstraints(max_length=32),
    AfterValidator(normalise_iccid),
    Field(
        description="19-20 digits ending in a valid Luhn check digit.",
        examples=["8944110068256270054"],
        json_schema_extra={"format": ICCID_FORMAT},
    ),
]
Email = Annotated[
    str,
    StringConstraints(max_length=MAX_EMAIL_LENGTH),
    AfterValidator(normalise_email),
    Field(
        description="Stored lower-cased; not at a special-use domain (`.test`, `.local`, ...).",
        examples=["jane.doe@example.com"],
        json_schema_extra=EMAIL_SCHEMA,
    ),
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
PlanCode = Annotated[
    str,
    StringConstraints(max_length=32),
    AfterValidator(normalise_plan),
    Field(
        description="Plan code: 1-32 of `A-Z a-z 0-9 _ . -`, starting with a letter or digit.",
        examples=["UNLIMITED-5G"],
        json_schema_extra={"pattern": rf"^\s*{PLAN_PATTERN.pattern}\s*$"},
    ),
]
_ATTRIBUTE_VALUE: list[dict[str, Any]] = [
    {"type": "string", "maxLength": MAX_ATTRIBUTE_STRING},
    {"type": "boolean"},
    {"type": "integer", "minimum": -MAX_ATTRIBUTE_INT, "maximum": MAX_ATTRIBUTE_INT},
    {"type": "number", "minimum": MIN_ATTRIBUTE_MAGNITUDE, "maximum": MAX_ATTRIBUTE_MAGNITUDE},
    {"type": "number", "minimum": -MAX_ATTRIBUTE_MAGNITUDE, "maximum": -MIN_ATTRIBUTE_MAGNITUDE},
]
_ATTRIBUTES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "maxProperties": MAX_ATTRIBUTES,
    "propertyNames": {"pattern": "^[A-Za-z][A-Za-z0-9_-]{0,63}$"},
    "additionalProperties": {"anyOf": _ATTRIBUTE_VALUE},
    "description": f"Operator-specific flat map of scalars: at most {MAX_ATTRIBUTES} keys and "
    f"{MAX_ATTRIBUTES_BYTES} bytes as JSON; strings at most 1024 characters.",
    "examples": [{"tier": "gold", "roaming": True, "credit_limit": 50}],
}
Attributes = Annotated[dict[str, Any], AfterValidator(normalise_attributes), WithJsonSchema(_ATTRIBUTES_SCHEMA)]
AttributesPatch = Annotated[
    dict[str, Any],
    WithJsonSchema(
        {
            **_ATTRIBUTES_SCHEMA,
            "additionalProperties": {"anyOf": [*_ATTRIBUTE_VALUE, {"type": "null"}]},
            "description": "Merged into the current attributes; a null value removes that key.",
        }
    ),
]

_EXAMPLE: dict[str, Any] = {
    "uid": "sub-000123",
    "msisdn": "+447911123456",
    "imsi": "234150999999999",
    "iccid": "8944110068256270054",
    "email": "jane.doe@example.com",
    "first_name": "Jane",
    "last_name": "Doe",
    "status": "ACTIVE",
    "plan": "UNLIMITED-5G",
    "attributes": {"tier": "gold", "roaming": True},
    "notifications_opt_out": False,
    "notification_channel": "email",
}
_OPT_OUT = Field(
    False, description="The subscriber asked not to get booking messages (confirmations, changes, reminders)."
)
_CHANNEL = Field(
    None,
    description="Preferred channel for booking messages: `email` or `sms` (to the msisdn). Null: the "
    "portal's default; a channel the subscriber has no contact for falls back to the other.",
)


class _SubscriberFields(BaseModel):
    """The fields a client writes. Unknown fields are rejected; every string is bounded."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": _EXAMPLE})

    uid: Uid | None = None
    msisdn: Msisdn
    imsi: Imsi
    iccid: Iccid | None = None
    email: Email | None = None
    first_name: Name
    last_name: Name
    status: SubscriberStatus
    plan: PlanCode
    attributes: Attributes = Field(default_factory=dict)
    notifications_opt_out: bool = _OPT_OUT
    notification_channel: NotificationChannel | None = _CHANNEL

    def stored_fields(self) -> dict[str, Any]:
        """The mutable fields as the record stores them (uid and bookkeeping excluded)."""
        return self.model_dump(exclude={"uid"})


class SubscriberIn(_SubscriberFields):
    """A new subscriber (`POST /subscribers`, and each row of a bulk import)."""

    status: SubscriberStatus = SubscriberStatus.ACTIVE


class SubscriberReplace(_SubscriberFields):
    """Every mutable field (`PUT`): omitted optional fields are cleared. `uid`, if given, must match the path."""


# Fields a merge patch may not set to null: they have no "absent" state.
NOT_NULLABLE = ("msisdn", "imsi", "first_name", "last_name", "status", "plan", "notifications_opt_out")


def _patch_schema(schema: dict[str, Any]) -> None:
    """The document's patch: the fields that can't be cleared are optional but not nullable."""
    schema["example"] = {"status": "SUSPENDED", "attributes": {"roaming": None}}
    for name in NOT_NULLABLE:
        field = schema["properties"][name]
        variants = [variant for variant in field.pop("anyOf") if variant != {"type": "null"}]
        field.update(variants[0])
        field.pop("default", None)


class SubscriberPatch(BaseModel):
    """JSON merge patch (RFC 7396): present fields replace, `null` clears an optional field,
    `attributes` is merged key by key (a `null` value removes the key)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_patch_schema)

    uid: Uid | None = None
    msisdn: Msisdn | None = None
    imsi: Imsi | None = None
    iccid: Iccid | None = None
    email: Email | None = None
    first_name: Name | None = None
    last_name: Name | None = None
    status: SubscriberStatus | None = None
    plan: PlanCode | None = None
    attributes: AttributesPatch | None = None
    notifications_opt_out: bool | None = None
    notification_channel: NotificationChannel | None = None

    @field_validator("attributes")
    @classmethod
    def _check_attribute_changes(cls, changes: dict[str, Any] | None) -> dict[str, AttributeValue | None] | None:
        if changes is None:
            return None
        if len(changes) > MAX_ATTRIBUTES * 2:
            raise invalid_value(FieldCode.INVALID_ATTRIBUTES, f"at most {MAX_ATTRIBUTES * 2} attribute changes")
        return {
            check_attribute_name(key): None if value is None else normalise_attribute_value(key, value)
            for key, value in changes.items()
        }


def validation_context(phone_region: str) -> dict[str, Any]:
    return {PHONE_REGION: phone_region}


def parse_subscriber(data: Mapping[str, Any], *, phone_region: str) -> SubscriberIn:
    """Validate and normalise one subscriber (an API body or an import row); ValidationError if invalid."""
    return SubscriberIn.model_validate(data, context={PHONE_REGION: phone_region})


# --- responses ------------------------------------------------------------------------------------

_MASKERS = {"imsi": mask_imsi, "iccid": mask_iccid, "email": mask_email}
MASKED_FIELDS = frozenset(_MASKERS)


def mask_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` with imsi, iccid and email masked (for callers without subscribers:unmasked)."""
    return {
        name: _MASKERS[name](value) if name in _MASKERS and isinstance(value, str) else value
        for name, value in values.items()
    }


def masked_unless(values: Mapping[str, Any] | None, *, unmasked: bool) -> dict[str, Any] | None:
    """`values` as a caller sees them: masked unless they hold subscribers:unmasked (history, audit)."""
    if values is None:
        return None
    return dict(values) if unmasked else mask_values(values)


class SubscriberOut(BaseModel):
    """A subscriber. For viewers `imsi`, `iccid` and `email` are masked (`234150******999`)."""

    model_config = ConfigDict(json_schema_extra={"example": {**_EXAMPLE, "imsi": "234150999999999"}})

    uid: str
    msisdn: str
    imsi: str
    iccid: str | None
    email: str | None
    first_name: str
    last_name: str
    status: SubscriberStatus
    plan: str
    attributes: dict[str, AttributeValue]
    notifications_opt_out: bool = Field(description="No booking messages are sent to this subscriber.")
    notification_channel: NotificationChannel | None
    created_at: datetime
    updated_at: datetime
    created_by: str
    updated_by: str
    version: int = Field(description="Bumped by every change; the ETag is this number in quotes.")

    @classmethod
    def of(cls, subscriber: SubscriberRecord, *, unmasked: bool) -> SubscriberOut:
        values = subscriber.model_dump()
        return cls.model_validate(values if unmasked else mask_values(values))


class SubscriberPage(PageOut):
    items: list[SubscriberOut]


class HistoryEntryOut(BaseModel):
    """One change of a subscriber: who, what, when, and the changed fields before and after."""

    id: str
    at: datetime
    actor: str
    action: str = Field(examples=["subscriber.update"])
    request_id: str | None
    before: dict[str, Any] | None = Field(description="Changed fields before the change (null for a create).")
    after: dict[str, Any] | None = Field(description="Changed fields after the change (null for a delete).")

    @classmethod
    def of(cls, entry: AuditEntry, *, unmasked: bool) -> HistoryEntryOut:
        return cls(
            id=entry.id,
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            request_id=entry.request_id,
            before=masked_unless(entry.before, unmasked=unmasked),
            after=masked_unless(entry.after, unmasked=unmasked),
        )


class HistoryPage(PageOut):
    items: list[HistoryEntryOut]
