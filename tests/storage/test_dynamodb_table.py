"""DynamoDB only: creating the table when several processes start at once (uvicorn workers)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from app.storage.cursor import CursorCodec
from app.storage.dynamodb.store import DynamoStore
from app.storage.dynamodb.table import DynamoTable
from app.storage.local_engine import CREDENTIAL
from tests.support import race


@pytest.fixture(params=["dynamodb", "dynamodb-local"])
def client(request: pytest.FixtureRequest) -> Iterator[Any]:
    import boto3

    if request.param == "dynamodb":
        dynamo: DynamoStore = request.getfixturevalue("dynamo")  # inside moto's mock for the whole test
        yield dynamo.table.client
    else:
        yield boto3.client(
            "dynamodb",
            region_name="eu-west-1",
            endpoint_url=request.getfixturevalue("local_engine"),
            aws_access_key_id=CREDENTIAL,
            aws_secret_access_key=CREDENTIAL,
        )


def test_two_processes_creating_the_table_at_once_both_start(client: Any) -> None:
    name = f"race-{uuid.uuid4().hex[:8]}"
    both_looked = threading.Barrier(2, timeout=30)

    class Racing(DynamoTable):
        def call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
            try:
                return super().call(operation, **kwargs)
            finally:
                if operation == "describe_table":
                    both_looked.wait()  # both found no table before either creates it

    created = race(2, lambda _: Racing(client, name, CursorCodec(b"x" * 32)).ensure_table())  # raises what either did
    try:
        assert sorted(created) == [False, True]  # one created it, the other found it created
        ttl = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        assert ttl["TimeToLiveStatus"] in ("ENABLED", "ENABLING")
    finally:
        client.delete_table(TableName=name)
