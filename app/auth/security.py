"""Password hashing and token primitives: no storage, no HTTP.

Passwords: passlib's CryptContext (libpass fork) with argon2 as the scheme for new hashes. bcrypt
and Django's pbkdf2_sha256 verify too, so users imported from legacy systems keep their passwords;
`verify_and_update` hands back an argon2 hash on their first successful login.

Access tokens: HS256 JWTs checked against an explicit algorithm allow-list, issuer, audience, type
and expiry (small leeway). Refresh tokens are random strings; only their SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from app.auth.jose_hmac import JWTError, jwt
from app.config import Settings
from app.errors import ServiceBusy
from app.storage.records import Role
from app.timeutil import epoch_seconds

ALGORITHM = "HS256"
LEEWAY_SECONDS = 10
MAX_PASSWORD_BYTES = 1024
BCRYPT_INPUT_BYTES = 72
ACCESS = "access"


class InvalidToken(Exception):
    """The token can't be trusted; the reason is for logs only, never for the client."""


@dataclass(frozen=True)
class AccessClaims:
    subject: str
    user_id: str
    role: Role
    jti: str
    generation: int
    family_id: str
    issued_at: int
    expires_at: int


class PasswordHasher:
    """One per process. Every hash and verification takes one of `password_hash_concurrency` slots,
    so a burst of logins can't take every core (argon2 releases the GIL and runs in parallel);
    one that gets no slot within `password_hash_queue_seconds` raises ServiceBusy (503)."""

    def __init__(self, settings: Settings) -> None:
        # Imported here: only logins and password changes hash, so requests that merely carry a
        # token never load passlib/argon2 (part of the Lambda cold-start budget).
        from passlib.context import CryptContext

        self.context = CryptContext(
            schemes=["argon2", "bcrypt", "django_pbkdf2_sha256"],
            deprecated="auto",
            argon2__time_cost=settings.password_hash_time_cost,
            argon2__memory_cost=settings.password_hash_memory_kib,
        )
        self._slots = threading.BoundedSemaphore(settings.password_hash_concurrency)
        self._queue_seconds = settings.password_hash_queue_seconds

    @contextmanager
    def _slot(self) -> Iterator[None]:
        if not self._slots.acquire(timeout=self._queue_seconds):
            raise ServiceBusy("the server is busy checking passwords; try again in a moment", 1)
        try:
            yield
        finally:
            self._slots.release()

    def hash(self, password: str) -> str:
        with self._slot():
            return str(self.context.hash(password))

    def verify(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        """(matches, upgraded hash or None)."""
        secret = password.encode()
        if len(secret) > MAX_PASSWORD_BYTES:
            return False, None
        try:
            if len(secret) > BCRYPT_INPUT_BYTES and self.context.identify(password_hash) == "bcrypt":
                return self._verify_long_bcrypt(password, secret, password_hash)
            with self._slot():
                matches, new_hash = self.context.verify_and_update(password, password_hash)
        except (ValueError, TypeError):  # unknown or malformed stored hash
            return False, None
        return bool(matches), new_hash

    def _verify_long_bcrypt(self, password: str, secret: bytes, password_hash: str) -> tuple[bool, str | None]:
        """Legacy systems (bcrypt < 5, PHP, Django) hashed only the first 72 bytes; bcrypt 5 refuses
        longer input instead. Verify those bytes, then re-hash the whole password with argon2."""
        with self._slot():
            matches = self.context.verify(secret[:BCRYPT_INPUT_BYTES], password_hash)
        if not matches:
            return False, None
        return True, self.hash(password)

    @cached_property
    def dummy_hash(self) -> str:
        """Verified when the username is unknown, so both cases cost the same time (built on first use)."""
        return self.hash(secrets.token_urlsafe(16))

    def waste_time(self, password: str) -> None:
        self.verify(password, self.dummy_hash)

    def is_known_hash(self, password_hash: str) -> bool:
        return self.context.identify(password_hash) is not None


class TokenSigner:
    def __init__(self, settings: Settings, secret: bytes) -> None:
        self._secret = secret.decode()
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.access_ttl = timedelta(minutes=settings.access_token_minutes)
        self.refresh_ttl = timedelta(days=settings.refresh_token_days)

    def issue_access(
        self, *, username: str, user_id: str, role: Role, generation: int, family_id: str, now: datetime
    ) -> tuple[str, AccessClaims]:
        claims = AccessClaims(
            subject=username,
            user_id=user_id,
            role=role,
            jti=uuid.uuid4().hex,
            generation=generation,
            family_id=family_id,
            issued_at=epoch_seconds(now),
            expires_at=epoch_seconds(now + self.access_ttl),
        )
        payload: dict[str, Any] = {
            "sub": claims.subject,
            "uid": claims.user_id,
            "role": claims.role.value,
            "jti": claims.jti,
            "gen": claims.generation,
            "iat": claims.issued_at,
            "exp": claims.expires_at,
            "iss": self.issuer,
            "aud": self.audience,
            "typ": ACCESS,
            "sid": claims.family_id,
        }
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM), claims

    def accepted_until(self, issued_by: datetime) -> datetime:
        """The instant from which no access token issued up to `issued_by` is accepted any more.

        `exp` is whole seconds and python-jose compares it, plus the leeway, with its clock
        truncated to whole seconds: a token is refused only from `exp + leeway + 1` on."""
        return datetime.fromtimestamp(epoch_seconds(issued_by + self.access_ttl) + LEEWAY_SECONDS + 1, UTC)

    def verify_access(self, token: str) -> AccessClaims:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != ALGORITHM:
                raise InvalidToken(f"algorithm {header.get('alg')!r} is not allowed")
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={
                    "require_exp": True,
                    "require_iat": True,
                    "require_sub": True,
                    "require_jti": True,
                    "require_aud": True,
                    "require_iss": True,
                    "leeway": LEEWAY_SECONDS,
                },
            )
        except JWTError as exc:
            raise InvalidToken(str(exc)) from None
        if payload.get("typ") != ACCESS:
            raise InvalidToken("not an access token")
        try:
            return AccessClaims(
                subject=str(payload["sub"]),
                user_id=str(payload["uid"]),
                role=Role(payload["role"]),
                jti=str(payload["jti"]),
                generation=int(payload["gen"]),
                family_id=str(payload["sid"]),
                issued_at=int(payload["iat"]),
                expires_at=int(payload["exp"]),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise InvalidToken(f"malformed claims: {exc}") from None


def new_refresh_token() -> tuple[str, str]:
    """(token for the client, hash to store)."""
    token = secrets.token_urlsafe(32)
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
