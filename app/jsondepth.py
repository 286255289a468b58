"""Nesting depth of JSON text, measured before a parser sees it.

Python's `json` needs memory that grows with the square of the nesting depth (a 200 KB text nested
100,000 deep took 22 GB), and ijson's prefixes grow the same way. `DepthGauge` measures depth on
the raw bytes, chunk by chunk, at C speed (a regular expression drops the strings, `translate`
keeps the brackets), so untrusted JSON can be refused before it is parsed. It is not a validator:
on invalid JSON it may over- or under-count, and the parser that runs afterwards says what is wrong.
"""

from __future__ import annotations

import re
from itertools import accumulate

# A complete string, escapes included; and the rest of a string that a chunk ends inside of.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_STRING_REST = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*', re.DOTALL)
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 / -1 as signed bytes


class DepthGauge:
    """Feed JSON text in chunks; `deepest` is the deepest nesting seen so far (`[]` is 1)."""

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
    """Whether a whole JSON text nests deeper than `limit`."""
    data = text.encode() if isinstance(text, str) else text
    if data.count(b"[") + data.count(b"{") <= limit:
        return False  # too few brackets to get there: the common case, and C-fast
    return DepthGauge().feed(data) > limit


class TooDeep(ValueError):
    """JSON nested deeper than allowed; raised before it is parsed."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"nested deeper than {limit} levels")
        self.limit = limit


def loads_bounded(text: bytes | str, max_depth: int) -> object:
    """`json.loads`, refusing (TooDeep) a text nested deeper than `max_depth` before parsing it."""
    import json

    if deeper_than(text, max_depth):
        raise TooDeep(max_depth)
    return json.loads(text)
