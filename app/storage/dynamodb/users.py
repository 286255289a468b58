from __future__ import annotations

from datetime import datetime
from typing import Any

from app.storage.base import (
    ConditionFailed,
    Page,
    StorageError,
    ValueTaken,
    missing_or_stale,
)
from app.storage.dynamodb.audit import audit_puts
from app.storage.dynamodb.codec import dump, load
from app.storage.dynamodb.counters import counter_updates
from app.storage.dynamodb.table import DynamoTable, key, serialize, serialize_values
from app.storage.records import AuditEntry, UserRecord

ADMIN_SCOPE, ADMIN_KEY = "users", "active_admins"


def user_key(username: str) -> tuple[str, str]:
    return f"USER#{username}", "USER"


def user_item(user: UserRecord) -> dict[str, Any]:
    pk, sk = user_key(user.username)
    return {
        "PK": pk,
        "SK": sk,
        "GSI1PK": "USERS",
        "GSI1SK": user.username,
        "type": "user",
        **dump(user),
    }


def _admin_counter_actions(delta: int) -> list[dict[str, Any]]:
    """+1 is a plain ADD; -1 is guarded so the count of active admins can never reach zero."""
    if delta >= 0:
        return counter_updates(ADMIN_SCOPE, {ADMIN_KEY: delta})
    return [
        {
            "Update": {
                "Key": key(f"COUNTER#{ADMIN_SCOPE}", ADMIN_KEY),
                "UpdateExpression": "ADD #n :d",
                "ConditionExpression": "#n > :one",
                "ExpressionAttributeNames": {"#n": "n"},
                "ExpressionAttributeValues": serialize_values({":d": delta, ":one": 1}),
            }
        }
    ]


class DynamoUserRepository:
    def __init__(self, table: DynamoTable) -> None:
        self.table = table

    def create(self, user: UserRecord, audit: AuditEntry) -> None:
        actions = [
            {"Put": {"Item": serialize(user_item(user)), "ConditionExpression": "attribute_not_exists(PK)"}},
            *audit_puts(audit),
            *_admin_counter_actions(int(user.is_active_admin)),
        ]

        def cancelled(codes: list[str]) -> StorageError:
            return ValueTaken(f"user {user.username!r} already exists", attribute="username")

        self.table.transact(actions, on_cancel=cancelled)

    def get(self, username: str) -> UserRecord | None:
        item = self.table.get(*user_key(username))
        return load(UserRecord, item) if item else None

    def list(self, *, limit: int, cursor: str | None = None) -> Page[UserRecord]:
        items, next_cursor = self.table.query_page(
            scope="users", partition="USERS", index="GSI1", limit=limit, cursor=cursor
        )
        return Page([load(UserRecord, item) for item in items], next_cursor)

    def _guarded_write(self, current: UserRecord, write: dict[str, Any], audit: AuditEntry, admin_delta: int) -> None:
        actions = [write, *audit_puts(audit), *_admin_counter_actions(admin_delta)]

        def cancelled(codes: list[str]) -> StorageError:
            if codes and codes[0] == "ConditionalCheckFailed":
                return missing_or_stale("user", current.username, self.get(current.username))
            return ConditionFailed("this change would leave no active admin")

        self.table.transact(actions, on_cancel=cancelled)

    def replace(self, current: UserRecord, updated: UserRecord, audit: AuditEntry) -> None:
        updated.version = current.version + 1
        write = {
            "Put": {
                "Item": serialize(user_item(updated)),
                "ConditionExpression": "#v = :v",
                "ExpressionAttributeNames": {"#v": "version"},
                "ExpressionAttributeValues": serialize_values({":v": current.version}),
            }
        }
        self._guarded_write(current, write, audit, int(updated.is_active_admin) - int(current.is_active_admin))

    def delete(self, current: UserRecord, audit: AuditEntry) -> None:
        pk, sk = user_key(current.username)
        write = {
            "Delete": {
                "Key": key(pk, sk),
                "ConditionExpression": "#v = :v",
                "ExpressionAttributeNames": {"#v": "version"},
                "ExpressionAttributeValues": serialize_values({":v": current.version}),
            }
        }
        self._guarded_write(current, write, audit, -int(current.is_active_admin))

    def record_login_failure(
        self, username: str, *, max_failures: int, lock_until: datetime, lock_audit: AuditEntry
    ) -> UserRecord | None:
        pk, sk = user_key(username)
        try:
            item = self.table.update(
                pk, sk, "ADD failed_logins :one", condition="attribute_exists(PK)", values={":one": 1}
            )
        except ConditionFailed:
            return None
        if int(item.get("failed_logins", 0)) >= max_failures:
            lock = {
                "Update": {
                    "Key": key(pk, sk),
                    "UpdateExpression": "SET locked_until = :until, failed_logins = :zero",
                    "ConditionExpression": "failed_logins >= :max",
                    "ExpressionAttributeValues": serialize_values(
                        {":until": lock_until.isoformat(), ":zero": 0, ":max": max_failures}
                    ),
                }
            }
            try:
                self.table.transact([lock, *audit_puts(lock_audit)], on_cancel=lambda codes: ConditionFailed("locked"))
            except ConditionFailed:  # a concurrent failure already locked it
                pass
            return self.get(username)
        return load(UserRecord, item)

    def record_login_success(self, username: str, *, new_password_hash: str | None) -> None:
        pk, sk = user_key(username)
        update = "SET failed_logins = :zero REMOVE locked_until"
        values: dict[str, Any] = {":zero": 0}
        if new_password_hash:
            update = "SET failed_logins = :zero, password_hash = :hash REMOVE locked_until"
            values[":hash"] = new_password_hash
        try:
            self.table.update(pk, sk, update, condition="attribute_exists(PK)", values=values)
        except ConditionFailed:
            pass  # deleted meanwhile; the login that called this will be refused at the next request

    def count_active_admins(self) -> int:
        item = self.table.get(f"COUNTER#{ADMIN_SCOPE}", ADMIN_KEY)
        return int(item["n"]) if item else 0
