from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from app.storage.base import ConditionFailed, Page, ValueTaken, missing_or_stale
from app.storage.cursor import CursorCodec
from app.storage.mongo import codec, outbox
from app.storage.mongo.paging import find_page
from app.storage.records import AuditEntry, UserRecord

ADMIN_COUNTER_ID = "users:active_admins"


def to_user(document: dict[str, Any]) -> UserRecord:
    return codec.load(UserRecord, document, "username")


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
        document = codec.document(user, "username")
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
        return find_page(
            self.collection,
            outbox.LIVE,
            to_user,
            limit=limit,
            cursor=cursor,
            scope="users",
            cursors=self.cursors,
        )

    def replace(self, current: UserRecord, updated: UserRecord, audit: AuditEntry) -> None:
        updated.version = current.version + 1
        admin_delta = int(updated.is_active_admin) - int(current.is_active_admin)
        if admin_delta < 0:
            self._admins_minus_one()
        changes = codec.dump(updated, exclude={"username"})
        result = self.collection.update_one(
            {"_id": current.username, "version": current.version, **outbox.LIVE},
            {"$set": changes, "$push": {outbox.PENDING: outbox.pending(audit)}},
        )
        if result.matched_count == 0:
            if admin_delta < 0:
                self._admins_plus_one()
            raise missing_or_stale("user", current.username, self.get(current.username))
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
            raise missing_or_stale("user", current.username, self.get(current.username))
        outbox.finish_delete(self.db, self.collection_name, current.username)

    def record_login_failure(
        self, username: str, *, max_failures: int, lock_until: datetime, lock_audit: AuditEntry
    ) -> UserRecord | None:
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
                {
                    "$set": {"locked_until": lock_until, "failed_logins": 0},
                    "$push": {outbox.PENDING: outbox.pending(lock_audit)},
                },
                return_document=ReturnDocument.AFTER,
            )
            if locked is not None:
                outbox.flush(self.db, self.collection_name, username)
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
