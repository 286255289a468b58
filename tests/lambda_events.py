"""Real-shaped Lambda events (API Gateway HTTP API payload v2, REST v1, SQS, S3), as AWS sends them."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode


def http_v2(
    method: str,
    path: str,
    *,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | str | None = None,
    base64_body: bool = False,
    cookies: list[str] | None = None,
    stage: str = "$default",
) -> dict[str, Any]:
    raw_path = path if stage == "$default" else f"/{stage}{path}"
    all_headers = {
        "accept": "*/*",
        "host": "abc123.execute-api.eu-west-1.amazonaws.com",
        "user-agent": "pytest",
        "x-forwarded-for": "203.0.113.7",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
        **{k.lower(): v for k, v in (headers or {}).items()},
    }
    if body is not None:
        raw = body.encode() if isinstance(body, str) else body
        all_headers.setdefault("content-length", str(len(raw)))
        body = base64.b64encode(raw).decode() if base64_body else raw.decode()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": urlencode(query or {}),
        "headers": all_headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "pytest",
            },
            "requestId": f"{uuid.uuid4().hex[:8]}=",
            "routeKey": "$default",
            "stage": stage,
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
            "timeEpoch": int(time.time() * 1000),
        },
        "isBase64Encoded": base64_body,
    }
    if query:
        event["queryStringParameters"] = query
    if cookies:
        event["cookies"] = cookies
    if body is not None:
        event["body"] = body
    return event


def rest_v1(method: str, path: str, *, stage: str = "dev") -> dict[str, Any]:
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": {"Host": "abc123.execute-api.eu-west-1.amazonaws.com", "X-Forwarded-Port": "443"},
        "multiValueHeaders": {
            "Host": ["abc123.execute-api.eu-west-1.amazonaws.com"],
            "X-Forwarded-Port": ["443"],
        },
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": f"/{stage}{path}",
            "stage": stage,
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": "203.0.113.7"},
        },
        "body": None,
        "isBase64Encoded": False,
    }


def sqs(*bodies: dict[str, Any] | str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"msg-{index}",
                "receiptHandle": "AQEB...",
                "body": body if isinstance(body, str) else json.dumps(body),
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000))},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:portal-jobs",
                "awsRegion": "eu-west-1",
            }
            for index, body in enumerate(bodies)
        ]
    }


def s3_put(bucket: str, key: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "eu-west-1",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": key, "size": 123},
                },
            }
        ]
    }


class FakeContext:
    """The Lambda context object: only attributes, which is all Mangum and the handler read."""

    function_name = "subscriber-portal-dev-api"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:subscriber-portal-dev-api"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


STREAM_ARN = "arn:aws:dynamodb:eu-west-1:123456789012:table/subscriber-portal-dev/stream/2026-01-16T09:30:00.000"


def dynamodb_stream(
    *changes: tuple[str, dict[str, Any]], first_sequence: int = 4_200_000_000_000_000_000
) -> dict[str, Any]:
    """A DynamoDB Streams batch (view NEW_IMAGE) as Lambda delivers it, one record per
    `(eventName, serialized item)`: INSERT and MODIFY carry the item as NewImage, REMOVE only its keys."""
    records = []
    for offset, (event_name, image) in enumerate(changes):
        change: dict[str, Any] = {
            "ApproximateCreationDateTime": float(int(time.time())),
            "Keys": {"PK": image["PK"], "SK": image["SK"]},
            "SequenceNumber": str(first_sequence + offset * 100),
            "SizeBytes": len(json.dumps(image)),
            "StreamViewType": "NEW_IMAGE",
        }
        if event_name != "REMOVE":
            change["NewImage"] = image
        records.append(
            {
                "eventID": uuid.uuid4().hex,
                "eventName": event_name,
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "eu-west-1",
                "dynamodb": change,
                "eventSourceARN": STREAM_ARN,
            }
        )
    return {"Records": records}
