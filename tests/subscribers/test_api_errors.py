"""Bad input to the subscriber endpoints: a 4xx problem naming the field, and nothing written."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.storage.base import Store
from tests.subscribers.support import body, imsi, raw_snapshot

Headers = dict[str, dict[str, str]]
PROBLEM = "application/problem+json"

BAD_FIELDS: list[tuple[dict[str, Any], str, str]] = [
    ({"msisdn": "+44 7911"}, "body.msisdn", "not a valid phone number"),
    ({"msisdn": "call me maybe"}, "body.msisdn", "not a phone number"),
    ({"msisdn": "1" * 40}, "body.msisdn", "at most 32 characters"),
    ({"msisdn": 447911123456}, "body.msisdn", "valid string"),
    ({"imsi": "23415000000001"}, "body.imsi", "exactly 15 digits"),
    ({"imsi": "23415000000001x"}, "body.imsi", "exactly 15 digits"),
    ({"iccid": "8944110000000000017"}, "body.iccid", "Luhn"),
    ({"iccid": "89441100"}, "body.iccid", "19 or 20 digits"),
    ({"email": "jane@@example.com"}, "body.email", "@"),
    ({"email": "jane@localhost"}, "body.email", ""),
    ({"status": "DELETED"}, "body.status", "ACTIVE"),
    ({"plan": ""}, "body.plan", "plan code"),
    ({"plan": "P" * 33}, "body.plan", "at most 32 characters"),
    ({"first_name": ""}, "body.first_name", "at least 1 character"),
    ({"last_name": "x" * 101}, "body.last_name", "at most 100 characters"),
    ({"uid": "has space"}, "body.uid", "1-64 characters"),
    ({"uid": "search"}, "body.uid", "reserved"),
    ({"attributes": {f"k{n}": n for n in range(51)}}, "body.attributes", "at most 50"),
    ({"attributes": {f"k{n}": "x" * 1000 for n in range(10)}}, "body.attributes", "bytes"),
    ({"attributes": {"nested": {"a": 1}}}, "body.attributes", "only strings, numbers and booleans"),
    ({"attributes": {"list": [1, 2]}}, "body.attributes", "only strings, numbers and booleans"),
    ({"attributes": {"bad key": 1}}, "body.attributes", "attribute name"),
    ({"attributes": ["a"]}, "body.attributes", "valid dictionary"),
    ({"nickname": "JJ"}, "body.nickname", "Extra inputs are not permitted"),
    ({"version": 7}, "body.version", "Extra inputs are not permitted"),
    ({"msisdn": ...}, "body.msisdn", "Field required"),
]


def _assert_problem(response: Any, status: int, field: str | None = None, reason: str = "") -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["status"] == status
    if field is not None:
        errors = {error["field"]: error["message"] for error in problem["errors"]}
        assert field in errors, problem
        assert reason in errors[field]


@pytest.fixture
def existing(client: TestClient, role_headers: Headers) -> dict[str, Any]:
    response = client.post("/subscribers", json=body(1), headers=role_headers["operator"])
    assert response.status_code == 201
    created: dict[str, Any] = response.json()
    return created


def _case_name(overrides: dict[str, Any]) -> str:
    return ", ".join(f"{name}={str(value)[:40]}" for name, value in overrides.items())


# One store per method and backend, every bad field a subtest: creating a moto table per case
# would make this matrix the slowest part of the suite.


def test_create_with_a_bad_field_writes_nothing(
    client: TestClient, role_headers: Headers, store: Store, existing: dict[str, Any], subtests: pytest.Subtests
) -> None:
    before = raw_snapshot(store)
    for overrides, field, reason in BAD_FIELDS:
        with subtests.test(_case_name(overrides)):
            response = client.post("/subscribers", json=body(2, **overrides), headers=role_headers["operator"])
            _assert_problem(response, 422, field, reason)
            assert raw_snapshot(store) == before


def test_replace_with_a_bad_field_writes_nothing(
    client: TestClient, role_headers: Headers, store: Store, existing: dict[str, Any], subtests: pytest.Subtests
) -> None:
    before = raw_snapshot(store)
    headers = {**role_headers["operator"], "If-Match": '"1"'}
    for overrides, field, reason in BAD_FIELDS:
        with subtests.test(_case_name(overrides)):
            response = client.put("/subscribers/sub-0001", json=body(1, **overrides), headers=headers)
            _assert_problem(response, 422, field, reason)
            assert raw_snapshot(store) == before


def test_patch_with_a_bad_field_writes_nothing(
    client: TestClient, role_headers: Headers, store: Store, existing: dict[str, Any], subtests: pytest.Subtests
) -> None:
    before = raw_snapshot(store)
    headers = {**role_headers["operator"], "If-Match": '"1"'}
    for overrides, field, reason in BAD_FIELDS:
        if overrides.get("msisdn", "") is ...:
            continue  # a patch needs no field
        with subtests.test(_case_name(overrides)):
            response = client.patch("/subscribers/sub-0001", json=overrides, headers=headers)
            _assert_problem(response, 422, field, reason)
            assert raw_snapshot(store) == before


def test_every_bad_field_is_reported_at_once(client: TestClient, role_headers: Headers, store: Store) -> None:
    before = raw_snapshot(store)
    payload = body(1, msisdn="12", imsi="1", email="nope", status="GONE", extra=1)
    response = client.post("/subscribers", json=payload, headers=role_headers["operator"])
    _assert_problem(response, 422)
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"body.msisdn", "body.imsi", "body.email", "body.status", "body.extra"}
    assert raw_snapshot(store) == before


NOT_JSON = [
    ({"Content-Type": "text/plain"}, json.dumps(body(1))),
    ({"Content-Type": "application/x-www-form-urlencoded"}, "msisdn=%2B447911100001"),
    ({"Content-Type": "application/xml"}, "<subscriber/>"),
    ({}, json.dumps(body(1))),
]


def test_a_body_that_is_not_json_is_415(
    client: TestClient, role_headers: Headers, store: Store, existing: dict[str, Any], subtests: pytest.Subtests
) -> None:
    before = raw_snapshot(store)
    for method, path in [
        ("POST", "/subscribers"),
        ("PUT", "/subscribers/sub-0001"),
        ("PATCH", "/subscribers/sub-0001"),
    ]:
        for headers, content in NOT_JSON:
            with subtests.test(f"{method} {headers.get('Content-Type', 'no content type')}"):
                all_headers = {**role_headers["operator"], "If-Match": '"1"', **headers}
                response = client.request(method, path, content=content.encode(), headers=all_headers)
                _assert_problem(response, 415)
                assert raw_snapshot(store) == before


def test_merge_patch_content_type_is_only_for_patch(
    client: TestClient, role_headers: Headers, existing: dict[str, Any]
) -> None:
    headers = {**role_headers["operator"], "Content-Type": "application/merge-patch+json", "If-Match": '"1"'}
    _assert_problem(client.post("/subscribers", content=json.dumps(body(2)), headers=headers), 415)
    patched = client.patch("/subscribers/sub-0001", content=json.dumps({"plan": "SILVER"}), headers=headers)
    assert patched.status_code == 200


def test_malformed_json_is_422_naming_the_body(
    client: TestClient, role_headers: Headers, store: Store, subtests: pytest.Subtests
) -> None:
    before = raw_snapshot(store)
    headers = {**role_headers["operator"], "Content-Type": "application/json"}
    for content in ["{not json", "", "[1, 2]", '"a string"', "null", "[" * 100_000 + "]" * 100_000, "\udcff"]:
        with subtests.test(content[:20] or "empty"):
            response = client.post("/subscribers", content=content.encode(errors="surrogateescape"), headers=headers)
            _assert_problem(response, 422, "body")
            assert raw_snapshot(store) == before


def test_a_body_over_the_size_limit_is_413(client: TestClient, role_headers: Headers, store: Store) -> None:
    before = raw_snapshot(store)
    oversized = json.dumps(body(1, last_name="x" * 2_000_000))
    response = client.post(
        "/subscribers", content=oversized, headers={**role_headers["operator"], "Content-Type": "application/json"}
    )
    _assert_problem(response, 413)
    assert raw_snapshot(store) == before


BAD_LIST_PARAMETERS: list[tuple[dict[str, Any], int, str]] = [
    ({"limit": 0}, 422, "query.limit"),
    ({"limit": 201}, 422, "query.limit"),
    ({"limit": "ten"}, 422, "query.limit"),
    ({"status": "DELETED"}, 422, "query.status"),
    ({"plan": "bad plan"}, 422, "query.plan"),
    ({"cursor": "garbage"}, 422, "query.cursor"),  # not of the documented shape
    ({"cursor": "eyJhZnRlciI6ImEifQ.AAAAAAAAAAAAAAAAAAAAAA"}, 404, "query.cursor"),  # well-formed, not issued
    ({"cursor": "x" * 3000}, 422, "query.cursor"),
]


def test_bad_list_parameters(client: TestClient, role_headers: Headers, subtests: pytest.Subtests) -> None:
    for params, status, field in BAD_LIST_PARAMETERS:
        with subtests.test(_case_name(params)):
            response = client.get("/subscribers", params=params, headers=role_headers["viewer"])
            _assert_problem(response, status, field)


def test_a_cursor_from_another_filter_is_refused(client: TestClient, role_headers: Headers) -> None:
    for n in range(3):
        assert client.post("/subscribers", json=body(n), headers=role_headers["operator"]).status_code == 201
    viewer = role_headers["viewer"]
    cursor = client.get("/subscribers", params={"limit": 1}, headers=viewer).json()["next_cursor"]
    assert cursor
    response = client.get("/subscribers", params={"limit": 1, "status": "ACTIVE", "cursor": cursor}, headers=viewer)
    _assert_problem(response, 404, "query.cursor")
    history = client.get("/subscribers/sub-0000/history", params={"cursor": cursor}, headers=viewer)
    _assert_problem(history, 404, "query.cursor")
    search = client.get("/subscribers/search", params={"uid_prefix": "sub", "cursor": cursor}, headers=viewer)
    _assert_problem(search, 404, "query.cursor")


def test_writes_to_a_missing_subscriber_are_404(client: TestClient, role_headers: Headers, store: Store) -> None:
    before = raw_snapshot(store)
    headers = {**role_headers["operator"], "If-Match": '"1"'}
    _assert_problem(client.put("/subscribers/ghost", json=body(1, uid=...), headers=headers), 404)
    _assert_problem(client.patch("/subscribers/ghost", json={"plan": "X"}, headers=headers), 404)
    _assert_problem(client.delete("/subscribers/ghost", headers=headers), 404)
    assert raw_snapshot(store) == before


def test_search_by_imsi_is_exact(client: TestClient, role_headers: Headers, existing: dict[str, Any]) -> None:
    response = client.get("/subscribers/search", params={"imsi": imsi(1)[:-1] + "9"}, headers=role_headers["viewer"])
    assert response.json() == {"items": [], "next_cursor": None}


def test_a_malformed_uid_in_the_path_is_422(client: TestClient, role_headers: Headers, store: Store) -> None:
    before = raw_snapshot(store)
    headers = {**role_headers["operator"], "If-Match": '"1"'}
    for uid in ("x" * 3000, "has%20space", "a.b"):
        for method, path in [
            ("GET", f"/subscribers/{uid}"),
            ("GET", f"/subscribers/{uid}/history"),
            ("PUT", f"/subscribers/{uid}"),
            ("PATCH", f"/subscribers/{uid}"),
            ("DELETE", f"/subscribers/{uid}"),
        ]:
            payload = body(1, uid=...) if method == "PUT" else {"plan": "X"}
            response = client.request(method, path, json=payload, headers=headers)
            _assert_problem(response, 422, "path.uid")
    assert raw_snapshot(store) == before
