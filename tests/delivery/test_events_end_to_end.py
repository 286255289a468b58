"""The change feed end to end, as in AWS: a booking made through the HTTP API (serverless-offline)
commits its event item; the table's stream (DynamoDB Local's own) carries it, filtered as the
stack's event source mapping filters it, to the function, which puts exactly one entry on the
EventBridge bus (moto), sends one signed webhook that the integrator's HTTPS receiver verifies,
sends one confirmation email (SES on moto) and schedules the reminder. Lambda's retry of the same
records puts the same event (same id) on the bus again, and sends no second webhook or email.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer
from standardwebhooks import Webhook

from tests.delivery.conftest import OfflineApi
from tests.delivery.test_end_to_end import ADMIN_PASSWORD, call, create_admin
from tests.delivery.test_events_stack import Template, matches, stream_mapping

pytestmark = pytest.mark.slow
ADMIN = "e2e-events-admin"


def stream_records(api: OfflineApi) -> list[dict[str, Any]]:
    """Every record on the table's stream so far, shaped as Lambda hands them to the function."""
    dynamodb, streams = api.client("dynamodb"), api.client("dynamodbstreams")
    arn = dynamodb.describe_table(TableName=api.table_name)["Table"]["LatestStreamArn"]
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            if not page["Records"]:
                break
            records.extend(page["Records"])
            iterator = page.get("NextShardIterator")
    for record in records:
        record["eventSourceARN"] = arn
        if "NewImage" in record["dynamodb"]:
            image = record["dynamodb"]["NewImage"]
            record["dynamodb"]["NewImage"] = {name: _attribute(value) for name, value in image.items()}
        created = record["dynamodb"].get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            record["dynamodb"]["ApproximateCreationDateTime"] = created.timestamp()
    return records


def _attribute(value: dict[str, Any]) -> dict[str, Any]:
    """An attribute value as Lambda delivers it: boto3's streams client hands an empty map back as
    `{}`, where the record (and the function's event in AWS) holds `{"M": {}}`."""
    if not value:
        return {"M": {}}
    ((kind, inner),) = value.items()
    if kind == "M":
        return {"M": {name: _attribute(member) for name, member in inner.items()}}
    if kind == "L":
        return {"L": [_attribute(member) for member in inner]}
    return value


def relay_stream(api: OfflineApi, template: Template) -> None:
    """Lambda's part: the mapping's filter, then the function, in batches of the mapping's size."""
    mapping = stream_mapping(template)
    (pattern,) = [json.loads(entry["Pattern"]) for entry in mapping["FilterCriteria"]["Filters"]]
    selected = [record for record in stream_records(api) if matches(pattern, record)]
    assert selected, "no event item on the stream"
    size = int(mapping["BatchSize"])
    for start in range(0, len(selected), size):
        result = api.invoke({"Records": selected[start : start + size]}, timeout=120)
        assert result == {"batchItemFailures": []}, (result, api.log_tail())


def bus_queue(api: OfflineApi) -> str:
    """A rule on the bus sending booking confirmations to a queue, as a consumer service would."""
    sqs, events = api.client("sqs"), api.client("events")
    url = sqs.create_queue(QueueName="e2e-booking-confirmations")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {"source": ["subscriber-portal"], "detail-type": ["booking.confirmed"]}
    events.put_rule(Name="e2e-confirmations", EventBusName=api.event_bus_name, EventPattern=json.dumps(pattern))
    events.put_targets(Rule="e2e-confirmations", EventBusName=api.event_bus_name, Targets=[{"Id": "q", "Arn": arn}])
    return url


def bus_entries(api: OfflineApi, queue_url: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    while messages := api.client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages"):
        entries.extend(json.loads(message["Body"]) for message in messages)
        for message in messages:
            api.client("sqs").delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return entries


def emails_sent(api: OfflineApi) -> int:
    return int(api.client("ses").get_send_quota()["SentLast24Hours"])


def item(api: OfflineApi, pk: str, sk: str) -> dict[str, Any]:
    raw = api.client("dynamodb").get_item(TableName=api.table_name, Key={"PK": {"S": pk}, "SK": {"S": sk}})
    return {name: TypeDeserializer().deserialize(value) for name, value in raw["Item"].items()}


def test_a_booking_yields_one_bus_event_one_verified_webhook_one_email_and_its_reminder(
    offline_api: OfflineApi, template: Template
) -> None:
    api, hook = offline_api, offline_api.webhook_receiver
    create_admin(api, ADMIN)
    status, _, tokens = call(api, "POST", "/auth/login", form={"username": ADMIN, "password": ADMIN_PASSWORD})
    assert status == 200, api.log_tail()
    token = tokens["access_token"]
    queue_url = bus_queue(api)

    status, _, webhook = call(
        api, "POST", "/webhooks", token=token, body={"url": hook.url, "event_types": ["booking.confirmed"]}
    )
    assert status == 201, webhook
    subscriber = {
        "uid": "e2e-events-1",
        "msisdn": "+447911123499",
        "imsi": "234150000009101",
        "email": "ada@subscriber.example",
        "notification_channel": "email",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "status": "ACTIVE",
        "plan": "GOLD",
    }
    status, _, stored = call(api, "POST", "/subscribers", token=token, body=subscriber)
    assert status == 201, stored["errors"] if status == 422 else stored
    hours = {day: [{"open": "00:00", "close": "24:00"}] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    resource = {"name": "Events desk", "kind": "agent", "timezone": "Europe/London", "slot_minutes": 60}
    status, _, created = call(
        api, "POST", "/bookings/resources", token=token, body={**resource, "capacity": 1, "weekly_schedule": hours}
    )
    assert status == 201, created
    start = (datetime.now(UTC) + timedelta(days=3)).replace(hour=14, minute=0, second=0, microsecond=0)
    body = {"resource_id": created["id"], "subscriber_uid": "e2e-events-1", "start": start.isoformat()}
    emails_before = emails_sent(api)
    status, _, booking = call(api, "POST", "/bookings", token=token, body=body)
    assert status == 201, booking
    assert hook.received == []  # nothing leaves before the stream relays the event

    relay_stream(api, template)

    def on_the_bus() -> list[dict[str, Any]]:
        entries = bus_entries(api, queue_url)
        return [entry for entry in entries if entry["detail"]["data"]["booking"]["id"] == booking["id"]]

    (entry,) = on_the_bus()
    assert (entry["source"], entry["detail-type"]) == ("subscriber-portal", "booking.confirmed")
    event_id = entry["detail"]["id"]

    # Lambda retrying the same records (a later record's failure, a timeout): at least once on the
    # bus, the same event id again for its consumers to de-duplicate; webhook and email not again.
    relay_stream(api, template)
    assert [again["detail"]["id"] for again in on_the_bus()] == [event_id]

    deliveries = [request for request in hook.received if json.loads(request.body)["id"] == event_id]
    assert len(deliveries) == 1
    payload = Webhook(webhook["secret"]).verify(deliveries[0].body, deliveries[0].headers)
    assert payload["type"] == "booking.confirmed"
    assert payload["data"]["booking"]["start"].startswith(start.strftime("%Y-%m-%dT%H:%M"))

    assert emails_sent(api) - emails_before == 1  # the confirmation, once
    claim = item(api, f"NOTIFICATION#{event_id}-confirmation", "NOTIFICATION")
    assert (claim["status"], claim["channel"]) == ("SENT", "email")

    reminder = item(api, f"REMINDER#{booking['id']}", "REMINDER")  # due at the configured lead (24 h)
    assert datetime.fromisoformat(reminder["due_at"]) == start - timedelta(hours=24)
    result = api.invoke({"task": "notifications-reminders"})
    assert result["task"] == "notifications-reminders"
    assert emails_sent(api) - emails_before == 1  # not due yet: nothing more sent
