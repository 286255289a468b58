"""API models of webhook subscriptions and their delivery log (admin only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StringConstraints, WithJsonSchema

from app.api_types import PageOut
from app.changefeed.catalog import EVENT_TYPES
from app.errors import FieldCode, invalid_value
from app.storage.records import DeliveryStatus, Role, WebhookDelivery, WebhookSubscription
from app.webhooks.targets import MAX_URL_LENGTH

MAX_DESCRIPTION = 500


def _known_event_type(value: str) -> str:
    if value not in EVENT_TYPES:
        raise invalid_value(FieldCode.INVALID_CHOICE, f"{value[:64]!r} is not an event type (see the webhooks section)")
    return value


def _distinct(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise invalid_value(FieldCode.INVALID, "lists an event type twice")
    return values


EventTypeName = Annotated[
    str,
    StringConstraints(max_length=64),
    AfterValidator(_known_event_type),
    WithJsonSchema({"type": "string", "enum": sorted(EVENT_TYPES)}),
]
EventTypes = Annotated[
    list[EventTypeName],
    Field(
        min_length=1,
        max_length=len(EVENT_TYPES),
        description="The event types sent (at least one, each once).",
        json_schema_extra={"uniqueItems": True},
    ),
    AfterValidator(_distinct),
]
_PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
# The form the API takes, stated in the document (a client learns it before sending): http(s), a
# host name or IPv4 address, a port, a path and query without spaces or controls, no fragment.
# What the schema can't say is the service's (targets.check): https only and public addresses
# outside `local`, and what the host resolves to.
URL_PATTERN = rf"^https?://[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?(:{_PORT})?([/?][^\x00-\x20\x7f#]*)?$"
WebhookUrl = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_URL_LENGTH, pattern=URL_PATTERN),
    Field(
        description="Where deliveries are POSTed: https, a public address (private, loopback, link-local and "
        "metadata addresses are refused, at subscribe time and before every attempt); redirects are not followed.",
        examples=["https://crm.example.com/hooks/portal"],
    ),
]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_DESCRIPTION)]
PayloadRole = Annotated[
    Role,
    Field(
        description="Whose view of personal data the payloads get: `viewer` (masked, the default) or an unmasked role."
    ),
]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebhookCreate(StrictModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {"url": "https://crm.example.com/hooks/portal", "event_types": ["booking.confirmed"]}
        },
    )

    url: WebhookUrl
    event_types: EventTypes
    description: Description | None = None
    role: PayloadRole = Role.VIEWER
    active: StrictBool = True


def _update_schema(schema: dict[str, Any]) -> None:
    """Every field optional; only `description` may be null (it clears it)."""
    schema["example"] = {"active": True}
    for name, field in schema["properties"].items():
        if name == "description":
            continue
        variants = [variant for variant in field.pop("anyOf") if variant != {"type": "null"}]
        field.update(variants[0])
        field.pop("default", None)


class WebhookUpdate(StrictModel):
    """Only the fields sent change. Setting `active` to true re-enables a disabled subscription."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_update_schema)

    url: WebhookUrl | None = None
    event_types: EventTypes | None = None
    description: Description | None = None
    role: PayloadRole | None = None
    active: StrictBool | None = None


class WebhookOut(BaseModel):
    id: str
    url: str
    event_types: list[str]
    description: str | None
    role: Role
    active: bool
    disabled_reason: str | None = Field(description="Why the server disabled it (repeated failed deliveries).")
    created_by: str
    created_at: datetime
    updated_at: datetime
    version: int = Field(description="Also sent as the ETag; send it back in If-Match to update safely.")

    @classmethod
    def of(cls, subscription: WebhookSubscription) -> WebhookOut:
        return cls.model_validate(subscription.model_dump(exclude={"secret_salt"}))


class WebhookCreated(WebhookOut):
    secret: str = Field(
        description="The signing secret (`whsec_` + base64), shown this once: store it to verify deliveries. "
        "`POST /webhooks/{id}/rotate-secret` replaces it."
    )


class WebhookSecret(BaseModel):
    id: str
    secret: str = Field(description="The new signing secret, shown this once; the old one stops at once.")


class WebhookPage(PageOut):
    items: list[WebhookOut]


class DeliveryOut(BaseModel):
    id: str = Field(description="The delivery's id, also its `webhook-id` header on every attempt.")
    event_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None = Field(description="When the next attempt is due (pending only).")
    last_attempt_at: datetime | None
    last_status_code: int | None = Field(description="The receiver's last HTTP status; null if none came.")
    last_error: str | None
    last_response: str | None = Field(description="The start of the receiver's last answer (at most 1 KB).")

    @classmethod
    def of(cls, delivery: WebhookDelivery) -> DeliveryOut:
        return cls.model_validate(delivery.model_dump(exclude={"payload", "subscription_id", "revision", "expires_at"}))


class DeliveryPage(PageOut):
    items: list[DeliveryOut]
