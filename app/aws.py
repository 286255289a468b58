"""The AWS services the app calls besides its stores: SSM (the signing secret) and SQS (job messages).

Besides `app/storage/` (DynamoDB, S3), this is the only place that imports boto3
(tests/test_layers.py). boto3 is imported when a client is first built, so these services cost a
process nothing until it calls them.
"""

from __future__ import annotations


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
