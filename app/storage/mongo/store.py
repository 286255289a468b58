from __future__ import annotations

from typing import Any

from app.storage.base import Readiness
from app.storage.cursor import CursorCodec
from app.storage.mongo import database
from app.storage.mongo.audit import MongoAuditRepository
from app.storage.mongo.counters import MongoCounterRepository
from app.storage.mongo.throttle import MongoThrottleRepository


class MongoStore:
    backend = "mongo"

    def __init__(self, client: Any, database_name: str, cursors: CursorCodec) -> None:
        self.client = client
        self.db = client[database_name]
        database.ensure_indexes(self.db)
        self.audit = MongoAuditRepository(self.db, cursors)
        self.counters = MongoCounterRepository(self.db)
        self.throttle = MongoThrottleRepository(self.db)

    def readiness(self) -> Readiness:
        return database.readiness(self.db)

    def close(self) -> None:
        self.client.close()
