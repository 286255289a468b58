"""The change feed's part of the packaged stack: the table's stream, its mapping onto the function
(filter, partial batch responses, order, dead-letter queue), the event bus, what the function may
send to subscribers, and the alarms an operator gets (docs/operations.md, "Alarms")."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from app.storage.dynamodb.events import event_item
from app.storage.dynamodb.schema import table_definition
from app.storage.dynamodb.table import serialize
from app.storage.records import DomainEvent
from tests.delivery.test_template import as_list, event_source_mapping, resources, statements
from tests.lambda_events import dynamodb_stream

Template = dict[str, Any]
STREAM = {"Fn::GetAtt": ["PortalTable", "StreamArn"]}
TOPIC = {"Ref": "AlarmTopic"}
FUNCTION = {"Ref": "ApiLambdaFunction"}


def stream_mapping(template: Template) -> dict[str, Any]:
    return event_source_mapping(template, STREAM)


def matches(pattern: Any, value: Any) -> bool:
    """An event filter pattern (objects and lists of allowed values, all this stack uses) on a record."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            key in value and matches(inner, value[key]) for key, inner in pattern.items()
        )
    return value in pattern


# --- the stream and its mapping ------------------------------------------------------------------------


def test_the_table_streams_new_images(template: Template) -> None:
    table = template["Resources"]["PortalTable"]["Properties"]
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}


def test_the_stream_mapping_keeps_order_and_reports_partial_failures(template: Template) -> None:
    mapping = stream_mapping(template)
    assert mapping["FunctionName"] == {"Fn::GetAtt": ["ApiLambdaFunction", "Arn"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # Bisecting would resend the second half of a batch while its first half still waits.
    assert mapping["BisectBatchOnFunctionError"] is False
    assert mapping["StartingPosition"] == "TRIM_HORIZON"  # nothing committed before the mapping is skipped
    assert mapping.get("ParallelizationFactor", 1) == 1
    # Bounded: a batch that keeps failing is given up on (its events stay in the outbox), and
    # does not hold up the rest of its shard for the stream's whole 24 hours.
    assert 1 <= mapping["MaximumRetryAttempts"] <= 20
    assert 60 <= mapping["MaximumRecordAgeInSeconds"] <= 6 * 3600
    assert 1 <= mapping["BatchSize"] <= 100
    assert mapping["DestinationConfig"] == {
        "OnFailure": {"Destination": {"Fn::GetAtt": ["EventStreamDeadLetterQueue", "Arn"]}}
    }


def test_the_stream_filter_lets_through_inserted_event_items_only(template: Template) -> None:
    (pattern,) = [json.loads(entry["Pattern"]) for entry in stream_mapping(template)["FilterCriteria"]["Filters"]]
    event = DomainEvent(
        id="18ed5ef6a33d8848e913d27f",
        type="booking.confirmed",
        at=datetime(2026, 1, 16, 9, 30, tzinfo=UTC),
        subject="booking/b1",
        actor="admin",
    )
    pending, relayed = serialize(event_item(event)), serialize(event_item(event, pending=False))
    other = serialize({"PK": "BOOKING#b1", "SK": "BOOKING", "type": "booking", "id": "b1"})
    records = dynamodb_stream(("INSERT", pending), ("MODIFY", relayed), ("REMOVE", pending), ("INSERT", other))
    assert [matches(pattern, record) for record in records["Records"]] == [True, False, False, False]


def test_the_stream_dead_letter_queue_keeps_failures_for_two_weeks(template: Template) -> None:
    queue = template["Resources"]["EventStreamDeadLetterQueue"]
    assert queue["Type"] == "AWS::SQS::Queue"
    assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    senders = [
        s
        for s in statements(template["Resources"]["IamRoleLambdaExecution"])
        if {"Fn::GetAtt": ["EventStreamDeadLetterQueue", "Arn"]} in as_list(s["Resource"])
    ]
    assert [sorted(as_list(s["Action"])) for s in senders] == [["sqs:ListQueues", "sqs:SendMessage"]]


# --- the bus -----------------------------------------------------------------------------------------------


def test_the_function_puts_events_on_its_own_bus_only(template: Template) -> None:
    bus = template["Resources"]["EventBus"]
    assert bus["Type"] == "AWS::Events::EventBus"
    assert bus["Properties"]["Name"] == "subscriber-portal-dev"
    events = [
        s
        for s in statements(template["Resources"]["IamRoleLambdaExecution"])
        if any(action.startswith("events:") for action in as_list(s["Action"]))
    ]
    assert [(as_list(s["Action"]), as_list(s["Resource"])) for s in events] == [
        (["events:PutEvents"], [{"Fn::GetAtt": ["EventBus", "Arn"]}])
    ]
    assert template["Outputs"]["EventBusName"]["Value"] == {"Ref": "EventBus"}


# --- notifications ------------------------------------------------------------------------------------------


def test_email_and_sms_permissions_exist_only_where_a_stage_configures_them(template: Template) -> None:
    policy = template["Resources"]["NotificationsPolicy"]
    assert policy["Type"] == "AWS::IAM::Policy"
    assert policy["Condition"] == "SendsNotifications"
    assert policy["Properties"]["Roles"] == [{"Ref": "IamRoleLambdaExecution"}]
    # dev sets neither: both conditions are constant false there.
    conditions = template["Conditions"]
    assert conditions["SendsEmail"] == {"Fn::Not": [{"Fn::Equals": ["", ""]}]}
    assert conditions["SendsSms"] == {"Fn::Equals": ["false", "true"]}

    by_sid = {}
    for conditional in policy["Properties"]["PolicyDocument"]["Statement"]:
        condition, statement, otherwise = conditional["Fn::If"]
        assert otherwise == {"Ref": "AWS::NoValue"}
        by_sid[statement["Sid"]] = (condition, statement)

    condition, ses = by_sid["SendEmailFromTheIdentity"]
    assert condition == "SendsEmail"
    assert sorted(as_list(ses["Action"])) == ["ses:SendEmail", "ses:SendRawEmail"]
    assert as_list(ses["Resource"]) == [
        {"Fn::Sub": "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/"}
    ]
    # SMS has no ARN to grant on: "*", with every topic and endpoint denied, leaves direct SMS only.
    condition, sms = by_sid["PublishSms"]
    assert (condition, sms["Effect"], sms["Action"], sms["Resource"]) == ("SendsSms", "Allow", "sns:Publish", "*")
    condition, deny = by_sid["PublishSmsOnly"]
    assert (condition, deny["Effect"], deny["Action"]) == ("SendsSms", "Deny", "sns:Publish")
    assert deny["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:sns:*:*:*"}


# --- alarms ----------------------------------------------------------------------------------------------


def alarms(template: Template) -> dict[str, dict[str, Any]]:
    return {name: res["Properties"] for name, res in resources(template, "AWS::CloudWatch::Alarm").items()}


def metrics_of(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """The metrics an alarm watches: `{Namespace, MetricName, Dimensions}` for each."""
    if "MetricName" in alarm:
        return [{key: alarm[key] for key in ("Namespace", "MetricName", "Dimensions")}]
    return [query["MetricStat"]["Metric"] for query in alarm["Metrics"] if "MetricStat" in query]


def watching(template: Template, namespace: str, metric: str) -> list[dict[str, Any]]:
    return [
        alarm
        for alarm in alarms(template).values()
        if any(m["Namespace"] == namespace and m["MetricName"] == metric for m in metrics_of(alarm))
    ]


def test_every_alarm_notifies_the_alarm_topic(template: Template) -> None:
    topic = template["Resources"]["AlarmTopic"]
    assert topic["Type"] == "AWS::SNS::Topic"
    found = alarms(template)
    assert len(found) >= 9
    for name, alarm in found.items():
        assert alarm["AlarmActions"] == [TOPIC], name
        assert alarm["OKActions"] == [TOPIC], name
        assert alarm["TreatMissingData"] == "notBreaching", name
        assert alarm["AlarmName"].startswith("subscriber-portal-dev-"), name
    subscription = template["Resources"]["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"]["TopicArn"] == TOPIC
    assert subscription["Properties"]["Protocol"] == "email"
    assert template["Outputs"]["AlarmTopicArn"]["Value"] == TOPIC


def test_every_dead_letter_queue_alarms_when_not_empty(template: Template) -> None:
    queues = template["Resources"]
    dead_letter = {
        queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for queue in resources(template, "AWS::SQS::Queue").values()
        if "RedrivePolicy" in queue["Properties"]
    } | {
        mapping["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
        for mapping in resources(template, "AWS::Lambda::EventSourceMapping").values()
        if "DestinationConfig" in mapping["Properties"]
    }
    assert dead_letter == {"JobsDeadLetterQueue", "EventStreamDeadLetterQueue"}
    assert all(queues[name]["Type"] == "AWS::SQS::Queue" for name in dead_letter)
    watched = {}
    for alarm in watching(template, "AWS/SQS", "ApproximateNumberOfMessagesVisible"):
        (dimension,) = alarm["Dimensions"]
        assert dimension["Name"] == "QueueName"
        watched[dimension["Value"]["Fn::GetAtt"][0]] = alarm
    assert set(watched) == dead_letter
    for alarm in watched.values():
        assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
            "Maximum",
            0,
            "GreaterThanThreshold",
        )


def test_function_errors_throttles_and_stream_lag_alarm(template: Template) -> None:
    for metric in ("Errors", "Throttles", "IteratorAge"):
        (alarm,) = watching(template, "AWS/Lambda", metric)
        assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": FUNCTION}], metric
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    (errors,) = watching(template, "AWS/Lambda", "Errors")
    assert (errors["Statistic"], errors["Threshold"]) == ("Sum", 0)


def test_api_5xx_rate_and_p99_latency_alarm(template: Template) -> None:
    (rate,) = watching(template, "AWS/ApiGateway", "5xx")
    watched = {m["MetricName"]: m["Dimensions"] for m in metrics_of(rate)}
    assert watched == {"5xx": [{"Name": "ApiId", "Value": {"Ref": "HttpApi"}}], "Count": watched["Count"]}
    assert watched["Count"] == [{"Name": "ApiId", "Value": {"Ref": "HttpApi"}}]
    (expression,) = [query for query in rate["Metrics"] if query.get("ReturnData")]
    assert "100 * errors / requests" in expression["Expression"]
    assert 0 < rate["Threshold"] < 100

    (latency,) = watching(template, "AWS/ApiGateway", "Latency")
    assert latency["ExtendedStatistic"] == "p99"
    assert latency["Dimensions"] == [{"Name": "ApiId", "Value": {"Ref": "HttpApi"}}]
    assert latency["Threshold"] > 0


def test_dynamodb_throttling_of_the_table_and_every_index_alarms(template: Template) -> None:
    indexes = {index["IndexName"] for index in table_definition("x")["GlobalSecondaryIndexes"]}
    watched: set[tuple[str, str]] = set()
    for metric in ("ReadThrottleEvents", "WriteThrottleEvents"):
        for alarm in watching(template, "AWS/DynamoDB", metric):
            for m in metrics_of(alarm):
                dimensions = {d["Name"]: d["Value"] for d in m["Dimensions"]}
                assert dimensions["TableName"] == {"Ref": "PortalTable"}
                watched.add((m["MetricName"], dimensions.get("GlobalSecondaryIndexName", "table")))
            (expression,) = [query for query in alarm["Metrics"] if query.get("ReturnData")]
            ids = [query["Id"] for query in alarm["Metrics"] if "MetricStat" in query]
            assert all(f"FILL({id_}, 0)" in expression["Expression"] for id_ in ids)  # every metric counts
    expected = {
        (metric, part) for metric in ("ReadThrottleEvents", "WriteThrottleEvents") for part in indexes | {"table"}
    }
    assert watched == expected
