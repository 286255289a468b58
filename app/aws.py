"""The AWS services the app calls besides its stores: SSM (the signing secret), SQS (job messages)
and EventBridge (committed events, `app.changefeed.bus`).

Besides `app/storage/` (DynamoDB, S3), this is the only place that imports boto3
(tests/test_layers.py). boto3 is imported when a client is first built, so these services cost a
process nothing until it calls them.
"""

from __future__ import annotations

from collections.abc import Sequence
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
