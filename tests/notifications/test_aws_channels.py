"""Email through SES and SMS through SNS (moto): what was sent, from whom, to whom."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends
from moto.sns.models import sns_backends

from app.changefeed import consumers  # noqa: F401 - registers the consumer and the task
from app.changefeed.relay import event_consumers
from app.events import scheduled_tasks
from app.notifications.consumer import REMINDER_TASK, notification_service
from app.notifications.service import Outcome, notification_id
from app.notifications.transport import AwsTransport
from app.runtime import Runtime
from app.storage.records import NotificationKind, NotificationStatus
from tests.notifications.conftest import World

REGION = "eu-west-1"
SENDER = "no-reply@portal.example.com"


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        boto3.client("ses", region_name=REGION).verify_email_identity(EmailAddress=SENDER)
        yield


@pytest.fixture
def aws_world(aws: None, world_factory: Callable[..., World]) -> World:
    world = world_factory(
        notifications_transport="aws", notifications_email_sender=SENDER, notifications_sms_sender_id="Portal"
    )
    world.transport = AwsTransport(world.settings)
    return world


def test_email_goes_through_ses_once(aws_world: World) -> None:
    aws_world.add_subscriber("sub-1")
    _, event = aws_world.book("sub-1")
    assert aws_world.service.handle_event(event) is Outcome.SENT
    assert aws_world.service.handle_event(event) is Outcome.DONE_BEFORE
    sent = ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages
    assert len(sent) == 1
    assert sent[0].source == SENDER
    assert sent[0].destinations["ToAddresses"] == ["sub-1@example.com"]
    assert sent[0].subject.startswith("Your appointment is booked")
    assert "Fifth Avenue store" in sent[0].body
    stored = aws_world.store.notifications.get(notification_id(event.id, NotificationKind.CONFIRMATION))
    assert stored is not None
    assert stored.status is NotificationStatus.SENT
    assert stored.provider_id == sent[0].id
    assert aws_world.files() == []  # nothing written locally


def test_sms_goes_through_sns_to_the_msisdn(aws_world: World) -> None:
    aws_world.add_subscriber("sub-1", notification_channel="sms")
    _, event = aws_world.book("sub-1")
    assert aws_world.service.handle_event(event) is Outcome.SENT
    messages = sns_backends[DEFAULT_ACCOUNT_ID][REGION].sms_messages
    ((number, text),) = [(number, text) for number, text, *_ in messages.values()]
    assert number == "+447911120001"
    assert text.startswith("Booked: Fifth Avenue store")
    assert len(text) <= 160


def test_an_unverified_sender_is_refused_and_not_retried(aws: None, world_factory: Callable[..., World]) -> None:
    world = world_factory(notifications_transport="aws", notifications_email_sender="other@portal.example.com")
    world.transport = AwsTransport(world.settings)
    world.add_subscriber("sub-1")
    _, event = world.book("sub-1")
    assert world.service.handle_event(event) is Outcome.FAILED
    stored = world.store.notifications.get(notification_id(event.id, NotificationKind.CONFIRMATION))
    assert stored is not None
    assert stored.reason == "refused: MessageRejected"


def test_the_consumer_and_the_reminder_task_are_registered_and_use_the_runtime(
    aws_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = Runtime(aws_world.settings, aws_world.store)
    runtime.provide("notifications.clock", aws_world.clock)
    aws_world.add_subscriber("sub-1")
    booking, event = aws_world.book("sub-1")
    event_consumers["notifications"](event, runtime)
    assert isinstance(notification_service(runtime).transport, AwsTransport)
    assert len(ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages) == 1
    aws_world.clock.now = booking.start - timedelta(hours=24)
    assert scheduled_tasks[REMINDER_TASK](runtime) == {"sent": 1}
    assert len(ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages) == 2
