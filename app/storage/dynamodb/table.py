"""Thin wrapper over one DynamoDB table: (de)serialisation, error translation, paging, batching.

Every DynamoDB call of the project goes through `DynamoTable.call`. When `serialize_calls` is on
(moto in-process, in tests) calls are made one at a time, because moto in-process is not thread-safe;
the code above relies only on per-call atomicity, exactly what real DynamoDB gives.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from app.storage.base import CheckResult, ConditionFailed, Readiness, StorageError, StoreUnavailable
from app.storage.cursor import CursorCodec
from app.storage.dynamodb.schema import INDEXES, PK, SK, TTL_ATTRIBUTE, index_keys, table_definition

logger = logging.getLogger("app.storage.dynamodb")

BATCH_WRITE_LIMIT = 25
TRANSACTION_LIMIT = 100
TRANSACTION_BYTES = 4 * 1024 * 1024  # aggregate size of a transaction's items
_MAX_BATCH_ATTEMPTS = 8
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

Item = dict[str, Any]


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {key: _to_dynamo(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_to_dynamo(inner) for inner in value]
    return value


# DynamoDB keeps one number type; an integral one read back within this bound is an int (counts,
# versions, epochs, the API's attribute integers). A larger one was a float (1e125): as an int it
# would have 126 digits, more than DynamoDB's 38, and could not be written back (an audit snapshot).
_LARGEST_INT = 2**53 - 1


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        if value == value.to_integral_value() and abs(value) <= _LARGEST_INT:
            return int(value)
        return float(value)
    if isinstance(value, dict):
        return {key: _from_dynamo(inner) for key, inner in value.items()}
    if isinstance(value, list | set):
        return [_from_dynamo(inner) for inner in value]
    return value


def serialize(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(_to_dynamo(value)) for key, value in item.items() if value is not None}


def deserialize(item: Mapping[str, Any]) -> Item:
    return {key: _from_dynamo(_deserializer.deserialize(value)) for key, value in item.items()}


def serialize_values(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(_to_dynamo(value)) for key, value in values.items()}


def item_size(item: Mapping[str, Any]) -> int:
    """Size of a serialised item as DynamoDB counts it against its limits: attribute names plus
    values, a number at its largest (21 bytes), 3 bytes per map or list and 1 per element."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: Mapping[str, Any]) -> int:
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "B":
        return len(inner)
    if kind == "M":
        return 3 + sum(len(name.encode()) + 1 + _value_size(part) for name, part in inner.items())
    if kind == "L":
        return 3 + sum(1 + _value_size(part) for part in inner)
    if kind == "SS":
        return sum(len(text.encode()) for text in inner)
    if kind == "BS":
        return sum(len(data) for data in inner)
    if kind == "NS":
        return 21 * len(inner)
    return 21 if kind == "N" else 1  # BOOL, NULL


def key(pk: str, sk: str) -> dict[str, Any]:
    return {PK: {"S": pk}, SK: {"S": sk}}


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def cancellation_codes(error: ClientError) -> list[str]:
    """Per-action reasons of a cancelled transaction ('None' for actions that were fine)."""
    return [str(reason.get("Code", "None")) for reason in error.response.get("CancellationReasons", [])]


class DynamoTable:
    def __init__(self, client: Any, name: str, cursors: CursorCodec, *, serialize_calls: bool = False) -> None:
        self.client = client
        self.name = name
        self.cursors = cursors
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if serialize_calls else contextlib.nullcontext()
        )

    # --- raw calls ---------------------------------------------------------------------------------

    def call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        try:
            with self._lock:
                response: dict[str, Any] = getattr(self.client, operation)(**kwargs)
                return response
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise StoreUnavailable(f"DynamoDB table {self.name!r} does not exist") from exc
            raise
        except BotoCoreError as exc:
            raise StoreUnavailable(f"DynamoDB is unreachable: {exc}") from exc

    def get(self, pk: str, sk: str, *, consistent: bool = True) -> Item | None:
        response = self.call("get_item", TableName=self.name, Key=key(pk, sk), ConsistentRead=consistent)
        raw = response.get("Item")
        return deserialize(raw) if raw else None

    def get_many(self, keys: Iterable[tuple[str, str]]) -> list[Item]:
        """BatchGetItem in chunks of 100, retrying unprocessed keys."""
        unique = list(dict.fromkeys(keys))
        found: list[Item] = []
        for start in range(0, len(unique), 100):
            request: dict[str, Any] = {
                self.name: {
                    "Keys": [key(pk, sk) for pk, sk in unique[start : start + 100]],
                    "ConsistentRead": True,
                }
            }
            for attempt in range(_MAX_BATCH_ATTEMPTS):
                response = self.call("batch_get_item", RequestItems=request)
                found.extend(deserialize(raw) for raw in response.get("Responses", {}).get(self.name, []))
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                _backoff(attempt)
            else:
                raise StoreUnavailable("DynamoDB kept throttling a batch read")
        return found

    def put(
        self,
        item: Mapping[str, Any],
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
        on_condition_failed: Callable[[], StorageError] | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {"TableName": self.name, "Item": serialize(item)}
        _add_expression(kwargs, condition, names, values)
        try:
            self.call("put_item", **kwargs)
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise (on_condition_failed or _default_conflict)() from exc
            raise

    def update(
        self,
        pk: str,
        sk: str,
        update: str,
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
        on_condition_failed: Callable[[], StorageError] | None = None,
    ) -> Item:
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "Key": key(pk, sk),
            "UpdateExpression": update,
            "ReturnValues": "ALL_NEW",
        }
        _add_expression(kwargs, condition, names, values)
        try:
            response = self.call("update_item", **kwargs)
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise (on_condition_failed or _default_conflict)() from exc
            raise
        return deserialize(response.get("Attributes", {}))

    def delete(
        self,
        pk: str,
        sk: str,
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
        on_condition_failed: Callable[[], StorageError] | None = None,
    ) -> Item | None:
        kwargs: dict[str, Any] = {"TableName": self.name, "Key": key(pk, sk), "ReturnValues": "ALL_OLD"}
        _add_expression(kwargs, condition, names, values)
        try:
            response = self.call("delete_item", **kwargs)
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise (on_condition_failed or _default_conflict)() from exc
            raise
        old = response.get("Attributes")
        return deserialize(old) if old else None

    def transact(self, actions: list[dict[str, Any]], *, on_cancel: Callable[[list[str]], StorageError]) -> None:
        """TransactWriteItems; a cancelled transaction becomes the caller's storage error.

        `on_cancel` gets one reason code per action (e.g. ['None', 'ConditionalCheckFailed']) so the
        caller can say which claim or condition failed.
        """
        if len(actions) > TRANSACTION_LIMIT:
            raise ValueError(f"a transaction holds at most {TRANSACTION_LIMIT} actions, got {len(actions)}")
        for action in actions:
            next(iter(action.values())).setdefault("TableName", self.name)
        for attempt in range(_MAX_BATCH_ATTEMPTS):
            try:
                self.call("transact_write_items", TransactItems=actions)
                return
            except ClientError as exc:
                if error_code(exc) != "TransactionCanceledException":
                    raise
                codes = cancellation_codes(exc)
                if "ConditionalCheckFailed" in codes or not codes:
                    raise on_cancel(codes) from exc
                # Only conflicts with other transactions or throttling: safe to retry as a whole.
                _backoff(attempt)
        raise StoreUnavailable("DynamoDB kept cancelling a transaction (contention or throttling)")

    # --- paging ------------------------------------------------------------------------------------

    def _query_kwargs(
        self,
        partition: str,
        index: str | None,
        sort_condition: str | None,
        values: Mapping[str, Any] | None,
        forward: bool,
    ) -> dict[str, Any]:
        hash_key, range_key = index_keys(index)
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": "#pk = :pk" + (f" AND {sort_condition}" if sort_condition else ""),
            "ExpressionAttributeNames": {"#pk": hash_key, **({"#sk": range_key} if sort_condition else {})},
            "ExpressionAttributeValues": serialize_values({":pk": partition, **(values or {})}),
            "ScanIndexForward": forward,
        }
        if index:
            kwargs["IndexName"] = index
        return kwargs

    def query_page(
        self,
        *,
        scope: str,
        partition: str,
        limit: int,
        cursor: str | None = None,
        index: str | None = None,
        sort_condition: str | None = None,
        values: Mapping[str, Any] | None = None,
        forward: bool = True,
        filter_expression: str | None = None,
        filter_names: Mapping[str, str] | None = None,
    ) -> tuple[list[Item], str | None]:
        """One page of a partition, in sort-key order, with an opaque cursor for the next page.

        Asks for `limit + 1` items so that a cursor is only returned when another item exists. A
        filter narrows one partition's items (never a table scan); pages are then filled by
        reading on until `limit + 1` items passed it or the partition ends.
        """
        kwargs = self._query_kwargs(partition, index, sort_condition, values, forward)
        kwargs["Limit"] = limit + 1
        if filter_expression:
            kwargs["FilterExpression"] = filter_expression
            kwargs["ExpressionAttributeNames"].update(filter_names or {})
        if cursor:
            position = self.cursors.decode(scope, cursor)
            kwargs["ExclusiveStartKey"] = serialize_values(position)
        items: list[Item] = []
        while len(items) <= limit:
            response = self.call("query", **kwargs)
            items.extend(deserialize(raw) for raw in response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if not last:
                break
            kwargs["ExclusiveStartKey"] = last
            kwargs["Limit"] = limit + 1 - len(items)
        if len(items) <= limit:
            return items, None
        page = items[:limit]
        last_item = page[-1]
        hash_key, range_key = index_keys(index)
        key_names = {PK, SK, hash_key, range_key}
        next_cursor = self.cursors.encode(scope, {name: last_item[name] for name in sorted(key_names)})
        return page, next_cursor

    def query_all(
        self,
        *,
        partition: str,
        index: str | None = None,
        sort_condition: str | None = None,
        values: Mapping[str, Any] | None = None,
        forward: bool = True,
    ) -> Iterator[Item]:
        kwargs = self._query_kwargs(partition, index, sort_condition, values, forward)
        while True:
            response = self.call("query", **kwargs)
            yield from (deserialize(raw) for raw in response.get("Items", []))
            if not response.get("LastEvaluatedKey"):
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def scan_all(self, *, segment_filter: str | None = None, values: Mapping[str, Any] | None = None) -> Iterator[Item]:
        """Full scan: only for maintenance (snapshots, reconciliation, store-to-store copy)."""
        kwargs: dict[str, Any] = {"TableName": self.name}
        if segment_filter:
            kwargs["FilterExpression"] = segment_filter
            kwargs["ExpressionAttributeValues"] = serialize_values(values or {})
        while True:
            response = self.call("scan", **kwargs)
            yield from (deserialize(raw) for raw in response.get("Items", []))
            if not response.get("LastEvaluatedKey"):
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    # --- batches -----------------------------------------------------------------------------------

    def batch_write(self, puts: Iterable[Mapping[str, Any]] = (), deletes: Iterable[tuple[str, str]] = ()) -> int:
        """BatchWriteItem in chunks of 25 with unprocessed items retried; returns the requests made.

        DynamoDB rejects two writes to one key in a batch, so later writes to a key replace earlier ones.
        """
        requests: dict[tuple[str, str], dict[str, Any]] = {}
        for item in puts:
            requests[(item[PK], item[SK])] = {"PutRequest": {"Item": serialize(item)}}
        for pk, sk in deletes:
            requests[(pk, sk)] = {"DeleteRequest": {"Key": key(pk, sk)}}
        pending = list(requests.values())
        calls = 0
        while pending:
            chunk, pending = pending[:BATCH_WRITE_LIMIT], pending[BATCH_WRITE_LIMIT:]
            for attempt in range(_MAX_BATCH_ATTEMPTS):
                calls += 1
                response = self.call("batch_write_item", RequestItems={self.name: chunk})
                chunk = response.get("UnprocessedItems", {}).get(self.name, [])
                if not chunk:
                    break
                _backoff(attempt)
            else:
                raise StoreUnavailable("DynamoDB kept throttling a batch write")
        return calls

    # --- schema ------------------------------------------------------------------------------------

    def ensure_table(self) -> bool:
        """Create the table (and enable TTL) if it is missing; returns True when it was created."""
        try:
            self.call("describe_table", TableName=self.name)
            return False
        except StoreUnavailable:
            pass
        created = True
        try:
            self.call("create_table", **table_definition(self.name))
        except ClientError as exc:
            if error_code(exc) != "ResourceInUseException":
                raise
            created = False  # by another process starting at the same time (a second uvicorn worker)
        self.client.get_waiter("table_exists").wait(TableName=self.name, WaiterConfig={"Delay": 1})
        try:
            self.call(
                "update_time_to_live",
                TableName=self.name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
            )
        except ClientError as exc:
            # That other process enabled it first: DynamoDB refuses to enable TTL twice.
            if error_code(exc) != "ValidationException" or "already enabled" not in str(exc):
                raise
        if created:
            logger.info("created DynamoDB table", extra={"table": self.name})
        return created

    def readiness(self) -> Readiness:
        readiness = Readiness(backend="dynamodb")
        try:
            table = self.call("describe_table", TableName=self.name)["Table"]
        except StorageError as exc:
            readiness.checks["table"] = CheckResult(False, str(exc))
            return readiness
        readiness.checks["table"] = CheckResult(
            table["TableStatus"] == "ACTIVE", f"{self.name}: {table['TableStatus']}"
        )
        indexes = {
            index["IndexName"]: index.get("IndexStatus", "ACTIVE") for index in table.get("GlobalSecondaryIndexes", [])
        }
        for name in INDEXES:
            status = indexes.get(name, "MISSING")
            readiness.checks[f"index:{name}"] = CheckResult(status == "ACTIVE", status)
        ttl = self.call("describe_time_to_live", TableName=self.name)["TimeToLiveDescription"]
        ttl_ok = ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") and ttl.get("AttributeName") == TTL_ATTRIBUTE
        readiness.checks["ttl"] = CheckResult(ttl_ok, f"{ttl.get('AttributeName')}: {ttl.get('TimeToLiveStatus')}")
        return readiness


def _add_expression(
    kwargs: dict[str, Any],
    condition: str | None,
    names: Mapping[str, str] | None,
    values: Mapping[str, Any] | None,
) -> None:
    if condition:
        kwargs["ConditionExpression"] = condition
    if names:
        kwargs["ExpressionAttributeNames"] = dict(names)
    if values:
        kwargs["ExpressionAttributeValues"] = serialize_values(values)


def _default_conflict() -> StorageError:
    return ConditionFailed("the item changed or already exists")


def _backoff(attempt: int) -> None:
    time.sleep(min(2.0, 0.02 * 2**attempt) * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not crypto
