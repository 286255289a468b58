"""Authentication and user management rules.

Login state that must hold across Lambda instances (failure counts, lockouts, rate limits,
revoked tokens, refresh-token families) lives in the store, never in process memory.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.audit import audit_entry
from app.auth.policy import Capability, allows
from app.auth.schemas import PasswordChange, TokenPair, UserCreate, UserUpdate
from app.auth.security import (
    MAX_PASSWORD_BYTES,
    InvalidToken,
    PasswordHasher,
    TokenSigner,
    hash_refresh_token,
    new_refresh_token,
)
from app.config import Settings
from app.errors import (
    FieldCode,
    Forbidden,
    InvalidInput,
    NotFoundError,
    TooManyRequests,
    Unauthorized,
    field_conflict,
)
from app.storage.base import ConditionFailed, Page, RecordMissing, Store, ValueTaken
from app.storage.records import AuditEntry, RefreshTokenRecord, Role, TokenFamilyRecord, UserRecord
from app.timeutil import as_utc, epoch_seconds, utcnow

logger = logging.getLogger("app.auth")
LOGIN_FAILED = "invalid username or password"
RATE_WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request. The role is the user's current one, read from the store."""

    username: str
    role: Role
    family_id: str | None = None  # the session; None for the CLI, which has none
    user_id: str | None = None  # the user's immutable id; None for the CLI

    def can(self, capability: Capability) -> bool:
        return allows(self.role, capability)


class AuthService:
    def __init__(
        self, store: Store, settings: Settings, hasher: Callable[[], PasswordHasher], signer: TokenSigner
    ) -> None:
        self.store = store
        self.settings = settings
        self._hasher = hasher
        self.signer = signer

    @property
    def hasher(self) -> PasswordHasher:
        """Built on first use: most requests only verify a token and never hash."""
        return self._hasher()

    # --- login, tokens ------------------------------------------------------------------------------

    def login(self, username: str, password: str, *, client_ip: str) -> TokenPair:
        now = utcnow()
        self._rate_limit(client_ip, now)
        username = username.strip().lower()
        user = self.store.users.get(username)
        if user is None:
            self.hasher.waste_time(password)
            raise Unauthorized(LOGIN_FAILED)
        if user.locked_until and as_utc(user.locked_until) > now:
            self.hasher.waste_time(password)
            self._audit_auth(user.username, "auth.login_refused_locked", now)
            raise Unauthorized(LOGIN_FAILED)
        matches, upgraded_hash = self.hasher.verify(password, user.password_hash)
        if not matches or not user.active:
            if matches:  # right password, disabled account: no failure count, same answer
                raise Unauthorized(LOGIN_FAILED)
            locked_until = now + timedelta(minutes=self.settings.login_lockout_minutes)
            lock_audit = self._auth_entry(username, "auth.locked", now, {"locked_until": locked_until.isoformat()})
            after = self.store.users.record_login_failure(
                username, max_failures=self.settings.login_max_failures, lock_until=locked_until, lock_audit=lock_audit
            )
            if after and after.locked_until and as_utc(after.locked_until) > now:
                logger.warning("account locked after repeated failures", extra={"username": username})
            raise Unauthorized(LOGIN_FAILED)
        self.store.users.record_login_success(username, new_password_hash=upgraded_hash)
        if upgraded_hash:
            logger.info("password hash upgraded to argon2", extra={"username": username})
        return self._start_session(user, now)

    def _rate_limit(self, client_ip: str, now: datetime) -> None:
        hits = self.store.throttle.hit(f"login:{client_ip}", RATE_WINDOW_SECONDS, now=now)
        if hits > self.settings.login_rate_per_minute:
            retry_after = RATE_WINDOW_SECONDS - epoch_seconds(now) % RATE_WINDOW_SECONDS
            raise TooManyRequests("too many login attempts from this address; try again later", retry_after)

    def _start_session(self, user: UserRecord, now: datetime) -> TokenPair:
        refresh_token, token_hash = new_refresh_token()
        expires_at = now + self.signer.refresh_ttl
        family = TokenFamilyRecord(
            family_id=uuid.uuid4().hex,
            username=user.username,
            user_id=user.user_id,
            token_generation=user.token_generation,
            created_at=now,
            expires_at=expires_at,
        )
        token = RefreshTokenRecord(
            token_hash=token_hash,
            family_id=family.family_id,
            username=user.username,
            issued_at=now,
            expires_at=expires_at,
        )
        self.store.sessions.start(family, token)
        return self._pair(user, family.family_id, refresh_token, now)

    def _pair(self, user: UserRecord, family_id: str, refresh_token: str, now: datetime) -> TokenPair:
        access_token, claims = self.signer.issue_access(
            username=user.username,
            user_id=user.user_id,
            role=user.role,
            generation=user.token_generation,
            family_id=family_id,
            now=now,
        )
        return TokenPair(
            access_token=access_token,
            expires_in=claims.expires_at - epoch_seconds(now),
            refresh_token=refresh_token,
            refresh_expires_in=int(self.signer.refresh_ttl.total_seconds()),
        )

    def refresh(self, refresh_token: str) -> TokenPair:
        now = utcnow()
        presented = self.store.sessions.find_token(hash_refresh_token(refresh_token))
        if presented is None:
            raise Unauthorized("refresh token is invalid or expired")
        family = self.store.sessions.get_family(presented.family_id)
        user = self.store.users.get(presented.username)
        if family is None or family.revoked:
            raise Unauthorized("session has ended")
        if user is None or not user.active or not _is_session_of(family, user):
            self._end_session(family.family_id)
            raise Unauthorized("session has ended")
        new_token, new_hash = new_refresh_token()
        successor = RefreshTokenRecord(
            token_hash=new_hash,
            family_id=family.family_id,
            username=user.username,
            issued_at=now,
            expires_at=now + self.signer.refresh_ttl,
        )
        try:
            self.store.sessions.rotate(presented.token_hash, successor, now=now)
        except ConditionFailed:  # reused (the store revoked the family) or revoked meanwhile
            self._end_session(family.family_id)
            logger.warning("refresh token reuse: session revoked", extra={"username": user.username})
            self._audit_auth(user.username, "auth.refresh_reuse_detected", now)
            raise Unauthorized("session has ended") from None
        except RecordMissing:
            raise Unauthorized("refresh token is invalid or expired") from None
        return self._pair(user, family.family_id, new_token, now)

    def authenticate(self, access_token: str) -> Principal:
        try:
            claims = self.signer.verify_access(access_token)
        except InvalidToken as exc:
            logger.info("access token refused", extra={"reason": str(exc)})
            raise Unauthorized("access token is invalid or expired") from None
        if self.store.sessions.is_session_denied(claims.family_id):
            raise Unauthorized("the session of this access token has ended")
        user = self.store.users.get(claims.subject)
        if (
            user is None
            or not user.active
            or user.user_id != claims.user_id
            or user.token_generation != claims.generation
        ):
            raise Unauthorized("access token is no longer valid")
        return Principal(username=user.username, role=user.role, family_id=claims.family_id, user_id=user.user_id)

    def logout(self, principal: Principal, refresh_token: str | None) -> None:
        if principal.family_id:
            self._end_session(principal.family_id)
        if refresh_token:
            presented = self.store.sessions.find_token(hash_refresh_token(refresh_token))
            if presented and presented.username == principal.username:
                self._end_session(presented.family_id)

    def _end_session(self, family_id: str) -> None:
        """Ends the refresh family and, through the deny-list, every access token issued in it.

        An access token names its session (`sid`), and none is issued once the family is revoked:
        so the deny-list entry must live (and may be deleted by the store's TTL right after) until
        no token issued up to now is accepted. "Now" is read after the revocation, so that a
        refresh that rotated just before it is covered too.
        """
        self.store.sessions.revoke_family(family_id)
        self.store.sessions.deny_session(family_id, self.signer.accepted_until(utcnow()))

    # --- own account --------------------------------------------------------------------------------

    def me(self, principal: Principal) -> UserRecord:
        user = self.store.users.get(principal.username)
        if user is None:
            raise Unauthorized("access token is no longer valid")
        return user

    def change_password(self, principal: Principal, change: PasswordChange) -> TokenPair:
        """Sets the new password, ends every session of the user and starts a new one for the caller."""
        user = self.me(principal)
        matches, _ = self.hasher.verify(change.current_password, user.password_hash)
        if not matches:
            raise InvalidInput(
                "body.current_password", "the current password is not correct", code=FieldCode.WRONG_PASSWORD
            )
        self.check_password_policy(change.new_password, user.username, field="body.new_password")
        updated = self._with_new_password(user, change.new_password)
        self.store.users.replace(user, updated, self._audit(principal.username, "user.password_change", user, updated))
        # The new token generation already ends every older token; this also revokes the family now.
        if principal.family_id:
            self._end_session(principal.family_id)
        return self._start_session(updated, utcnow())

    def check_password_policy(self, password: str, username: str, *, field: str = "body.password") -> None:
        # Padding doesn't count (12 spaces are no password); the password is hashed as typed, padding included.
        if len(password.strip()) < self.settings.password_min_length:
            raise InvalidInput(
                field,
                f"must be at least {self.settings.password_min_length} characters, not counting spaces at either end",
                code=FieldCode.PASSWORD_TOO_SHORT,
            )
        if len(password.encode()) > MAX_PASSWORD_BYTES:
            raise InvalidInput(field, f"must be at most {MAX_PASSWORD_BYTES} bytes", code=FieldCode.PASSWORD_TOO_LONG)
        if password.strip().lower() == username.lower():
            raise InvalidInput(field, "must not be the username", code=FieldCode.PASSWORD_IS_USERNAME)

    def _with_new_password(self, user: UserRecord, password: str) -> UserRecord:
        now = utcnow()
        return user.model_copy(
            update={
                "password_hash": self.hasher.hash(password),
                "password_changed_at": now,
                "updated_at": now,
                "token_generation": user.token_generation + 1,
                "failed_logins": 0,
                "locked_until": None,
            }
        )

    # --- user management (admin) --------------------------------------------------------------------

    def list_users(self, *, limit: int, cursor: str | None) -> Page[UserRecord]:
        return self.store.users.list(limit=limit, cursor=cursor)

    def get_user(self, username: str) -> UserRecord:
        user = self.store.users.get(username.lower())
        if user is None:
            raise NotFoundError(f"user {username!r} not found")
        return user

    def create_user(
        self, actor: str, request: UserCreate, *, password_hash: str | None = None, import_job_id: str | None = None
    ) -> UserRecord:
        """Creates a user from a password (policy-checked) or, for imports, an existing legacy hash."""
        if password_hash is None:
            self.check_password_policy(request.password, request.username)
            password_hash = self.hasher.hash(request.password)
        elif not self.hasher.is_known_hash(password_hash):
            raise InvalidInput("password_hash", "not a hash of a supported scheme", code=FieldCode.UNKNOWN_HASH_SCHEME)
        now = utcnow()
        user = UserRecord(
            username=request.username,
            email=str(request.email) if request.email else None,
            full_name=request.full_name,
            role=request.role,
            password_hash=password_hash,
            created_at=now,
            updated_at=now,
            password_changed_at=now,
            import_job_id=import_job_id,
            user_id=uuid.uuid4().hex,
        )
        try:
            self.store.users.create(user, self._audit(actor, "user.create", None, user))
        except ValueTaken as taken:
            raise field_conflict("body.username", str(taken), FieldCode.ALREADY_EXISTS) from None
        return user

    def update_user(self, actor: str, username: str, changes: UserUpdate) -> UserRecord:
        user = self.get_user(username)
        values = changes.model_dump(exclude_unset=True)
        if not values:
            return user
        for field in ("role", "active"):
            if field in values and values[field] is None:
                raise InvalidInput(f"body.{field}", "may not be null", code=FieldCode.NULL_NOT_ALLOWED)
        if "email" in values and values["email"] is not None:
            values["email"] = str(values["email"])
        updated = user.model_copy(update={**values, "updated_at": utcnow()})
        if user.active and not updated.active:
            updated.token_generation += 1  # disabling ends every session at once
        self._replace(actor, "user.update", user, updated)
        return updated

    def reset_password(self, actor: str, username: str, new_password: str) -> UserRecord:
        user = self.get_user(username)
        self.check_password_policy(new_password, user.username, field="body.new_password")
        updated = self._with_new_password(user, new_password)
        self._replace(actor, "user.password_reset", user, updated)
        return updated

    def delete_user(self, actor: str, username: str) -> None:
        user = self.get_user(username)
        try:
            self.store.users.delete(user, self._audit(actor, "user.delete", user, None))
        except ConditionFailed as exc:  # the last active admin
            raise Forbidden(str(exc)) from None
        # Its tokens already fail (no user, and a re-created user has another user_id); this
        # removes the sessions themselves.
        self.store.sessions.delete_for_user(user.username)

    def _replace(self, actor: str, action: str, user: UserRecord, updated: UserRecord) -> None:
        try:
            self.store.users.replace(user, updated, self._audit(actor, action, user, updated))
        except ConditionFailed as exc:  # the last active admin
            raise Forbidden(str(exc)) from None

    def _audit(self, actor: str, action: str, before: UserRecord | None, after: UserRecord | None) -> AuditEntry:
        subject = after or before
        assert subject is not None
        return audit_entry(
            actor=actor,
            action=action,
            entity_type="user",
            entity_id=subject.username,
            at=utcnow(),
            retention_days=self.settings.audit_retention_days,
            event_retention_days=self.settings.event_retention_days,
            before=before.model_dump(mode="json") if before else None,
            after=after.model_dump(mode="json") if after else None,
        )

    def _audit_auth(self, username: str, action: str, now: datetime) -> None:
        self.store.audit.append(self._auth_entry(username, action, now))

    def _auth_entry(self, username: str, action: str, now: datetime, after: dict[str, Any] | None = None) -> AuditEntry:
        return audit_entry(
            actor=username,
            action=action,
            entity_type="user",
            entity_id=username,
            at=now,
            retention_days=self.settings.audit_retention_days,
            event_retention_days=self.settings.event_retention_days,
            after=after,
        )


def _is_session_of(family: TokenFamilyRecord, user: UserRecord) -> bool:
    """The family was started by this very user (not an earlier one of the same name), at its current generation."""
    return family.user_id == user.user_id and family.token_generation == user.token_generation
