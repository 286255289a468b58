"""Shared pieces of the webhook tests: a movable clock, a recording sender, a receiver on 127.0.0.1."""

from __future__ import annotations

import ipaddress
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from app.timeutil import utcnow
from app.webhooks.targets import Target
from app.webhooks.transport import AttemptResult


class Clock:
    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Sent:
    target: Target
    body: str
    headers: dict[str, str]


@dataclass
class RecordingSender:
    """Answers each attempt with the next of `answers` (the last one repeats)."""

    answers: list[AttemptResult] = field(default_factory=lambda: [AttemptResult(status_code=204)])
    sent: list[Sent] = field(default_factory=list)

    def __call__(self, target: Target, body: str, headers: Mapping[str, str]) -> AttemptResult:
        self.sent.append(Sent(target, body, dict(headers)))
        return self.answers[min(len(self.sent), len(self.answers)) - 1]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    received: list[Received]


# (handler) -> None: answers one request; the default says 204.
Answer = Callable[[BaseHTTPRequestHandler], None]


def no_content(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(204)
    handler.end_headers()


def loopback_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA), and its key: (cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook receiver on 127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "receiver-cert.pem", folder / "receiver-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@contextmanager
def receiver(answer: Answer = no_content, *, tls: tuple[Path, Path] | None = None) -> Iterator[Receiver]:
    """A real HTTP server on 127.0.0.1 in a thread, recording every request it gets; with `tls`
    (certificate, key), an HTTPS one."""
    received: list[Received] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            received.append(
                Received(self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
            )
            answer(self)

        def do_GET(self) -> None:
            received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, b""))
            no_content(self)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile=tls[0], keyfile=tls[1])
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        scheme = "https" if tls is not None else "http"
        yield Receiver(f"{scheme}://127.0.0.1:{server.server_address[1]}/hooks/in", received)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
