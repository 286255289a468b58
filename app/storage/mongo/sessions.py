from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ReturnDocument

from app.storage.base import ConditionFailed, RecordMissing
from app.storage.mongo import codec
from app.storage.records import RefreshTokenRecord, TokenFamilyRecord


class MongoSessionRepository:
    def __init__(self, db: Any) -> None:
        self.tokens = db["refresh_tokens"]
        self.families = db["token_families"]
        self.denied = db["denied_tokens"]

    def start(self, family: TokenFamilyRecord, token: RefreshTokenRecord) -> None:
        self.families.insert_one(codec.document(family, "family_id"))
        self.tokens.insert_one(codec.document(token, "token_hash"))

    def rotate(self, used_token_hash: str, new_token: RefreshTokenRecord, *, now: datetime) -> TokenFamilyRecord:
        used = self.tokens.find_one_and_update(
            {
                "_id": used_token_hash,
                "used_at": None,
                "family_id": new_token.family_id,
                "expires_at": {"$gt": now},
            },
            {"$set": {"used_at": now}},
        )
        if used is None:
            existing = self.tokens.find_one({"_id": used_token_hash, "family_id": new_token.family_id})
            if existing and existing.get("used_at"):
                self.revoke_family(new_token.family_id)
                raise ConditionFailed("refresh token was already used; the session has been revoked")
            raise RecordMissing("refresh token is unknown or expired")
        family = self.families.find_one_and_update(
            {"_id": new_token.family_id, "revoked": False},
            {"$set": {"expires_at": new_token.expires_at}},
            return_document=ReturnDocument.AFTER,
        )
        if family is None:
            raise ConditionFailed("the session has been revoked")
        self.tokens.insert_one(codec.document(new_token, "token_hash"))
        return codec.load(TokenFamilyRecord, family, "family_id")

    def find_token(self, token_hash: str) -> RefreshTokenRecord | None:
        document = self.tokens.find_one({"_id": token_hash})
        return codec.load(RefreshTokenRecord, document, "token_hash") if document else None

    def get_family(self, family_id: str) -> TokenFamilyRecord | None:
        document = self.families.find_one({"_id": family_id})
        return codec.load(TokenFamilyRecord, document, "family_id") if document else None

    def revoke_family(self, family_id: str) -> None:
        self.families.update_one({"_id": family_id}, {"$set": {"revoked": True}})

    def delete_for_user(self, username: str) -> None:
        self.tokens.delete_many({"username": username})
        self.families.delete_many({"username": username})

    def deny_session(self, family_id: str, until: datetime) -> None:
        self.denied.update_one({"_id": family_id}, {"$set": {"expires_at": until}}, upsert=True)

    def is_session_denied(self, family_id: str) -> bool:
        return self.denied.find_one({"_id": family_id}, {"_id": 1}) is not None
