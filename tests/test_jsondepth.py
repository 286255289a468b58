"""Nesting depth measured on raw JSON bytes, in one piece or fed in chunks split anywhere."""

from __future__ import annotations

import json
import random

import pytest

from app.jsondepth import DepthGauge, TooDeep, deeper_than, loads_bounded


def reference_depth(text: bytes) -> int:
    """Byte by byte, the obvious way (too slow for real use)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in text:
        if in_string:
            if escaped:
                escaped = False
            elif byte == ord("\\"):
                escaped = True
            elif byte == ord('"'):
                in_string = False
        elif byte == ord('"'):
            in_string = True
        elif byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b"]}":
            depth -= 1
    return deepest


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (b"", 0),
        (b"1", 0),
        (b"{}", 1),
        (b'{"a": [1, {"b": "[[[[{{"}]}', 3),
        (b'["\\"[[", "\\\\", [[]]]', 3),
        (b'"]]]][[[["', 0),
        (b"[" * 100_000 + b"]" * 100_000, 100_000),
    ],
)
def test_depth_of_whole_texts(text: bytes, depth: int) -> None:
    assert DepthGauge().feed(text) == depth == reference_depth(text)
    assert deeper_than(text, depth - 1)
    assert not deeper_than(text, depth)


def test_chunks_split_anywhere_give_the_same_depth() -> None:
    chooser = random.Random(12)  # seeded: the same cases every run
    alphabet = b'[]{}"\\ax,:'
    for _ in range(5000):
        text = bytes(chooser.choice(alphabet) for _ in range(chooser.randint(0, 40)))
        gauge = DepthGauge()
        position = 0
        while position < len(text):
            size = chooser.randint(1, 5)
            gauge.feed(text[position : position + size])
            position += size
        assert gauge.deepest == reference_depth(text), text


def test_loads_bounded_refuses_before_parsing() -> None:
    assert loads_bounded(json.dumps({"a": {"b": [1]}}), 3) == {"a": {"b": [1]}}
    with pytest.raises(TooDeep, match="deeper than 2 levels"):
        loads_bounded('{"a": {"b": [1]}}', 2)
    with pytest.raises(TooDeep):
        loads_bounded("[" * 100_000, 32)  # json.loads would raise RecursionError, not ValueError
