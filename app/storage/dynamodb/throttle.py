from __future__ import annotations

from datetime import datetime

from app.storage.dynamodb.table import DynamoTable
from app.timeutil import epoch_seconds


class DynamoThrottleRepository:
    def __init__(self, table: DynamoTable) -> None:
        self.table = table

    def hit(self, key: str, window_seconds: int, *, now: datetime) -> int:
        window = epoch_seconds(now) // window_seconds * window_seconds
        item = self.table.update(
            f"THROTTLE#{key}",
            str(window),
            "ADD #n :one SET #ttl = :ttl, #t = :t",
            names={"#n": "n", "#ttl": "ttl", "#t": "type"},
            values={":one": 1, ":ttl": window + 2 * window_seconds, ":t": "throttle"},
        )
        return int(item["n"])
