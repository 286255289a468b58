"""The documented payload of every event type is what the catalog really publishes.

Events are built by `catalog.events_for` from real record dumps (the audit path's own before/after
values), wrapped by `envelope` for an unmasked and a masked role, and validated against the models
the OpenAPI `webhooks` section is built from (which forbid unknown fields): a field added to, or
renamed in, an event's data fails here until its model says so.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from app.changefeed import catalog
from app.changefeed.envelope import envelope
from app.changefeed.schemas import ENVELOPES, EVENT_DATA, PING, description_of
from app.storage.records import (
    SUBSCRIBER_BOOKKEEPING,
    BookingRecord,
    BookingStatus,
    DomainEvent,
    JobCounts,
    Role,
    SubscriberRecord,
    SubscriberStatus,
)
from tests.storage.records_samples import AT, LATER, SAMPLES
from tests.support import make_settings


def _events(action: str, entity_type: str, entity_id: str, before: Any, after: Any) -> list[DomainEvent]:
    return catalog.events_for(
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        actor="ada",
        at=AT,
        request_id="req-1",
        retention_days=7,
        before=before,
        after=after,
    )


def _subscriber(**changes: Any) -> dict[str, Any]:
    record = SAMPLES["subscribers"]
    assert isinstance(record, SubscriberRecord)
    return record.model_copy(update=changes).model_dump(mode="json", exclude=set(SUBSCRIBER_BOOKKEEPING))


def _booking(**changes: Any) -> dict[str, Any]:
    record = SAMPLES["bookings"]
    assert isinstance(record, BookingRecord)
    return record.model_copy(update={"status": BookingStatus.CONFIRMED, **changes}).model_dump(mode="json")


def _real_events() -> list[DomainEvent]:
    moved = {"start": (AT + timedelta(hours=1)).isoformat(), "end": (LATER + timedelta(hours=1)).isoformat()}
    counts = JobCounts(total=3, processed=3, created=2, failed=1).model_dump()
    job_after = {"status": "COMPLETED", "counts": counts, "options": {"format": "csv"}}
    changes = [
        ("subscriber.create", "subscriber", "sub-1", None, _subscriber()),
        (
            "subscriber.update",
            "subscriber",
            "sub-1",
            _subscriber(),
            _subscriber(plan="silver", status=SubscriberStatus.ACTIVE),
        ),
        ("subscriber.delete", "subscriber", "sub-1", _subscriber(), None),
        ("booking.create", "booking", "bk-1", None, _booking()),
        ("booking.reschedule", "booking", "bk-1", _booking(), {**_booking(), **moved}),
        ("booking.cancel", "booking", "bk-1", _booking(), _booking(status=BookingStatus.CANCELLED)),
        ("booking.completed", "booking", "bk-1", _booking(), _booking(status=BookingStatus.COMPLETED)),
        ("booking.no_show", "booking", "bk-1", _booking(), _booking(status=BookingStatus.NO_SHOW)),
        ("auth.locked", "user", "ada", None, {"locked_until": LATER.isoformat()}),
        ("user.update", "user", "ada", {"active": True}, {"active": False}),
    ]
    changes += [
        (f"job.import.{status}", "job", "job-1", None, {**job_after, "status": status.upper()})
        for status in ("completed", "completed_with_errors", "failed", "cancelled")
    ]
    return [event for change in changes for event in _events(*change)]


def test_every_published_type_has_a_data_model_and_the_ping_too() -> None:
    assert set(EVENT_DATA) == {*catalog.EVENT_TYPES, PING}
    assert all(description_of(kind) for kind in EVENT_DATA)


def test_the_real_events_cover_every_type() -> None:
    assert {event.type for event in _real_events()} == set(catalog.EVENT_TYPES)


@pytest.mark.parametrize("role", [Role.ADMIN, Role.VIEWER])
def test_each_real_event_matches_its_documented_envelope(role: Role) -> None:
    for event in _real_events():
        body = envelope(event, role)
        ENVELOPES[event.type].model_validate(body)
        EVENT_DATA[event.type].model_validate(body["data"])


def test_masked_and_unmasked_snapshots_differ_only_in_the_masked_fields() -> None:
    (created,) = _events("subscriber.create", "subscriber", "sub-1", None, _subscriber())
    admin, viewer = (
        envelope(created, Role.ADMIN)["data"]["subscriber"],
        envelope(created, Role.VIEWER)["data"]["subscriber"],
    )
    assert admin["imsi"] == "234150123456789"
    assert viewer["imsi"] != admin["imsi"]
    assert {name for name in admin if admin[name] != viewer[name]} <= {"imsi", "iccid", "email"}


def test_the_openapi_document_has_one_webhook_per_type_with_its_envelope() -> None:
    from app.main import create_app

    document = create_app(make_settings()).openapi()
    section = document["webhooks"]
    assert set(section) == set(EVENT_DATA)
    for event_type, operations in section.items():
        body = operations["post"]["requestBody"]["content"]["application/json"]["schema"]
        name = ENVELOPES[event_type].__name__
        assert body == {"$ref": f"#/components/schemas/{name}"}
        schema = document["components"]["schemas"][name]
        assert schema["properties"]["type"]["const"] == event_type
        assert {p["name"] for p in operations["post"]["parameters"]} == {
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
        }
