"""Sending one signed delivery: short timeouts, no redirects, a capped read, the checked address.

Under the strict policy the request goes to the address `targets.check` vetted (the URL's host is
kept in the Host header and as the TLS server name, so the certificate is still verified for the
host). Connections are never reused: a pooled connection is keyed by address, and two hosts on
one address must not share a TLS session made for one of them.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from app import __version__
from app.webhooks.targets import Target

RESPONSE_EXCERPT_BYTES = 1024
CONNECT_TIMEOUT_SECONDS = 2.0
TIMEOUT_SECONDS = 5.0
_ERROR_CHARS = 300


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None = None
    error: str | None = None
    response_excerpt: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


# (target, body, headers) -> result; never raises for what the receiver does.
Sender = Callable[[Target, str, Mapping[str, str]], AttemptResult]


def _trusted(ca_bundle: Path | None) -> ssl.SSLContext | bool:
    """The public CAs, and the operator's own (WEBHOOK_CA_BUNDLE: a private CA's receivers)."""
    if ca_bundle is None:
        return True
    import certifi

    context = ssl.create_default_context(cafile=certifi.where())
    context.load_verify_locations(cafile=str(ca_bundle))
    return context


def pinned_url(target: Target) -> str:
    """The URL with its host replaced by the checked address."""
    if target.address is None:
        return target.url
    parts = urlsplit(target.url)
    host = f"[{target.address}]" if ":" in target.address else target.address
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


class HttpSender:
    """The real sender (httpx), one per process."""

    def __init__(
        self,
        *,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
        timeout: float = TIMEOUT_SECONDS,
        ca_bundle: Path | None = None,
    ) -> None:
        import httpx  # only a process that sends webhooks pays for the import

        self._httpx = httpx
        self.timeout = timeout
        self.client = httpx.Client(
            verify=_trusted(ca_bundle),
            follow_redirects=False,
            trust_env=False,  # no proxy or netrc from the environment: the checked address is the one reached
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    def __call__(self, target: Target, body: str, headers: Mapping[str, str]) -> AttemptResult:
        httpx = self._httpx
        sent = {**headers, "user-agent": f"subscriber-portal-webhooks/{__version__}", "connection": "close"}
        extensions: dict[str, Any] = {}
        if target.address is not None:
            sent["host"] = urlsplit(target.url).netloc
            extensions["sni_hostname"] = target.host
        deadline = time.monotonic() + self.timeout
        try:
            with self.client.stream(
                "POST", pinned_url(target), content=body.encode(), headers=sent, extensions=extensions
            ) as response:
                excerpt = bytearray()
                for chunk in response.iter_raw():
                    excerpt += chunk
                    if len(excerpt) >= RESPONSE_EXCERPT_BYTES or time.monotonic() > deadline:
                        break
                status = response.status_code
                location = response.headers.get("location")
        except httpx.TimeoutException:
            return AttemptResult(error="timed out")
        except httpx.HTTPError as exc:
            return AttemptResult(error=f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS])
        text = bytes(excerpt[:RESPONSE_EXCERPT_BYTES]).decode("utf-8", errors="replace") or None
        if 300 <= status < 400:
            where = f" to {location[:200]}" if location else ""
            return AttemptResult(status, f"answered a redirect{where}: redirects are not followed", text)
        if not 200 <= status < 300:
            return AttemptResult(status, f"answered HTTP {status}", text)
        return AttemptResult(status, None, text)

    def shutdown(self) -> None:
        self.client.close()
