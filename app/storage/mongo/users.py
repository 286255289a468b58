from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from app.storage.base import ConditionFailed, Page, RecordMissing, StaleVersion, ValueTaken
from app.storage.cursor import CursorCodec
from app.storage.mongo import outbox
from app.storage.mongo.paging import find_page
from app.storage.records import AuditEntry, UserRecord
from app.timeutil import as_utc

ADMIN_COUNTER_ID = "users:active_admins"


def user_document(user: UserRecord) -> dict[str, Any]:
    document = user.model_dump()
    document["_id"] = document.pop("username")
    return document


def to_user(document: dict[str, Any]) -> UserRecord:
    data = {name: document[name] for name in UserRecord.model_fields if name in document}
    data["username"] = document["_id"]
    for name in ("created_at", "updated_at", "password_changed_at", "locked_until"):
        if data.get(name) is not None:
            data[name] = as_utc(data[name])
    return UserRecord.model_validate(data)


class MongoUserRepository:
    collection_name = "users"

    def __init__(self, db: Any, cursors: CursorCodec) -> None:
        self.db = db
        self.collection = db[self.collection_name]
        self.counters = db["counters"]
        self.cursors = cursors

    def _admins_plus_one(self) -> None:
        self.counters.update_one(
            {"_id": ADMIN_COUNTER_ID},
            {"$inc": {"n": 1}, "$set": {"scope": "users", "key": "active_admins"}},
            upsert=True,
        )

    def _admins_minus_one(self) -> None:
        """Guarded decrement, taken before the user write (and given back if that write fails)."""
        taken = self.counters.find_one_and_update({"_id": ADMIN_COUNTER_ID, "n": {"$gt": 1}}, {"$inc": {"n": -1}})
        if taken is None:
            raise ConditionFailed("this change would leave no active admin")

    def create(self, user: UserRecord, audit: AuditEntry) -> None:
        document = user_document(user)
        document[outbox.PENDING] = [outbox.pending(audit)]
        try:
            self.collection.insert_one(document)
        except DuplicateKeyError:
            raise ValueTaken(f"user {user.username!r} already exists", attribute="username") from None
        if user.is_active_admin:
            self._admins_plus_one()
        outbox.flush(self.db, self.collection_name, user.username)

    def get(self, username: str) -> UserRecord | None:
        document = self.collection.find_one({"_id": username, **outbox.LIVE})
        return to_user(document) if document else None

    def list(self, *, limit: int, cursor: str | None = None) -> Page[UserRecord]:
        documents, next_cursor = find_page(
            self.collection,
            outbox.LIVE,
            order_field="_id",
            descending=False,
            limit=limit,
            cursor=cursor,
            scope="users",
            cursors=self.cursors,
        )
        return Page([to_user(document) for document in documents], next_cursor)

    def _missing_or_stale(self, current: UserRecord) -> Exception:
        if self.get(current.username) is None:
            return RecordMissing(f"user {current.username!r} not found")
        return StaleVersion(f"user {current.username!r} was changed by someone else; reload it")

    def replace(self, current: UserRecord, updated: UserRecord, audit: AuditEntry) -> None:
        updated.version = current.version + 1
        admin_delta = int(updated.is_active_admin) - int(current.is_active_admin)
        if admin_delta < 0:
            self._admins_minus_one()
        document = user_document(updated)
        document.pop("_id")
        result = self.collection.update_one(
            {"_id": current.username, "version": current.version, **outbox.LIVE},
            {"$set": document, "$push": {outbox.PENDING: outbox.pending(audit)}},
        )
        if result.matched_count == 0:
            if admin_delta < 0:
                self._admins_plus_one()
            raise self._missing_or_stale(current)
        if admin_delta > 0:
            self._admins_plus_one()
        outbox.flush(self.db, self.collection_name, current.username)

    def delete(self, current: UserRecord, audit: AuditEntry) -> None:
        if current.is_active_admin:
            self._admins_minus_one()
        result = self.collection.update_one(
            {"_id": current.username, "version": current.version, **outbox.LIVE},
            {"$set": {outbox.DELETED: True}, "$push": {outbox.PENDING: outbox.pending(audit)}},
        )
        if result.matched_count == 0:
            if current.is_active_admin:
                self._admins_plus_one()
            raise self._missing_or_stale(current)
        outbox.finish_delete(self.db, self.collection_name, current.username)

    def record_login_failure(self, username: str, *, max_failures: int, lock_until: datetime) -> UserRecord | None:
        document = self.collection.find_one_and_update(
            {"_id": username, **outbox.LIVE},
            {"$inc": {"failed_logins": 1}},
            return_document=ReturnDocument.AFTER,
        )
        if document is None:
            return None
        if document.get("failed_logins", 0) >= max_failures:
            locked = self.collection.find_one_and_update(
                {"_id": username, "failed_logins": {"$gte": max_failures}},
                {"$set": {"locked_until": lock_until, "failed_logins": 0}},
                return_document=ReturnDocument.AFTER,
            )
            document = locked or document
        return to_user(document)

    def record_login_success(self, username: str, *, new_password_hash: str | None) -> None:
        changes: dict[str, Any] = {"failed_logins": 0, "locked_until": None}
        if new_password_hash:
            changes["password_hash"] = new_password_hash
        self.collection.update_one({"_id": username, **outbox.LIVE}, {"$set": changes})

    def count_active_admins(self) -> int:
        document = self.counters.find_one({"_id": ADMIN_COUNTER_ID})
        return int(document["n"]) if document else 0
