from __future__ import annotations

from typing import Any

from app.storage.base import StoreUnavailable
from app.storage.dynamodb.table import DynamoTable, key, serialize_values


def counter_key(scope: str, name: str) -> tuple[str, str]:
    return f"COUNTER#{scope}", name


def counter_item(scope: str, name: str, value: int) -> dict[str, Any]:
    pk, sk = counter_key(scope, name)
    return {"PK": pk, "SK": sk, "n": value, "type": "counter"}


def counter_updates(scope: str, deltas: dict[str, int]) -> list[dict[str, Any]]:
    """Transaction actions adding each delta to its counter item (one item per counter key).

    One item per key keeps each update a single-item ADD, usable inside the transaction of the
    write that changes the count, so counters never drift from the data.
    """
    return [
        {
            "Update": {
                "Key": key(f"COUNTER#{scope}", name),
                "UpdateExpression": "ADD #n :d SET #t = :t",
                "ExpressionAttributeNames": {"#n": "n", "#t": "type"},
                "ExpressionAttributeValues": serialize_values({":d": delta, ":t": "counter"}),
            }
        }
        for name, delta in sorted(deltas.items())
        if delta
    ]


class DynamoCounterRepository:
    def __init__(self, table: DynamoTable) -> None:
        self.table = table

    def increment(self, scope: str, deltas: dict[str, int]) -> None:
        actions = counter_updates(scope, deltas)
        if len(actions) == 1:
            update = actions[0]["Update"]
            self.table.call("update_item", TableName=self.table.name, **update)
        elif actions:
            self.table.transact(actions, on_cancel=lambda codes: StoreUnavailable(f"counter update cancelled: {codes}"))

    def get(self, scope: str) -> dict[str, int]:
        return {item["SK"]: int(item.get("n", 0)) for item in self.table.query_all(partition=f"COUNTER#{scope}")}

    def replace(self, scope: str, values: dict[str, int]) -> None:
        current = self.get(scope)
        puts = [counter_item(scope, name, value) for name, value in values.items()]
        deletes = [(f"COUNTER#{scope}", name) for name in current if name not in values]
        self.table.batch_write(puts, deletes)

    def get_keys(self, scope: str, keys: list[str]) -> dict[str, int]:
        found = {
            item["SK"]: int(item.get("n", 0)) for item in self.table.get_many((f"COUNTER#{scope}", k) for k in keys)
        }
        return {name: found.get(name, 0) for name in keys}
