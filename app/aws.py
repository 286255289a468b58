"""The AWS services the app calls besides its stores: SSM (the signing secret), SQS (job messages),
SES and SNS (messages to subscribers) and EventBridge (committed events, `app.changefeed.bus`).

Besides `app/storage/` (DynamoDB, S3), this is the only place that imports boto3
(tests/test_layers.py). boto3 is imported when a client is first built, so these services cost a
process nothing until it calls them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def read_secure_parameter(name: str, *, region: str) -> str:
    """The decrypted value of an SSM parameter (a SecureString, say)."""
    import boto3

    parameter = boto3.client("ssm", region_name=region).get_parameter(Name=name, WithDecryption=True)
    return str(parameter["Parameter"]["Value"])


class SqsQueue:
    """One queue and the one client that sends to it, kept for the life of the process."""

    def __init__(self, url: str, *, region: str) -> None:
        import boto3

        self._client = boto3.client("sqs", region_name=region)
        self.url = url

    def send(self, body: str) -> None:
        self._client.send_message(QueueUrl=self.url, MessageBody=body)


def _messaging_config() -> Any:
    from botocore.config import Config

    # A message is sent inside an event's relay or the reminder task: fail fast, and let the
    # caller's own retry (the relay's, the next task run) take over rather than stall it.
    return Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10)


class MessageRefused(Exception):
    """SES or SNS refused the message itself (a bad address, an unverified sender): sending it
    again would fail again."""


# Error codes that say the message (not the service) is at fault.
_REFUSALS = frozenset({"MessageRejected", "InvalidParameter", "InvalidParameterValue", "MailFromDomainNotVerified"})


def _send(call: Callable[[], dict[str, Any]]) -> str:
    from botocore.exceptions import ClientError

    try:
        return str(call()["MessageId"])
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _REFUSALS:
            raise MessageRefused(code) from exc
        raise


class SesEmail:
    """Plain-text email through SES, from one verified sender; one client per process."""

    def __init__(self, sender: str, *, region: str) -> None:
        import boto3

        self._client = boto3.client("ses", region_name=region, config=_messaging_config())
        self.sender = sender

    def send(self, to: str, subject: str, body: str) -> str:
        """The SES message id."""
        return _send(
            lambda: self._client.send_email(
                Source=self.sender,
                Destination={"ToAddresses": [to]},
                Message={
                    "Subject": {"Data": subject, "Charset": "UTF-8"},
                    "Body": {"Text": {"Data": body, "Charset": "UTF-8"}},
                },
            )
        )


class SnsSms:
    """Transactional SMS through SNS, straight to a phone number; one client per process."""

    def __init__(self, *, region: str, sender_id: str | None = None) -> None:
        import boto3

        self._client = boto3.client("sns", region_name=region, config=_messaging_config())
        self._attributes: dict[str, dict[str, str]] = {
            "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"}
        }
        if sender_id:
            self._attributes["AWS.SNS.SMS.SenderID"] = {"DataType": "String", "StringValue": sender_id}

    def send(self, phone_number: str, text: str) -> str:
        """The SNS message id."""
        return _send(
            lambda: self._client.publish(PhoneNumber=phone_number, Message=text, MessageAttributes=self._attributes)
        )


class EventBridgeBus:
    """PutEvents to one bus with one client kept for the life of the process.

    `put` returns one result per entry, in order: `{"EventId": ...}` when the bus took it, else
    `{"ErrorCode": ..., "ErrorMessage": ...}`. A call that fails as a whole (throttled past
    botocore's own retries, no permission, no connection) fails each of its entries the same way,
    so the caller has one kind of failure to retry.
    """

    def __init__(self, name: str, *, region: str) -> None:
        import boto3
        from botocore.config import Config

        # Short timeouts and one retry: a stream batch waits for this call (the publisher retries
        # refused entries itself, within its time budget), and a retry is cheaper than a hang.
        config = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 2})
        self._client = boto3.client("events", region_name=region, config=config)
        self.name = name

    def put(self, entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._client.put_events(Entries=[{**entry, "EventBusName": self.name} for entry in entries])
        except ClientError as exc:
            error = exc.response.get("Error", {})
            failed = {"ErrorCode": str(error.get("Code", "ClientError")), "ErrorMessage": str(error.get("Message", ""))}
            return [dict(failed) for _ in entries]
        except BotoCoreError as exc:
            return [{"ErrorCode": type(exc).__name__, "ErrorMessage": str(exc)} for _ in entries]
        results = list(response.get("Entries", []))
        if len(results) != len(entries):  # never seen; treated as every entry failed, not guessed
            return [{"ErrorCode": "MalformedResponse", "ErrorMessage": "entry count mismatch"} for _ in entries]
        return results
