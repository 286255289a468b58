"""Single-table key design. `docs/data-model.md` lists every access pattern these keys serve.

Generic key attributes (`PK`/`SK`, `GSI1PK`/`GSI1SK` ... `GSI4PK`/`GSI4SK`) are overloaded by entity
type; `ttl` (epoch seconds) lets DynamoDB expire tokens, throttle windows, idempotency keys and old
audit entries. The CloudFormation resource in `infra/dynamodb.yml` must match `table_definition`
(a test compares them).
"""

from __future__ import annotations

from typing import Any

PK, SK = "PK", "SK"
GSI1, GSI2, GSI3, GSI4 = "GSI1", "GSI2", "GSI3", "GSI4"
TTL_ATTRIBUTE = "ttl"
INDEXES: dict[str, tuple[str, str]] = {
    GSI1: ("GSI1PK", "GSI1SK"),
    GSI2: ("GSI2PK", "GSI2SK"),
    # Subscribers by plan (GSI3) and by email (GSI4, sparse): see docs/data-model.md.
    GSI3: ("GSI3PK", "GSI3SK"),
    GSI4: ("GSI4PK", "GSI4SK"),
}
KEY_ATTRIBUTES = frozenset({PK, SK, *(name for pair in INDEXES.values() for name in pair)})


def index_keys(index: str | None) -> tuple[str, str]:
    return (PK, SK) if index is None else INDEXES[index]


def table_definition(table_name: str) -> dict[str, Any]:
    """Arguments for CreateTable: on-demand, overloaded GSIs projecting everything."""
    attributes = sorted(KEY_ATTRIBUTES)
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": name, "AttributeType": "S"} for name in attributes],
        "KeySchema": [{"AttributeName": PK, "KeyType": "HASH"}, {"AttributeName": SK, "KeyType": "RANGE"}],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": index,
                "KeySchema": [
                    {"AttributeName": hash_key, "KeyType": "HASH"},
                    {"AttributeName": range_key, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for index, (hash_key, range_key) in INDEXES.items()
        ],
    }
