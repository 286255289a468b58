"""python-jose is loaded with its HMAC backend only (app.auth.jose_hmac): no RSA, no cryptography."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from app.auth.jose_hmac import UNUSED_BACKENDS


def test_only_the_hmac_backend_is_loaded() -> None:
    # A fresh interpreter: in this test process jose may have been imported by a test module first.
    code = textwrap.dedent(
        """
        import sys
        import app.auth.security
        import jose.backends.native
        from jose import jwk

        assert jwk.RSAKey is None, jwk.RSAKey
        assert jwk.HMACKey is jose.backends.native.HMACKey, jwk.HMACKey
        loaded = sorted(name for name in ("rsa", "pyasn1") if name in sys.modules)
        assert not loaded, loaded
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)  # noqa: S603
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_unused_backends_are_named_as_jose_names_them() -> None:
    # If python-jose renames a backend module, the marker silently stops working: fail here instead.
    import jose.backends

    source = Path(jose.backends.__file__).read_text(encoding="utf-8")
    for name in UNUSED_BACKENDS:
        assert f"from {name} import" in source, name
