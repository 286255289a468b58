"""Opaque, signed pagination cursors.

A cursor is `base64url(json(position)) + "." + base64url(hmac)` (`CURSOR_PATTERN`). The HMAC
covers the query's scope too, so a cursor can't be forged, edited, or replayed against a different
query. The API answers a well-formed cursor it did not issue for this query with 404 (the page
that URL names does not exist), one of another shape with 422: never a 500 or a silently wrong page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from typing import Any

from app.storage.base import CursorRejected

MAX_CURSOR_LENGTH = 2048
_SIGNATURE_BYTES = 16
_SIGNATURE_LENGTH = 22  # base64url of 16 bytes, unpadded
CURSOR_PATTERN = (
    rf"^[A-Za-z0-9_-]{{1,{MAX_CURSOR_LENGTH - 1 - _SIGNATURE_LENGTH}}}\.[A-Za-z0-9_-]{{{_SIGNATURE_LENGTH}}}$"
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorCodec:
    def __init__(self, key: bytes) -> None:
        self._key = hashlib.sha256(b"cursor:" + key).digest()

    def _sign(self, scope: str, payload: bytes) -> bytes:
        return hmac.new(self._key, scope.encode() + b"\0" + payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]

    def encode(self, scope: str, position: dict[str, Any]) -> str:
        payload = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
        return f"{_b64(payload)}.{_b64(self._sign(scope, payload))}"

    def decode(self, scope: str, cursor: str) -> dict[str, Any]:
        if re.fullmatch(CURSOR_PATTERN, cursor) is None:
            raise CursorRejected()
        encoded_payload, encoded_signature = cursor.split(".")
        try:
            payload = _unb64(encoded_payload)
            signature = _unb64(encoded_signature)
        except ValueError:
            raise CursorRejected() from None
        if not hmac.compare_digest(signature, self._sign(scope, payload)):
            raise CursorRejected()
        position = json.loads(payload)
        if not isinstance(position, dict):
            raise CursorRejected()
        return position
