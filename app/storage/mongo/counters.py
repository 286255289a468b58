from __future__ import annotations

from typing import Any


def counter_id(scope: str, name: str) -> str:
    return f"{scope}:{name}"


class MongoCounterRepository:
    def __init__(self, db: Any) -> None:
        self.collection = db["counters"]

    def increment(self, scope: str, deltas: dict[str, int]) -> None:
        for name, delta in sorted(deltas.items()):
            if delta:
                self.collection.update_one(
                    {"_id": counter_id(scope, name)},
                    {"$inc": {"n": delta}, "$set": {"scope": scope, "key": name}},
                    upsert=True,
                )

    def get(self, scope: str) -> dict[str, int]:
        return {document["key"]: int(document["n"]) for document in self.collection.find({"scope": scope})}

    def replace(self, scope: str, values: dict[str, int]) -> None:
        for name, value in values.items():
            # $set, not a replacement: the ids of applied outbox deltas (see outbox.py) must stay.
            self.collection.update_one(
                {"_id": counter_id(scope, name)}, {"$set": {"scope": scope, "key": name, "n": value}}, upsert=True
            )
        self.collection.delete_many({"scope": scope, "key": {"$nin": list(values)}})

    def get_keys(self, scope: str, keys: list[str]) -> dict[str, int]:
        documents = self.collection.find({"_id": {"$in": [counter_id(scope, name) for name in keys]}})
        found = {document["key"]: int(document["n"]) for document in documents}
        return {name: found.get(name, 0) for name in keys}
