"""Nesting depth of JSON text, measured before a parser sees it.

Python's `json` needs memory that grows with the square of the nesting depth (a 200 KB text nested
100,000 deep took 22 GB), and ijson's prefixes grow the same way. `DepthGauge` measures depth on
the raw bytes, chunk by chunk, at C speed (a regular expression drops the strings, `translate`
keeps the brackets), so untrusted JSON can be refused before it is parsed. It is not a validator:
on invalid JSON it may over- or under-count, and the parser that runs afterwards says what is wrong.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from app.errors import FieldCode

MAX_BODY_DEPTH = 32  # request bodies; the deepest the API takes (a job's mapping) is 6

# A complete string, escapes included; and the rest of a string that a chunk ends inside of.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_STRING_REST = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*', re.DOTALL)
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 / -1 as signed bytes


class DepthGauge:
    """Feed UTF-8 JSON text in chunks; `deepest` is the deepest nesting seen so far (`[]` is 1).
    UTF-8 only: there a 0x22 byte is always a quote, in UTF-16 it may be half of another character."""

    def __init__(self) -> None:
        self.depth = 0
        self.deepest = 0
        self._in_string = False
        self._escaped = False  # the last chunk ended on a backslash inside a string

    def feed(self, chunk: bytes) -> int:
        if not chunk:
            return self.deepest
        start = 0
        if self._in_string:
            start = int(self._escaped)
            rest = _STRING_REST.match(chunk, start)
            end = rest.end() if rest else start
            if end >= len(chunk) or chunk[end] != ord('"'):
                self._escaped = end < len(chunk)  # stopped on a lone backslash at the very end
                return self.deepest
            start, self._in_string = end + 1, False
        outside = _STRING.sub(b"", chunk[start:] if start else chunk)
        quote = outside.find(b'"')
        if quote >= 0:  # a string that goes on in the next chunk
            tail = outside[quote + 1 :]
            rest = _STRING_REST.match(tail)
            self._in_string, self._escaped = True, (rest.end() if rest else 0) < len(tail)
            outside = outside[:quote]
        steps = outside.translate(_STEPS, _NOT_BRACKETS)
        if steps:
            signed = memoryview(steps).cast("b")
            self.deepest = max(self.deepest, max(accumulate(signed, initial=self.depth)))
            self.depth += sum(signed)
        return self.deepest


def deeper_than(text: bytes | str, limit: int) -> bool:
    """Whether a whole JSON text (str, or UTF-8 bytes) nests deeper than `limit`."""
    data = text.encode() if isinstance(text, str) else text
    if data.count(b"[") + data.count(b"{") <= limit:
        return False  # too few brackets to get there: the common case, and C-fast
    return DepthGauge().feed(data) > limit


class TooDeep(ValueError):
    """JSON nested deeper than allowed; raised before it is parsed."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"nested deeper than {limit} levels")
        self.limit = limit


def loads_bounded(text: str, max_depth: int) -> object:
    """`json.loads`, refusing (TooDeep) a text nested deeper than `max_depth` before parsing it.
    Text, not bytes: json.loads would take UTF-16 bytes, which the depth is not measured in."""
    if deeper_than(text, max_depth):
        raise TooDeep(max_depth)
    return json.loads(text)


class JsonBodyDepthLimit:
    """ASGI middleware: a JSON request body nested deeper than `max_depth` gets a 422 before any
    route parses it (FastAPI and the routes' own parsing use `json.loads`). The body is already
    bounded in size by the outer middleware, and routes read it whole anyway, so it is read here
    and handed on unchanged. Bodies FastAPI would parse as JSON are checked: a JSON media type, or
    none at all, sent to a route that takes the method; `skip_paths` (job files, which stream to
    storage) are left alone."""

    def __init__(self, app: ASGIApp, *, max_depth: int, skip_paths: re.Pattern[str] | None = None) -> None:
        self.app = app
        self.max_depth = max_depth
        self.skip_paths = skip_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _may_be_json(scope) or self._skipped(scope) or not _routed(scope):
            await self.app(scope, receive, send)
            return
        body, last = await _read_body(receive)
        refusal = self._refusal(body)
        if refusal is not None:
            from starlette.requests import Request

            from app.errors import FieldError
            from app.problem_responses import validation_problem

            response = validation_problem(
                Request(scope), [FieldError(field="body", message=refusal[1], code=refusal[0])]
            )
            await response(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {**last, "body": body, "more_body": False} if last["type"] == "http.request" else last

        await self.app(scope, replay, send)

    def _refusal(self, body: bytes) -> tuple[FieldCode, str] | None:
        from app.errors import FieldCode

        # json.loads takes UTF-16 and UTF-32 bytes too, where a 0x22 byte is not always a quote:
        # the depth is measured on UTF-8 only, the one encoding JSON between systems may use.
        if body and not json.detect_encoding(body).startswith("utf-8"):
            return FieldCode.JSON_INVALID, "the body is not UTF-8 JSON"
        if deeper_than(body, self.max_depth):
            return FieldCode.JSON_TOO_DEEP, f"JSON nested deeper than {self.max_depth} levels"
        return None

    def _skipped(self, scope: Scope) -> bool:
        return bool(self.skip_paths and self.skip_paths.search(scope.get("path", "")))


def _routed(scope: Scope) -> bool:
    """Whether a route takes this method at this path: elsewhere the 404 or 405 comes first."""
    from starlette.routing import Match

    routes = getattr(getattr(scope.get("app"), "router", None), "routes", ())
    return any(route.matches(scope)[0] is Match.FULL for route in routes)


def _may_be_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            media: bytes = value.split(b";")[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return True  # FastAPI parses a body without a content type as JSON


async def _read_body(receive: Receive) -> tuple[bytes, Message]:
    """The whole body, and the last message (an `http.disconnect` ends it early)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), message
