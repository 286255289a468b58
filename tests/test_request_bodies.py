"""Deep, huge and odd bodies sent to every route that takes a JSON body: always a 4xx
problem+json, never a 500 (a body nested 100,000 deep made the login raise RecursionError)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.jsondepth import MAX_BODY_DEPTH
from app.migration.router import UPLOAD_PATHS

DEEP = 100_000


def json_operations(app: FastAPI) -> list[tuple[str, str, str]]:
    """(method, path with its parameters filled in, JSON media type) of every JSON-body operation.
    Job input files are files, not bodies (the attack table covers them). Logout comes last: it
    ends the session the others are sent with."""
    operations = []
    for path, methods in app.openapi()["paths"].items():
        if UPLOAD_PATHS.search(path):
            continue
        for method, operation in methods.items():
            content = (operation.get("requestBody") or {}).get("content") or {}
            media = next((name for name in content if name == "application/json" or name.endswith("+json")), None)
            if media is not None:
                operations.append((method.upper(), re.sub(r"\{[^}]+\}", "x1", path), media))
    return sorted(operations, key=lambda operation: operation[1] == "/auth/logout")


def nested(depth: int) -> bytes:
    return b'{"username": ' + b"[" * depth + b"]" * depth + b"}"


ODD_BODIES = {
    "empty": b"",
    "null": b"null",
    "array": b"[]",
    "string": b'"text"',
    "invalid-utf8": b'{"username": "\xff\xfe"}',
    "nul-byte": b'{"username": "a\x00b"}',
    "lone-surrogate": b'{"username": "\\ud800"}',
    "huge-exponent": b'{"username": 1e999999}',
    "huge-integer": b'{"username": ' + b"9" * 100_000 + b"}",
    "nan": b'{"username": NaN}',
    "repeated-keys": b"{" + b'"username": 1, ' * 20_000 + b'"x": 1}',
    "unterminated": b'{"username": "',
    "just-too-deep": nested(MAX_BODY_DEPTH),
}


def send(client: TestClient, method: str, path: str, body: bytes, headers: dict[str, str]) -> Any:
    return client.request(method, path, content=body, headers={**headers, "If-Match": '"1"'})


def assert_problem(response: Any, method: str, path: str, *, status: int | None = None) -> None:
    where = f"{method} {path}: {response.status_code} {response.text[:200]}"
    assert 400 <= response.status_code < 500, where
    assert status is None or response.status_code == status, where
    assert response.headers["content-type"] == "application/problem+json", where


def assert_no_server_error(response: Any, method: str, path: str) -> None:
    """Some odd bodies are valid for a route whose body is optional (an empty logout body)."""
    if response.status_code >= 400:
        assert_problem(response, method, path)
    else:
        assert (method, path) == ("POST", "/auth/logout"), f"{method} {path}: {response.status_code}"


def test_every_json_body_route_is_covered(app: FastAPI) -> None:
    paths = {(method, path) for method, path, _ in json_operations(app)}
    assert ("POST", "/auth/login") in paths
    assert ("POST", "/subscribers") in paths
    assert ("PATCH", "/subscribers/x1") in paths
    assert len(paths) >= 15


@pytest.mark.parametrize("with_type", [True, False], ids=["json", "no-content-type"])
def test_a_body_nested_100000_deep_is_refused_before_parsing(
    app: FastAPI, client: TestClient, role_headers: dict[str, dict[str, str]], with_type: bool
) -> None:
    for method, path, media in json_operations(app):
        headers = {**role_headers["admin"], **({"Content-Type": media} if with_type else {})}
        response = send(client, method, path, nested(DEEP), headers)
        assert_problem(response, method, path, status=422)
        assert response.json()["errors"] == [
            {"field": "body", "message": f"JSON nested deeper than {MAX_BODY_DEPTH} levels", "code": "json_too_deep"}
        ]


def test_a_utf16_body_cannot_hide_its_depth(
    app: FastAPI, client: TestClient, role_headers: dict[str, dict[str, str]]
) -> None:
    """json.loads takes UTF-16 bytes too; there U+2200 holds a 0x22 byte that is not a quote, which
    would make the nesting after it look like the inside of a string."""
    hidden = ('["\u2200", ' + "[" * DEEP + "]" * DEEP + ', "x"]').encode("utf-16-le")
    for method, path, media in json_operations(app):
        response = send(client, method, path, hidden, {**role_headers["admin"], "Content-Type": media})
        assert_problem(response, method, path, status=422)
        assert response.json()["errors"][0]["code"] == "json_invalid"


def test_a_body_over_the_size_limit_is_refused(
    app: FastAPI, client: TestClient, role_headers: dict[str, dict[str, str]]
) -> None:
    huge = b'{"username": "' + b"x" * (app.state.runtime.settings.max_request_bytes + 1) + b'"}'
    for method, path, media in json_operations(app):
        response = send(client, method, path, huge, {**role_headers["admin"], "Content-Type": media})
        assert_problem(response, method, path, status=413)


@pytest.mark.parametrize("name", list(ODD_BODIES))
def test_odd_bodies_get_a_problem_not_a_500(
    name: str, app: FastAPI, client: TestClient, role_headers: dict[str, dict[str, str]]
) -> None:
    for method, path, media in json_operations(app):
        response = send(client, method, path, ODD_BODIES[name], {**role_headers["admin"], "Content-Type": media})
        assert_no_server_error(response, method, path)


def test_deep_job_options_in_a_multipart_upload_are_refused(
    client: TestClient, role_headers: dict[str, dict[str, str]]
) -> None:
    options = b'{"type": "import", "mapping": ' + b"[" * DEEP + b"]" * DEEP + b"}"
    response = client.post(
        "/migration/upload",
        files={"file": ("subscribers.csv", b"uid\r\ns1\r\n", "text/csv")},
        data={"options": options.decode()},
        headers=role_headers["admin"],
    )
    assert_problem(response, "POST", "/migration/upload", status=422)
    assert response.json()["errors"][0]["field"] == "form.options"


def test_routing_answers_first_for_a_path_or_method_no_route_takes(client: TestClient) -> None:
    assert send(client, "POST", "/health", nested(DEEP), {}).status_code == 405
    assert send(client, "POST", "/no-such-route", b"\x00\x01binary", {}).status_code == 404
