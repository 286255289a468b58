from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import ReturnDocument

from app.timeutil import epoch_seconds


class MongoThrottleRepository:
    def __init__(self, db: Any) -> None:
        self.collection = db["throttle"]

    def hit(self, key: str, window_seconds: int, *, now: datetime) -> int:
        window = epoch_seconds(now) // window_seconds * window_seconds
        document = self.collection.find_one_and_update(
            {"_id": f"{key}:{window}"},
            {
                "$inc": {"n": 1},
                "$setOnInsert": {"expires_at": datetime.fromtimestamp(window + 2 * window_seconds, UTC)},
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        return int(document["n"])
