"""One If-Match rule for every versioned thing: one parser, one dependency, the same document."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.concurrency import IF_MATCH_PATTERN
from tests.bookings.test_bookings_api import resource_body
from tests.subscribers.test_api import _create as create_subscriber
from tests.subscribers.test_api import body as subscriber_body

Headers = dict[str, dict[str, str]]
VERSIONED = [
    ("/subscribers/{uid}", "put", True),
    ("/subscribers/{uid}", "patch", True),
    ("/subscribers/{uid}", "delete", False),
    ("/bookings/resources/{resource_id}", "patch", False),
    ("/bookings/resources/{resource_id}", "delete", False),
]


@pytest.mark.parametrize(("path", "method", "required"), VERSIONED)
def test_if_match_is_documented_once_with_its_pattern(app: FastAPI, path: str, method: str, required: bool) -> None:
    operation = app.openapi()["paths"][path][method]
    (parameter,) = [p for p in operation["parameters"] if p["name"].lower() == "if-match"]
    assert parameter["in"] == "header"
    assert parameter["required"] is required
    assert parameter["schema"] == {
        "type": "string",
        "maxLength": 512,
        "pattern": IF_MATCH_PATTERN,
        "examples": ['"3"'],
    }
    assert {"412", "422", "428"} <= set(operation["responses"])


@pytest.mark.parametrize(
    ("header", "valid"),
    [
        ('"3"', True),
        ('W/"3"', True),
        ('"3", W/"4" ,"x-1"', True),
        ('""', True),
        ("3", False),
        ("null", False),
        ('"3",', False),
        ('"a"b"', False),
        ("*", False),
    ],
)
def test_the_documented_pattern_is_the_parsers(header: str, valid: bool) -> None:
    assert (re.fullmatch(IF_MATCH_PATTERN, header) is not None) is valid


def _send(client: TestClient, path: str, headers: dict[str, str], method: str, if_match: str | None) -> Any:
    headers = headers if if_match is None else {**headers, "If-Match": if_match}
    change = {"plan": "SILVER"} if path.startswith("/subscribers") else {"name": "Renamed"}
    return client.request(method, path, json=change if method == "PATCH" else None, headers=headers)


@pytest.fixture
def versioned(client: TestClient, role_headers: Headers, request: pytest.FixtureRequest) -> str:
    """The path of a subscriber or a resource at version 1."""
    operator = role_headers["operator"]
    if request.param == "subscriber":
        return f"/subscribers/{create_subscriber(client, operator, 1)['uid']}"
    response = client.post("/bookings/resources", json=resource_body(), headers=operator)
    assert response.status_code == 201, response.text
    return f"/bookings/resources/{response.json()['id']}"


@pytest.mark.parametrize("versioned", ["subscriber", "resource"], indirect=True)
@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
def test_one_rule_for_subscribers_and_resources(
    client: TestClient, role_headers: Headers, versioned: str, method: str
) -> None:
    operator = role_headers["operator"]
    star = _send(client, versioned, operator, method, "*")
    assert star.status_code == 428, star.text
    assert star.json()["type"] == "/problems/precondition-required"
    for malformed in ("3", "null", '"3",'):
        response = _send(client, versioned, operator, method, malformed)
        assert response.status_code == 422, response.text
        assert response.json()["errors"] == [
            {
                "field": "header.if-match",
                "message": 'expected entity tags such as "3" (comma-separated)',
                "code": "invalid_etag",
            }
        ]
    for never_matching in ('W/"1"', '"one"', '"7"'):
        stale = _send(client, versioned, operator, method, never_matching)
        assert stale.status_code == 412, stale.text
        assert stale.headers["ETag"] == '"1"'
    accepted = _send(client, versioned, operator, method, '"5", W/"2", "1"')
    assert accepted.status_code in (200, 204), accepted.text


def test_a_missing_required_if_match_is_428_not_a_validation_error(client: TestClient, role_headers: Headers) -> None:
    operator = role_headers["operator"]
    create_subscriber(client, operator, 1)
    for method, payload in (("PUT", subscriber_body(1)), ("PATCH", {"plan": "SILVER"})):
        response = client.request(method, "/subscribers/sub-0001", json=payload, headers=operator)
        assert response.status_code == 428, response.text
        assert response.json()["type"] == "/problems/precondition-required"
