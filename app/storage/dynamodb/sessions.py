from __future__ import annotations

from datetime import datetime
from typing import Any

from app.storage.base import ConditionFailed, RecordMissing, StorageError
from app.storage.dynamodb.codec import dump, load
from app.storage.dynamodb.schema import GSI1
from app.storage.dynamodb.table import DynamoTable, key, serialize, serialize_values
from app.storage.records import RefreshTokenRecord, TokenFamilyRecord
from app.timeutil import epoch_seconds


def family_key(family_id: str) -> tuple[str, str]:
    return f"RFAMILY#{family_id}", "RFAMILY"


def token_key(token_hash: str) -> tuple[str, str]:
    return f"RTOKEN#{token_hash}", "RTOKEN"


def user_sessions_partition(username: str) -> str:
    """GSI1 partition holding a user's families and refresh tokens, so deleting the user finds them."""
    return f"USERSESSIONS#{username}"


def family_item(family: TokenFamilyRecord) -> dict[str, Any]:
    return _session_item(family_key(family.family_id), "token_family", family)


def token_item(token: RefreshTokenRecord) -> dict[str, Any]:
    return _session_item(token_key(token.token_hash), "refresh_token", token)


def _session_item(
    item_key: tuple[str, str], item_type: str, record: TokenFamilyRecord | RefreshTokenRecord
) -> dict[str, Any]:
    """In the user's sessions partition, so deleting the user finds it; gone with its expiry."""
    pk, sk = item_key
    return {
        "PK": pk,
        "SK": sk,
        "GSI1PK": user_sessions_partition(record.username),
        "GSI1SK": pk,
        "type": item_type,
        "ttl": epoch_seconds(record.expires_at),
        **dump(record),
    }


def denied_key(family_id: str) -> tuple[str, str]:
    return f"DENY#{family_id}", "DENY"


def denied_item(family_id: str, expires_at: datetime) -> dict[str, Any]:
    """Only the TTL records the expiry (epoch seconds): the item goes when the session's last access token would."""
    pk, sk = denied_key(family_id)
    return {"PK": pk, "SK": sk, "type": "denied_token", "ttl": epoch_seconds(expires_at)}


class DynamoSessionRepository:
    def __init__(self, table: DynamoTable) -> None:
        self.table = table

    def start(self, family: TokenFamilyRecord, token: RefreshTokenRecord) -> None:
        self.table.transact(
            [
                {
                    "Put": {
                        "Item": serialize(family_item(family)),
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                },
                {
                    "Put": {
                        "Item": serialize(token_item(token)),
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                },
            ],
            on_cancel=lambda codes: ConditionFailed("session id collision"),
        )

    def rotate(self, used_token_hash: str, new_token: RefreshTokenRecord, *, now: datetime) -> TokenFamilyRecord:
        family_pk, family_sk = family_key(new_token.family_id)
        actions = [
            {
                "Update": {
                    "Key": key(*token_key(used_token_hash)),
                    "UpdateExpression": "SET used_at = :now",
                    "ConditionExpression": "attribute_exists(PK) AND attribute_not_exists(used_at) "
                    "AND family_id = :family AND #ttl > :epoch",
                    "ExpressionAttributeNames": {"#ttl": "ttl"},
                    "ExpressionAttributeValues": serialize_values(
                        {
                            ":now": now.isoformat(),
                            ":family": new_token.family_id,
                            ":epoch": epoch_seconds(now),
                        }
                    ),
                }
            },
            {
                "Put": {
                    "Item": serialize(token_item(new_token)),
                    "ConditionExpression": "attribute_not_exists(PK)",
                }
            },
            {
                "Update": {
                    "Key": key(family_pk, family_sk),
                    "UpdateExpression": "SET expires_at = :expires, #ttl = :ttl",
                    "ConditionExpression": "attribute_exists(PK) AND revoked = :false",
                    "ExpressionAttributeNames": {"#ttl": "ttl"},
                    "ExpressionAttributeValues": serialize_values(
                        {
                            ":expires": new_token.expires_at.isoformat(),
                            ":ttl": epoch_seconds(new_token.expires_at),
                            ":false": False,
                        }
                    ),
                }
            },
        ]

        def cancelled(codes: list[str]) -> StorageError:
            if codes and codes[0] == "ConditionalCheckFailed":
                used = self.table.get(*token_key(used_token_hash))
                if used and used.get("used_at") and used.get("family_id") == new_token.family_id:
                    self.revoke_family(new_token.family_id)
                    return ConditionFailed("refresh token was already used; the session has been revoked")
                return RecordMissing("refresh token is unknown or expired")
            return ConditionFailed("the session has been revoked")

        self.table.transact(actions, on_cancel=cancelled)
        family = self.get_family(new_token.family_id)
        if family is None:  # expired by TTL between the transaction and this read
            raise RecordMissing("session expired")
        return family

    def find_token(self, token_hash: str) -> RefreshTokenRecord | None:
        item = self.table.get(*token_key(token_hash))
        return load(RefreshTokenRecord, item) if item else None

    def get_family(self, family_id: str) -> TokenFamilyRecord | None:
        item = self.table.get(*family_key(family_id))
        return load(TokenFamilyRecord, item) if item else None

    def revoke_family(self, family_id: str) -> None:
        try:
            self.table.update(
                *family_key(family_id),
                "SET revoked = :true",
                condition="attribute_exists(PK)",
                values={":true": True},
            )
        except ConditionFailed:
            pass  # already expired: nothing left to revoke

    def delete_for_user(self, username: str) -> None:
        items = self.table.query_all(partition=user_sessions_partition(username), index=GSI1)
        self.table.batch_write(deletes=[(item["PK"], item["SK"]) for item in items])

    def deny_session(self, family_id: str, until: datetime) -> None:
        self.table.put(denied_item(family_id, until))

    def is_session_denied(self, family_id: str) -> bool:
        return self.table.get(*denied_key(family_id)) is not None
