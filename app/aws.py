"""The AWS services the app calls besides its stores: SSM (the signing secret), SQS (job messages),
SES and SNS (messages to subscribers).

Besides `app/storage/` (DynamoDB, S3), this is the only place that imports boto3
(tests/test_layers.py). boto3 is imported when a client is first built, so these services cost a
process nothing until it calls them.
"""

from __future__ import annotations

from collections.abc import Callable
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
