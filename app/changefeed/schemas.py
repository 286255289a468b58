"""The published form of every event type (data version 1): one model per type's `data`, and the
envelope that carries it. The OpenAPI document's `webhooks` section is built from these, and
tests/changefeed/test_event_schemas.py validates real events from `catalog.events_for` against
them, so the documented payloads can't drift from what is sent.

Subscriber snapshots are as the consumer's role sees them (masked for `viewer`), exactly as
`GET /subscribers/{uid}` answers that role.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from app.bookings.schemas import BookingOut
from app.changefeed import catalog
from app.storage.records import BookingStatus, SubscriberStatus
from app.subscribers.schemas import SubscriberOut


class EventData(BaseModel):
    # Documented as sent (like a response): shared models such as JobCounts keep one component.
    model_config = ConfigDict(extra="forbid", json_schema_mode_override="serialization")


class SubscriberCreatedData(EventData):
    uid: str
    subscriber: SubscriberOut


class SubscriberUpdatedData(EventData):
    uid: str
    changed: list[str] = Field(description="The fields that changed (status has its own event).")
    subscriber: SubscriberOut = Field(description="The subscriber after the change.")


class SubscriberStatusChangedData(EventData):
    uid: str
    from_status: SubscriberStatus
    to_status: SubscriberStatus
    subscriber: SubscriberOut


class SubscriberDeletedData(EventData):
    uid: str


class BookingConfirmedData(EventData):
    booking: BookingOut


class BookingRescheduledData(EventData):
    booking: BookingOut = Field(description="The booking in its new slot.")
    previous_start: datetime
    previous_end: datetime


class BookingStatusData(EventData):
    booking: BookingOut
    from_status: BookingStatus


class JobEventCounts(EventData):
    """The job's row counts when it finished (as the job's own `counts`)."""

    total: int | None = Field(description="Rows in the input, when known.")
    processed: int
    created: int
    updated: int
    skipped: int
    deleted: int
    failed: int


class JobFinishedData(EventData):
    job_id: str
    status: str = Field(description="The job's final status (COMPLETED, COMPLETED_WITH_ERRORS, FAILED, CANCELLED).")
    counts: JobEventCounts
    options: dict[str, Any] = Field(description="The options the job ran with.")


class UserLockedData(EventData):
    username: str
    locked_until: datetime | None = Field(description="When the lockout ends.")


class UserDisabledData(EventData):
    username: str


class WebhookPingData(EventData):
    webhook_id: str = Field(description="The subscription pinged.")


PING = "webhook.ping"
EVENT_DATA: dict[str, type[EventData]] = {
    catalog.SUBSCRIBER_CREATED: SubscriberCreatedData,
    catalog.SUBSCRIBER_UPDATED: SubscriberUpdatedData,
    catalog.SUBSCRIBER_STATUS_CHANGED: SubscriberStatusChangedData,
    catalog.SUBSCRIBER_DELETED: SubscriberDeletedData,
    catalog.BOOKING_CONFIRMED: BookingConfirmedData,
    catalog.BOOKING_CANCELLED: BookingStatusData,
    catalog.BOOKING_RESCHEDULED: BookingRescheduledData,
    catalog.BOOKING_COMPLETED: BookingStatusData,
    catalog.BOOKING_NO_SHOW: BookingStatusData,
    catalog.JOB_COMPLETED: JobFinishedData,
    catalog.JOB_COMPLETED_WITH_ERRORS: JobFinishedData,
    catalog.JOB_FAILED: JobFinishedData,
    catalog.JOB_CANCELLED: JobFinishedData,
    catalog.USER_LOCKED: UserLockedData,
    catalog.USER_DISABLED: UserDisabledData,
    PING: WebhookPingData,
}
PING_DESCRIPTION = "A test delivery sent by `POST /webhooks/{id}/ping`; it describes no change."


class EnvelopeBase(BaseModel):
    """What every delivery's body holds; `data` is the event type's own model."""

    model_config = ConfigDict(extra="forbid", json_schema_mode_override="serialization")

    id: str = Field(description="The event's id: unique, time-ordered; de-duplicate by it.")
    timestamp: datetime = Field(description="When the change committed (UTC).")
    subject: str = Field(description="What changed, `<entity>/<id>`; one subject's events arrive in order.")
    actor: str = Field(description="Who made the change (a username, or `system:...`).")
    request_id: str | None = Field(description="The API request that made the change, if one did.")
    data_version: Literal[1] = Field(description="The version of `data`'s schema.")


def _model_name(event_type: str) -> str:
    return "".join(part.capitalize() for part in event_type.replace(".", "_").split("_")) + "Event"


def _envelope(event_type: str) -> type[BaseModel]:
    model: type[BaseModel] = create_model(
        _model_name(event_type),
        __base__=EnvelopeBase,
        type=(Literal[event_type], Field(description="The event type.")),  # type: ignore[arg-type]
        data=(EVENT_DATA[event_type], ...),
    )
    return model


# booking.confirmed -> BookingConfirmedEvent: the body a `booking.confirmed` delivery carries.
ENVELOPES: dict[str, type[BaseModel]] = {event_type: _envelope(event_type) for event_type in EVENT_DATA}


def description_of(event_type: str) -> str:
    return catalog.EVENT_TYPES.get(event_type, PING_DESCRIPTION)


SIGNATURE_HEADERS = (
    ("webhook-id", "The delivery's id: the same on every retry of it (de-duplicate by it or by the event id)."),
    ("webhook-timestamp", "Unix seconds when this attempt was signed; refuse ones far from your clock."),
    (
        "webhook-signature",
        "`v1,<base64 HMAC-SHA256>` of `<webhook-id>.<webhook-timestamp>.<body>` under the subscription's "
        "secret (the base64 after `whsec_`), per the Standard Webhooks specification.",
    ),
)


def webhook_routes() -> list[Any]:
    """The OpenAPI `webhooks` section as routes: one POST per event type, its body the envelope with
    that type's data. Built when the document is (never at a cold start)."""
    from fastapi import APIRouter

    router = APIRouter()
    for event_type, model in ENVELOPES.items():

        def receive(body: Any) -> None:
            """A documentation stub: the receiver is the integrator's."""

        receive.__annotations__ = {"body": model, "return": None}
        router.add_api_route(
            event_type,
            receive,
            methods=["POST"],
            operation_id="webhook_" + event_type.replace(".", "_"),
            summary=event_type,
            description=description_of(event_type),
            tags=["webhooks"],
        )
    return router.routes


def document_webhooks(section: dict[str, Any]) -> None:
    """What FastAPI can't say about a webhook: the signature headers, and that any 2xx acknowledges it."""
    for operations in section.values():
        for operation in operations.values():
            operation["parameters"] = [
                {"name": name, "in": "header", "required": True, "description": text, "schema": {"type": "string"}}
                for name, text in SIGNATURE_HEADERS
            ]
            operation["responses"] = {
                "2XX": {
                    "description": "Received. Any other answer, a redirect or none within 5 seconds is retried: "
                    "5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h later, then the delivery has failed."
                }
            }
