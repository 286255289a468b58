"""Shared pieces of the webhook tests: a movable clock, a recording sender, a receiver on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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


@contextmanager
def receiver(answer: Answer = no_content) -> Iterator[Receiver]:
    """A real HTTP server on 127.0.0.1 in a thread, recording every request it gets."""
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
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Receiver(f"http://127.0.0.1:{server.server_address[1]}/hooks/in", received)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
