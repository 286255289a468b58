"""Webhook signing secrets and Standard Webhooks signatures.

A subscription's secret is derived, not stored: HMAC-SHA256 of the subscription id and a random
salt (new at creation and at every rotation) under a key that is itself derived from the app's
signing secret (`app.secrets`) for this one purpose. The store holds only the salt, so a copy of
the database (a backup, a leaked export) gives no signing secret; the app recomputes it for each
attempt. Rotating the app's signing secret therefore changes every webhook secret: each
subscription then needs `rotate-secret` (docs/events.md says so).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets as random_source
from datetime import datetime

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SALT_BYTES = 24
_PURPOSE = b"subscriber-portal webhook secrets v1"


def new_salt() -> str:
    return base64.urlsafe_b64encode(random_source.token_bytes(SALT_BYTES)).decode().rstrip("=")


def secret_key(app_secret: bytes, subscription_id: str, salt: str) -> bytes:
    """The 32 bytes the subscription's deliveries are signed with."""
    purpose_key = hmac.new(app_secret, _PURPOSE, hashlib.sha256).digest()
    return hmac.new(purpose_key, f"{subscription_id}\x00{salt}".encode(), hashlib.sha256).digest()


def secret_text(key: bytes) -> str:
    """The secret as integrators configure it: `whsec_` and the key in base64 (Standard Webhooks)."""
    return SECRET_PREFIX + base64.b64encode(key).decode()


def signature(key: bytes, message_id: str, timestamp: datetime, body: str) -> str:
    """`v1,<base64 HMAC-SHA256 of "<id>.<unix seconds>.<body>">`, the `webhook-signature` value."""
    signed = f"{message_id}.{int(timestamp.timestamp())}.{body}".encode()
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signed_headers(key: bytes, message_id: str, timestamp: datetime, body: str) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature(key, message_id, timestamp, body),
        "content-type": "application/json",
    }
