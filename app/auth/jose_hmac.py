"""python-jose, loaded for what this app uses of it: HS256 (HMAC-SHA256) tokens.

`jose.backends` imports every key backend it can find when jose is first imported. Tokens here
are signed and checked with HS256 only (`app.auth.security` refuses every other algorithm before
decoding), which jose does with the standard library's `hmac` (`jose.backends.native.HMACKey`).
Its RSA backend (the `rsa` and `pyasn1` packages, ~35 ms of a Lambda cold start) and its
`cryptography` backend are never used, so they are marked as not installed before jose is
imported: jose then takes the path it already has for a missing backend (`RSAKey` is None, HMAC
keys come from the native backend), in Lambda and in development alike. The EC key backend
(`ecdsa`) is a hard import of jose and stays. `tests/auth/test_jose_backends.py` checks all this.
"""

from __future__ import annotations

import sys

UNUSED_BACKENDS = ("jose.backends.cryptography_backend", "jose.backends.rsa_backend")

for _backend in UNUSED_BACKENDS:
    # A module already imported (jose loaded earlier by someone else) is left alone.
    sys.modules.setdefault(_backend, None)  # type: ignore[arg-type]  # None: "not installed"

from jose import JWTError, jwt  # noqa: E402 - must come after the markers above

__all__ = ["JWTError", "jwt"]
