"""The relay in AWS: DynamoDB Streams records of inserted event items -> EventBridge and every
consumer -> out of the outbox (app/changefeed/stream.py, app/changefeed/bus.py, app/aws.py).

Stream records are built as Lambda delivers them, from the very items the store writes
(`event_item`, serialized as the table serializes it). The bus is moto's EventBridge, read back
through a rule that targets an SQS queue, as an integrator's rule would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from pydantic import ValidationError

import app.changefeed.consumers  # noqa: F401  (registers the real consumers before the tests replace them)
from app.aws import EventBridgeBus
from app.changefeed import relay as relay_module
from app.changefeed.bus import (
    MAX_ENTRIES_PER_REQUEST,
    MAX_REQUEST_BYTES,
    EventBridgePublisher,
    entry_size,
    event_publisher,
)
from app.changefeed.catalog import SUBSCRIBER_CREATED, events_for
from app.changefeed.envelope import envelope
from app.changefeed.stream import relay_stream_records
from app.runtime import Runtime
from app.storage.cursor import CursorCodec
from app.storage.dynamodb.events import event_item
from app.storage.dynamodb.store import DynamoStore
from app.storage.dynamodb.table import serialize
from app.storage.records import DomainEvent, Role
from tests.conftest import dynamo_store
from tests.lambda_events import dynamodb_stream
from tests.support import make_settings

REGION = "eu-west-1"
BUS = "portal-test-bus"
SOURCE = "subscriber-portal"
NOW = datetime(2026, 1, 16, 9, 30, tzinfo=UTC)


def subscriber_created(uid: str) -> DomainEvent:
    after = {
        "uid": uid,
        "msisdn": "+447700900123",
        "imsi": "234150999999999",
        "iccid": "8944100000000000001",
        "email": "ada@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "status": "ACTIVE",
        "plan": "basic",
        "attributes": {"tier": 2},
    }
    (event,) = events_for(
        action="subscriber.create",
        entity_type="subscriber",
        entity_id=uid,
        actor="admin",
        at=NOW,
        request_id="req-1",
        retention_days=7,
        before=None,
        after=after,
    )
    return event


def committed(store: DynamoStore, *events: DomainEvent) -> list[dict[str, Any]]:
    """Write `events` as the store commits them (pending, in the outbox); their stream images."""
    items = [event_item(event) for event in events]
    store.table.batch_write(puts=items)
    return [serialize(item) for item in items]


def inserted(*images: dict[str, Any]) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = dynamodb_stream(*(("INSERT", image) for image in images))["Records"]
    return records


def pending_ids(store: DynamoStore) -> list[str]:
    return [event.id for event in store.events.pending(limit=100)]


class Bus:
    """moto's EventBridge bus with a rule sending everything from SOURCE to a queue."""

    def __init__(self) -> None:
        events = boto3.client("events", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        events.create_event_bus(Name=BUS)
        self.queue_url = sqs.create_queue(QueueName="bus-tap")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events.put_rule(Name="tap", EventBusName=BUS, EventPattern=json.dumps({"source": [SOURCE]}))
        events.put_targets(Rule="tap", EventBusName=BUS, Targets=[{"Id": "queue", "Arn": queue_arn}])
        self.sqs = sqs

    def received(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return messages
            for message in batch:
                messages.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def store() -> Iterator[DynamoStore]:
    for store in dynamo_store(CursorCodec(b"x" * 32)):  # moto, for DynamoDB and EventBridge alike
        assert isinstance(store, DynamoStore)
        yield store


@pytest.fixture
def bus(store: DynamoStore) -> Bus:
    return Bus()


@pytest.fixture
def consumed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids every consumer was handed, in order (the only consumer, for these tests)."""
    seen: list[str] = []
    monkeypatch.setattr(relay_module, "event_consumers", {"recorder": lambda event, runtime: seen.append(event.id)})
    return seen


@pytest.fixture
def runtime(store: DynamoStore) -> Runtime:
    return Runtime(make_settings(event_bus_name=BUS, aws_region=REGION), store=store)


class RefusingBus:
    """The real client, with PutEvents answering ErrorCode for entries of the refused event ids."""

    def __init__(self, refused: set[str]) -> None:
        self.real = EventBridgeBus(BUS, region=REGION)
        self.refused = refused
        self.calls: list[list[str]] = []

    def put(self, entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        ids = [json.loads(entry["Detail"])["id"] for entry in entries]
        self.calls.append(ids)
        accepted = [entry for entry, event_id in zip(entries, ids, strict=True) if event_id not in self.refused]
        results = iter(self.real.put(accepted) if accepted else [])
        throttled = {"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"}
        return [dict(throttled) if event_id in self.refused else next(results) for event_id in ids]


def with_bus(runtime: Runtime, bus: Any, sleeps: list[float]) -> None:
    runtime.provide("event_publisher", EventBridgePublisher(bus, source=SOURCE, role=Role.VIEWER, sleep=sleeps.append))


# --- the stream handler -------------------------------------------------------------------------------


def test_inserted_events_reach_the_bus_masked_then_leave_the_outbox(
    store: DynamoStore, bus: Bus, runtime: Runtime, consumed: list[str]
) -> None:
    first, second = subscriber_created("sub-1"), subscriber_created("sub-2")
    records = inserted(*committed(store, first, second))
    assert sorted(pending_ids(store)) == sorted([first.id, second.id])

    assert relay_stream_records(records, runtime) == {"batchItemFailures": []}

    published = bus.received()
    assert sorted(entry["detail"]["id"] for entry in published) == sorted([first.id, second.id])
    entry = next(entry for entry in published if entry["detail"]["id"] == first.id)
    assert entry["source"] == SOURCE
    assert entry["detail-type"] == SUBSCRIBER_CREATED
    assert entry["detail"] == envelope(first, Role.VIEWER)
    subscriber = entry["detail"]["data"]["subscriber"]
    # The viewer's view: what identifies a subscriber is masked, as the API masks it for viewers.
    assert subscriber["imsi"] != "234150999999999"
    assert "*" in subscriber["imsi"]
    assert subscriber["email"] != "ada@example.com"
    assert subscriber["first_name"] == "Ada"

    assert consumed == [first.id, second.id]
    assert pending_ids(store) == []
    # Relayed is not removed: the event stays readable for its subject until its TTL.
    assert [event.id for event in store.events.list_for_subject(first.subject, limit=10)] == [first.id]


def test_a_refused_entry_holds_back_its_subject_and_names_its_record(
    store: DynamoStore, bus: Bus, runtime: Runtime, consumed: list[str]
) -> None:
    a1, b1 = subscriber_created("sub-a"), subscriber_created("sub-b")
    a2 = a1.model_copy(update={"id": a1.id[:-1] + "z", "type": "subscriber.updated"})  # later, same subject
    records = inserted(*committed(store, a1, b1, a2))
    refusing = RefusingBus({a1.id})
    sleeps: list[float] = []
    with_bus(runtime, refusing, sleeps)

    response = relay_stream_records(records, runtime)

    assert response == {"batchItemFailures": [{"itemIdentifier": records[0]["dynamodb"]["SequenceNumber"]}]}
    # a1 was tried a few times with growing pauses, then given up for this invocation.
    assert [a1.id in call for call in refusing.calls] == [True, True, True, True]
    assert sleeps == [0.1, 0.2, 0.4]
    # b1 went through; a2 reached the bus in the same batch, but no consumer saw it before a1.
    assert consumed == [b1.id]
    assert sorted(pending_ids(store)) == sorted([a1.id, a2.id])
    assert sorted(entry["detail"]["id"] for entry in bus.received()) == sorted([b1.id, a2.id])

    # Lambda resends the shard from the named record on; the bus takes everything this time.
    refusing.refused.clear()
    assert relay_stream_records(records, runtime) == {"batchItemFailures": []}
    assert consumed == [b1.id, a1.id, b1.id, a2.id]  # b1 again: consumers de-duplicate by id
    assert pending_ids(store) == []


def test_updates_removals_and_other_items_are_not_relayed(
    store: DynamoStore, bus: Bus, runtime: Runtime, consumed: list[str]
) -> None:
    event = subscriber_created("sub-1")
    (image,) = committed(store, event)
    relayed_image = serialize(event_item(event, pending=False))  # mark_relayed's rewrite: a MODIFY
    subscriber_image = serialize({"PK": "SUB#sub-1", "SK": "SUB", "type": "subscriber", "uid": "sub-1"})
    batch = dynamodb_stream(("MODIFY", relayed_image), ("REMOVE", image), ("INSERT", subscriber_image))

    assert relay_stream_records(batch["Records"], runtime) == {"batchItemFailures": []}
    assert consumed == []
    assert bus.received() == []
    assert pending_ids(store) == [event.id]  # nothing was marked


def test_an_unreadable_event_item_stops_the_batch_at_its_record(
    store: DynamoStore, bus: Bus, runtime: Runtime, consumed: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    before, after = subscriber_created("sub-1"), subscriber_created("sub-2")
    good_before, good_after = committed(store, before, after)
    broken = {**good_before, "SK": {"S": "0" * 24}, "at": {"S": "not a time"}}
    records = inserted(good_before, broken, good_after)

    response = relay_stream_records(records, runtime)

    assert response == {"batchItemFailures": [{"itemIdentifier": records[1]["dynamodb"]["SequenceNumber"]}]}
    assert consumed == [before.id]
    assert pending_ids(store) == [after.id]
    # The log names the record and the error's kind, never the item's values.
    assert "ada@example.com" not in caplog.text
    assert "234150999999999" not in caplog.text


def test_without_a_bus_the_consumers_still_get_every_event(store: DynamoStore, consumed: list[str]) -> None:
    runtime = Runtime(make_settings(aws_region=REGION), store=store)
    assert event_publisher(runtime) is None
    event = subscriber_created("sub-1")
    assert relay_stream_records(inserted(*committed(store, event)), runtime) == {"batchItemFailures": []}
    assert consumed == [event.id]
    assert pending_ids(store) == []


def test_the_publisher_is_built_once_per_process(runtime: Runtime, bus: Bus) -> None:
    publisher = event_publisher(runtime)
    assert isinstance(publisher, EventBridgePublisher)
    assert event_publisher(runtime) is publisher
    assert publisher.role is Role.VIEWER
    assert publisher.source == SOURCE


# --- the publisher ---------------------------------------------------------------------------------------


class RecordingBus:
    """PutEvents as a list: refuses the first `refusals[id]` attempts of an event, else takes it."""

    def __init__(self, refusals: dict[str, int] | None = None) -> None:
        self.refusals = dict(refusals or {})
        self.calls: list[list[dict[str, Any]]] = []

    def put(self, entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        self.calls.append(list(entries))
        results = []
        for entry in entries:
            event_id = json.loads(entry["Detail"])["id"]
            if self.refusals.get(event_id, 0) > 0:
                self.refusals[event_id] -= 1
                results.append({"ErrorCode": "InternalFailure", "ErrorMessage": "try again"})
            else:
                results.append({"EventId": f"bus-{event_id}"})
        return results


def events_with_data(count: int, *, data_bytes: int = 10) -> list[DomainEvent]:
    base = subscriber_created("sub-x")
    return [
        base.model_copy(update={"id": f"{index:024x}", "subject": f"job/j{index}", "data": {"note": "n" * data_bytes}})
        for index in range(count)
    ]


def test_entries_go_in_order_in_requests_of_ten_at_most() -> None:
    fake = RecordingBus()
    events = events_with_data(25)
    assert EventBridgePublisher(fake, source=SOURCE, role=Role.VIEWER).publish(events) == set()
    assert [len(call) for call in fake.calls] == [10, 10, 5]
    sent = [json.loads(entry["Detail"])["id"] for call in fake.calls for entry in call]
    assert sent == [event.id for event in events]
    entry = fake.calls[0][0]
    assert entry["Source"] == SOURCE
    assert entry["DetailType"] == SUBSCRIBER_CREATED
    assert entry["Time"] == events[0].at


def test_requests_stay_within_256_kb_and_an_oversized_entry_is_never_sent(caplog: pytest.LogCaptureFixture) -> None:
    fake = RecordingBus()
    large = events_with_data(5, data_bytes=100 * 1024)  # two fit in one request, not three
    oversized = events_with_data(1, data_bytes=MAX_REQUEST_BYTES)[0].model_copy(update={"id": "f" * 24})
    publisher = EventBridgePublisher(fake, source=SOURCE, role=Role.VIEWER)

    assert publisher.publish([*large[:2], oversized, *large[2:]]) == {oversized.id}

    assert [len(call) for call in fake.calls] == [2, 2, 1]
    assert all(sum(entry_size(entry) for entry in call) <= MAX_REQUEST_BYTES for call in fake.calls)
    assert oversized.id not in {json.loads(entry["Detail"])["id"] for call in fake.calls for entry in call}
    assert [record.__dict__.get("event_id") for record in caplog.records if "entry limit" in record.message] == [
        oversized.id
    ]
    assert MAX_ENTRIES_PER_REQUEST == 10


def test_entry_size_counts_as_eventbridge_does() -> None:
    entry = {"Time": NOW, "Source": "src", "DetailType": "type.é", "Detail": '{"a":"ü"}'}
    assert entry_size(entry) == 14 + 3 + len("type.é".encode()) + len('{"a":"ü"}'.encode())
    assert entry_size({"Source": "s", "Detail": "{}", "Resources": ["arn:x"]}) == 1 + 2 + 5


def test_refused_entries_are_sent_again_with_backoff_and_only_they() -> None:
    events = events_with_data(3)
    fake = RecordingBus({events[1].id: 2})
    sleeps: list[float] = []
    publisher = EventBridgePublisher(fake, source=SOURCE, role=Role.VIEWER, sleep=sleeps.append)

    assert publisher.publish(events) == set()
    assert [[json.loads(entry["Detail"])["id"] for entry in call] for call in fake.calls] == [
        [event.id for event in events],
        [events[1].id],
        [events[1].id],
    ]
    assert sleeps == [0.1, 0.2]


def test_an_entry_refused_on_every_attempt_is_reported_unpublished(caplog: pytest.LogCaptureFixture) -> None:
    events = events_with_data(2)
    fake = RecordingBus({events[0].id: 100})
    sleeps: list[float] = []
    publisher = EventBridgePublisher(fake, source=SOURCE, role=Role.VIEWER, attempts=3, sleep=sleeps.append)
    assert publisher.publish(events) == {events[0].id}
    assert len(fake.calls) == 3
    assert sleeps == [0.1, 0.2]
    (given_up,) = [record for record in caplog.records if "not published after retries" in record.message]
    assert given_up.__dict__["event_ids"] == [events[0].id]


def test_each_role_gets_its_own_view_of_the_subscriber() -> None:
    event = subscriber_created("sub-1")
    for role in Role:
        detail = json.loads(EventBridgePublisher(RecordingBus(), source=SOURCE, role=role).entry(event)["Detail"])
        assert detail == envelope(event, role)
    admin = json.loads(EventBridgePublisher(RecordingBus(), source=SOURCE, role=Role.ADMIN).entry(event)["Detail"])
    assert admin["data"]["subscriber"]["imsi"] == "234150999999999"


def test_a_call_that_fails_as_a_whole_fails_each_entry(store: DynamoStore) -> None:
    """No bus of that name in the account: every entry of the call comes back failed, not raised."""
    results = EventBridgeBus("no-such-bus", region=REGION).put(
        [{"Source": SOURCE, "DetailType": "t", "Detail": "{}"}] * 2
    )
    assert len(results) == 2
    assert all("ErrorCode" in result and "EventId" not in result for result in results)


# --- settings ------------------------------------------------------------------------------------------


def test_bus_settings_are_validated() -> None:
    assert make_settings().event_bus_name is None
    assert make_settings().event_bus_role == "viewer"
    assert make_settings(event_bus_name="arn:aws:events:eu-west-1:123456789012:event-bus/portal").event_bus_name
    with pytest.raises(ValidationError, match="event_bus_source"):
        make_settings(event_bus_source="aws.portal")  # reserved for AWS services
    with pytest.raises(ValidationError, match="event_bus_role"):
        make_settings(event_bus_role="root")
    with pytest.raises(ValidationError, match="event_bus_name"):
        make_settings(event_bus_name="bus with spaces")


def test_no_call_starts_once_the_time_budget_is_spent() -> None:
    """A bus that is down must not hold a stream batch past its invocation: what is left is unpublished."""
    events = events_with_data(25)
    now = [0.0]

    class SlowBus(RecordingBus):
        def put(self, entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
            now[0] += 8.0  # each call takes 8 s and is refused as a whole
            self.calls.append(list(entries))
            return [{"ErrorCode": "InternalFailure", "ErrorMessage": "timeout"} for _ in entries]

    slow = SlowBus()
    publisher = EventBridgePublisher(
        slow, source=SOURCE, role=Role.VIEWER, budget=20.0, sleep=lambda seconds: None, clock=lambda: now[0]
    )
    assert publisher.publish(events) == {event.id for event in events}
    assert len(slow.calls) == 3  # started at 0, 8 and 16 s; none at 24 s
