"""Errors in layers: storage states facts, services give them their meaning for the API.

A storage error names stored things (records, attributes), never a request field such as
`body.msisdn`: which field a fact concerns is the service's to say. And one vocabulary does not
shadow the other: no two error classes are named alike but for an `Error` suffix.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import app

APP = Path(app.__file__).resolve().parent
# How the API names a field of the request: `body.msisdn`, `query.cursor`, `header.if-match`...
REQUEST_FIELD = re.compile(r"^(body|query|path|header|form)\.[a-z_-]+$")


def test_storage_names_no_request_field() -> None:
    named = [
        f"{path.relative_to(APP.parent)}:{node.lineno}: {node.value}"
        for path in sorted((APP / "storage").rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and REQUEST_FIELD.match(node.value)
    ]
    assert named == []


def test_no_two_classes_differ_only_by_an_error_suffix() -> None:
    names: dict[str, set[str]] = {}
    for path in sorted(APP.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                names.setdefault(node.name.removesuffix("Error"), set()).add(node.name)
    assert {stem: sorted(alike) for stem, alike in names.items() if len(alike) > 1} == {}
