"""The subscriber endpoints on every backend: happy paths, ETag/If-Match, masking, search, history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.deps import get_settings_dep
from app.storage.base import Store
from tests.subscribers.support import assert_consistent, body, counts, iccid, imsi, msisdn, raw_snapshot
from tests.support import make_settings

Headers = dict[str, dict[str, str]]


def _create(client: TestClient, headers: dict[str, str], n: int, **overrides: Any) -> dict[str, Any]:
    response = client.post("/subscribers", json=body(n, **overrides), headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _with_etag(headers: dict[str, str], version: int | str) -> dict[str, str]:
    return {**headers, "If-Match": f'"{version}"'}


# --- create and get ---------------------------------------------------------------------------------


def test_create_answers_201_with_location_etag_and_normalised_values(client: TestClient, role_headers: Headers) -> None:
    response = client.post(
        "/subscribers",
        json=body(1, msisdn="07911 100001", email="Person1@Example.COM", first_name="  Jane "),
        headers=role_headers["operator"],
    )
    assert response.status_code == 201
    assert response.headers["Location"] == "/subscribers/sub-0001"
    assert response.headers["ETag"] == '"1"'
    created = response.json()
    assert created["msisdn"] == msisdn(1)
    assert created["email"] == "person1@example.com"
    assert created["first_name"] == "Jane"
    assert created["status"] == "ACTIVE"
    assert created["created_by"] == created["updated_by"] == "operator-user"
    assert created["version"] == 1
    assert created["created_at"].endswith("Z")
    fetched = client.get("/subscribers/sub-0001", headers=role_headers["operator"])
    assert fetched.json() == created
    assert fetched.headers["ETag"] == '"1"'


def test_uid_is_generated_when_omitted_and_status_defaults_to_active(client: TestClient, role_headers: Headers) -> None:
    response = client.post("/subscribers", json=body(1, uid=..., status=...), headers=role_headers["admin"])
    assert response.status_code == 201
    uid = response.json()["uid"]
    assert len(uid) == 32
    assert response.json()["status"] == "ACTIVE"
    assert response.headers["Location"] == f"/subscribers/{uid}"


def test_unknown_subscriber_is_404(client: TestClient, role_headers: Headers) -> None:
    response = client.get("/subscribers/nobody", headers=role_headers["viewer"])
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_national_numbers_follow_the_default_phone_region(
    app: FastAPI, client: TestClient, role_headers: Headers
) -> None:
    app.dependency_overrides[get_settings_dep] = lambda: make_settings(default_phone_region="US")
    created = _create(client, role_headers["operator"], 1, msisdn="(415) 555-2671")
    assert created["msisdn"] == "+14155552671"
    found = client.get("/subscribers/search", params={"msisdn": "415 555 2671"}, headers=role_headers["viewer"])
    assert [item["uid"] for item in found.json()["items"]] == ["sub-0001"]


# --- roles and masking ------------------------------------------------------------------------------


def test_viewers_see_imsi_iccid_and_email_masked(client: TestClient, role_headers: Headers) -> None:
    _create(client, role_headers["operator"], 1)
    for role in ("operator", "admin"):
        whole = client.get("/subscribers/sub-0001", headers=role_headers[role]).json()
        assert (whole["imsi"], whole["iccid"], whole["email"]) == (imsi(1), iccid(1), "person1@example.com")
    masked = client.get("/subscribers/sub-0001", headers=role_headers["viewer"]).json()
    assert masked["imsi"] == "234150******001"
    assert masked["iccid"] == iccid(1)[:6] + "*********" + iccid(1)[-4:]
    assert masked["email"] == "p***@example.com"
    assert masked["msisdn"] == msisdn(1)
    listed = client.get("/subscribers", headers=role_headers["viewer"]).json()["items"]
    assert listed == [masked]
    found = client.get("/subscribers/search", params={"imsi": imsi(1)}, headers=role_headers["viewer"]).json()
    assert found["items"] == [masked]


def test_viewers_may_not_write_and_anonymous_callers_may_do_nothing(
    client: TestClient, role_headers: Headers, store: Store
) -> None:
    _create(client, role_headers["operator"], 1)
    before = raw_snapshot(store)
    viewer = _with_etag(role_headers["viewer"], 1)
    assert client.post("/subscribers", json=body(2), headers=viewer).status_code == 403
    assert client.put("/subscribers/sub-0001", json=body(1), headers=viewer).status_code == 403
    assert client.patch("/subscribers/sub-0001", json={"plan": "X"}, headers=viewer).status_code == 403
    assert client.delete("/subscribers/sub-0001", headers=viewer).status_code == 403
    for method, path in [
        ("GET", "/subscribers"),
        ("GET", "/subscribers/search?uid_prefix=s"),
        ("GET", "/subscribers/sub-0001"),
        ("GET", "/subscribers/sub-0001/history"),
        ("POST", "/subscribers"),
        ("PUT", "/subscribers/sub-0001"),
        ("PATCH", "/subscribers/sub-0001"),
        ("DELETE", "/subscribers/sub-0001"),
    ]:
        response = client.request(method, path, json=body(1))
        assert response.status_code == 401, (method, path)
    assert raw_snapshot(store) == before


def test_a_forbidden_caller_is_told_so_before_their_body_is_judged(client: TestClient, role_headers: Headers) -> None:
    response = client.post("/subscribers", content=b"not json", headers=role_headers["viewer"])
    assert response.status_code == 403


# --- PUT / PATCH with If-Match ----------------------------------------------------------------------


def test_put_replaces_every_mutable_field(client: TestClient, role_headers: Headers) -> None:
    created = _create(client, role_headers["operator"], 1)
    replacement = body(1, email=..., iccid=..., attributes=..., status="SUSPENDED", plan="SILVER", last_name="Roe")
    response = client.put("/subscribers/sub-0001", json=replacement, headers=_with_etag(role_headers["operator"], 1))
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"2"'
    updated = response.json()
    assert (updated["email"], updated["iccid"], updated["attributes"]) == (None, None, {})
    assert (updated["status"], updated["plan"], updated["last_name"]) == ("SUSPENDED", "SILVER", "Roe")
    assert updated["created_at"] == created["created_at"]
    assert updated["updated_at"] > created["updated_at"]
    assert updated["version"] == 2


def test_put_needs_every_required_field(client: TestClient, role_headers: Headers) -> None:
    _create(client, role_headers["operator"], 1)
    response = client.put(
        "/subscribers/sub-0001", json=body(1, status=...), headers=_with_etag(role_headers["operator"], 1)
    )
    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == ["body.status"]


def test_the_uid_cannot_change(client: TestClient, role_headers: Headers) -> None:
    _create(client, role_headers["operator"], 1)
    headers = _with_etag(role_headers["operator"], 1)
    for response in (
        client.put("/subscribers/sub-0001", json=body(1, uid="other"), headers=headers),
        client.patch("/subscribers/sub-0001", json={"uid": "other"}, headers=headers),
    ):
        assert response.status_code == 409  # a body at odds with its target (RFC 9110, 9.3.4)
        assert response.json()["errors"][0] == {
            "field": "body.uid",
            "message": "the uid can't be changed; it must match the path",
            "code": "uid_immutable",
        }
    same_uid = client.patch("/subscribers/sub-0001", json={"uid": "sub-0001", "plan": "SILVER"}, headers=headers)
    assert same_uid.status_code == 200


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_if_match_is_required_and_must_be_current(
    client: TestClient, role_headers: Headers, store: Store, method: str
) -> None:
    _create(client, role_headers["operator"], 1)
    operator = role_headers["operator"]
    payload = body(1, plan="SILVER") if method == "PUT" else {"plan": "SILVER"}

    def send(if_match: str | None) -> Any:
        headers = operator if if_match is None else {**operator, "If-Match": if_match}
        return client.request(method, "/subscribers/sub-0001", json=payload, headers=headers)

    before = raw_snapshot(store)
    assert send(None).status_code == 428
    assert send("*").status_code == 428
    stale = send('"7"')
    assert stale.status_code == 412
    assert stale.headers["ETag"] == '"1"'
    assert send('W/"1"').status_code == 412  # If-Match compares strongly
    malformed = send("1")
    assert malformed.status_code == 422
    assert malformed.json()["errors"][0]["field"] == "header.if-match"
    assert raw_snapshot(store) == before
    accepted = send('"5", "1"')
    assert accepted.status_code == 200
    assert accepted.headers["ETag"] == '"2"'
    assert send('"1"').status_code == 412  # the version moved on


def test_patch_merges_fields_and_attributes(client: TestClient, role_headers: Headers) -> None:
    _create(client, role_headers["operator"], 1, attributes={"tier": "gold", "roaming": True, "limit": 5})
    response = client.patch(
        "/subscribers/sub-0001",
        json={"status": "SUSPENDED", "email": None, "attributes": {"roaming": None, "limit": 10, "new": "x"}},
        headers={**_with_etag(role_headers["operator"], 1), "Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["status"] == "SUSPENDED"
    assert updated["email"] is None
    assert updated["iccid"] == iccid(1)  # untouched
    assert updated["attributes"] == {"tier": "gold", "limit": 10, "new": "x"}
    cleared = client.patch(
        "/subscribers/sub-0001", json={"attributes": None}, headers=_with_etag(role_headers["operator"], 2)
    )
    assert cleared.json()["attributes"] == {}


def test_patch_cannot_null_a_required_field(client: TestClient, role_headers: Headers, store: Store) -> None:
    _create(client, role_headers["operator"], 1)
    before = raw_snapshot(store)
    for name in ("msisdn", "imsi", "first_name", "status", "plan"):
        response = client.patch(
            "/subscribers/sub-0001", json={name: None}, headers=_with_etag(role_headers["operator"], 1)
        )
        assert response.status_code == 422
        assert response.json()["errors"] == [
            {"field": f"body.{name}", "message": "may not be null", "code": "null_not_allowed"}
        ]
    assert raw_snapshot(store) == before


def test_patch_that_would_overflow_attributes_is_refused(client: TestClient, role_headers: Headers) -> None:
    _create(client, role_headers["operator"], 1, attributes={f"k{n}": n for n in range(50)})
    response = client.patch(
        "/subscribers/sub-0001", json={"attributes": {"one_more": 1}}, headers=_with_etag(role_headers["operator"], 1)
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.attributes"


def test_a_change_that_changes_nothing_keeps_the_version(client: TestClient, role_headers: Headers) -> None:
    _create(client, role_headers["operator"], 1)
    response = client.patch(
        "/subscribers/sub-0001", json={"plan": "GOLD"}, headers=_with_etag(role_headers["operator"], 1)
    )
    assert response.status_code == 200
    assert response.headers["ETag"] == '"1"'
    history = client.get("/subscribers/sub-0001/history", headers=role_headers["operator"]).json()
    assert [entry["action"] for entry in history["items"]] == ["subscriber.create"]


def test_changing_msisdn_and_imsi_releases_the_old_values(
    client: TestClient, role_headers: Headers, store: Store
) -> None:
    _create(client, role_headers["operator"], 1)
    response = client.patch(
        "/subscribers/sub-0001",
        json={"msisdn": msisdn(9), "imsi": imsi(9)},
        headers=_with_etag(role_headers["operator"], 1),
    )
    assert response.status_code == 200
    _create(client, role_headers["operator"], 2, msisdn=msisdn(1), imsi=imsi(1))
    assert_consistent(store)


# --- uniqueness -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"uid": "sub-0001", "msisdn": msisdn(5), "imsi": imsi(5)}, "body.uid"),
        ({"msisdn": "07911 100001"}, "body.msisdn"),
        ({"imsi": imsi(1)}, "body.imsi"),
    ],
)
def test_create_with_a_taken_value_is_409_naming_the_field(
    client: TestClient, role_headers: Headers, store: Store, overrides: dict[str, str], field: str
) -> None:
    _create(client, role_headers["operator"], 1)
    before = raw_snapshot(store)
    response = client.post("/subscribers", json=body(2, **overrides), headers=role_headers["operator"])
    assert response.status_code == 409
    assert response.json()["type"] == "/problems/conflict"
    assert [error["field"] for error in response.json()["errors"]] == [field]
    assert raw_snapshot(store) == before


@pytest.mark.parametrize("field", ["msisdn", "imsi"])
def test_update_to_a_taken_value_is_409_and_changes_nothing(
    client: TestClient, role_headers: Headers, store: Store, field: str
) -> None:
    _create(client, role_headers["operator"], 1)
    _create(client, role_headers["operator"], 2)
    before = raw_snapshot(store)
    taken = msisdn(1) if field == "msisdn" else imsi(1)
    response = client.patch(
        "/subscribers/sub-0002", json={field: taken, "plan": "SILVER"}, headers=_with_etag(role_headers["operator"], 1)
    )
    assert response.status_code == 409
    assert response.json()["errors"][0]["field"] == f"body.{field}"
    assert raw_snapshot(store) == before


# --- delete -----------------------------------------------------------------------------------------


def test_delete_frees_msisdn_and_imsi(client: TestClient, role_headers: Headers, store: Store) -> None:
    _create(client, role_headers["operator"], 1)
    assert client.delete("/subscribers/sub-0001", headers=role_headers["operator"]).status_code == 204
    assert client.get("/subscribers/sub-0001", headers=role_headers["operator"]).status_code == 404
    assert client.delete("/subscribers/sub-0001", headers=role_headers["operator"]).status_code == 404
    _create(client, role_headers["operator"], 2, msisdn=msisdn(1), imsi=imsi(1))
    assert counts(store, "subscribers.status") == {"ACTIVE": 1}
    assert_consistent(store)


def test_delete_checks_if_match_when_sent(client: TestClient, role_headers: Headers, store: Store) -> None:
    _create(client, role_headers["operator"], 1)
    before = raw_snapshot(store)
    stale = client.delete("/subscribers/sub-0001", headers=_with_etag(role_headers["operator"], 3))
    assert stale.status_code == 412
    assert (
        client.delete("/subscribers/sub-0001", headers={**role_headers["operator"], "If-Match": "*"}).status_code == 428
    )
    assert raw_snapshot(store) == before
    assert client.delete("/subscribers/sub-0001", headers=_with_etag(role_headers["operator"], 1)).status_code == 204


# --- lists, search, history -------------------------------------------------------------------------


def _pages(client: TestClient, headers: dict[str, str], path: str, params: dict[str, Any]) -> list[str]:
    uids: list[str] = []
    cursor = None
    while True:
        response = client.get(path, params={**params, **({"cursor": cursor} if cursor else {})}, headers=headers)
        assert response.status_code == 200, response.text
        uids += [item["uid"] for item in response.json()["items"]]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return uids


def test_list_filters_and_pages(client: TestClient, role_headers: Headers) -> None:
    statuses = ["ACTIVE", "SUSPENDED", "ACTIVE"]
    for n in range(9):
        _create(client, role_headers["operator"], n, status=statuses[n % 3], plan="GOLD" if n < 5 else "SILVER")
    viewer = role_headers["viewer"]
    assert _pages(client, viewer, "/subscribers", {"limit": 2}) == [f"sub-{n:04d}" for n in range(9)]
    assert _pages(client, viewer, "/subscribers", {"status": "SUSPENDED", "limit": 1}) == [
        "sub-0001",
        "sub-0004",
        "sub-0007",
    ]
    assert _pages(client, viewer, "/subscribers", {"plan": "GOLD", "limit": 3}) == [
        "sub-0000",
        "sub-0002",
        "sub-0003",
        "sub-0001",
        "sub-0004",
    ]
    assert _pages(client, viewer, "/subscribers", {"plan": "SILVER", "status": "ACTIVE"}) == [
        "sub-0005",
        "sub-0006",
        "sub-0008",
    ]


def test_search_by_each_field(client: TestClient, role_headers: Headers) -> None:
    for n in range(4):
        _create(client, role_headers["operator"], n, email="shared@example.com" if n % 2 else f"p{n}@example.com")
    viewer = role_headers["viewer"]
    assert _pages(client, viewer, "/subscribers/search", {"msisdn": "07911100002"}) == ["sub-0002"]
    assert _pages(client, viewer, "/subscribers/search", {"msisdn": msisdn(99)}) == []
    assert _pages(client, viewer, "/subscribers/search", {"imsi": imsi(3)}) == ["sub-0003"]
    assert _pages(client, viewer, "/subscribers/search", {"email": "Shared@EXAMPLE.com", "limit": 1}) == [
        "sub-0001",
        "sub-0003",
    ]
    assert _pages(client, viewer, "/subscribers/search", {"uid_prefix": "sub-000", "limit": 3}) == [
        f"sub-{n:04d}" for n in range(4)
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "query"),
        ({"msisdn": msisdn(1), "imsi": imsi(1)}, "query"),
        ({"msisdn": "12"}, "query.msisdn"),
        ({"imsi": "123"}, "query.imsi"),
        ({"email": "not-an-address"}, "query.email"),
        ({"uid_prefix": "bad prefix"}, "query.uid_prefix"),
        ({"uid_prefix": "x", "limit": 500}, "query.limit"),
    ],
)
def test_search_input_errors_name_the_parameter(
    client: TestClient, role_headers: Headers, params: dict[str, Any], field: str
) -> None:
    response = client.get("/subscribers/search", params=params, headers=role_headers["viewer"])
    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == [field]


def test_history_is_newest_first_paginated_masked_for_viewers_and_kept_after_delete(
    client: TestClient, role_headers: Headers
) -> None:
    operator = role_headers["operator"]
    _create(client, operator, 1)
    client.patch("/subscribers/sub-0001", json={"status": "SUSPENDED"}, headers=_with_etag(operator, 1))
    client.patch("/subscribers/sub-0001", json={"email": "new@example.com"}, headers=_with_etag(operator, 2))
    client.delete("/subscribers/sub-0001", headers={**operator, "X-Request-ID": "req-delete-1"})

    first = client.get("/subscribers/sub-0001/history", params={"limit": 3}, headers=operator).json()
    rest = client.get(
        "/subscribers/sub-0001/history", params={"limit": 3, "cursor": first["next_cursor"]}, headers=operator
    ).json()
    entries = first["items"] + rest["items"]
    assert rest["next_cursor"] is None
    assert [entry["action"] for entry in entries] == [
        "subscriber.delete",
        "subscriber.update",
        "subscriber.update",
        "subscriber.create",
    ]
    assert entries[0]["request_id"] == "req-delete-1"
    assert all(entry["actor"] == "operator-user" for entry in entries)
    assert entries[1]["before"] == {"email": "person1@example.com"}
    assert entries[1]["after"] == {"email": "new@example.com"}
    assert entries[2]["before"] == {"status": "ACTIVE"}
    assert entries[2]["after"] == {"status": "SUSPENDED"}
    assert entries[3]["before"] is None
    assert entries[3]["after"]["imsi"] == imsi(1)
    # As times: the text of a whole second has no fraction ("...:32Z" sorts after "...:32.005000Z").
    times = [datetime.fromisoformat(entry["at"]) for entry in entries]
    assert times == sorted(times, reverse=True)

    viewed = client.get("/subscribers/sub-0001/history", params={"limit": 10}, headers=role_headers["viewer"]).json()
    assert viewed["items"][1]["after"] == {"email": "n***@example.com"}
    assert viewed["items"][3]["after"]["imsi"] == "234150******001"
    assert viewed["items"][0]["before"]["iccid"].count("*") == 9


def test_counters_follow_every_write(client: TestClient, role_headers: Headers, store: Store) -> None:
    operator = role_headers["operator"]
    for n in range(3):
        _create(client, operator, n)
    client.patch(
        "/subscribers/sub-0000", json={"status": "TERMINATED", "plan": "LEGACY"}, headers=_with_etag(operator, 1)
    )
    client.delete("/subscribers/sub-0001", headers=operator)
    assert counts(store, "subscribers.status") == {"ACTIVE": 1, "TERMINATED": 1}
    assert counts(store, "subscribers.plan") == {"GOLD": 1, "LEGACY": 1}
    assert_consistent(store)


# --- OpenAPI ----------------------------------------------------------------------------------------


def test_openapi_documents_every_subscriber_operation(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operations = {
        operation["operationId"]: (method, path)
        for path, methods in spec["paths"].items()
        for method, operation in methods.items()
        if path.startswith("/subscribers")
    }
    assert set(operations) == {
        "subscribers_create",
        "subscribers_list",
        "subscribers_search",
        "subscribers_get",
        "subscribers_replace",
        "subscribers_update",
        "subscribers_delete",
        "subscribers_history",
    }
    create = spec["paths"]["/subscribers"]["post"]
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/SubscriberIn"}
    assert spec["components"]["schemas"]["SubscriberIn"]["required"] == [
        "msisdn",
        "imsi",
        "first_name",
        "last_name",
        "plan",
    ]
    assert set(create["responses"]) >= {"201", "401", "403", "409", "413", "415", "422"}
    patch = spec["paths"]["/subscribers/{uid}"]["patch"]
    assert set(patch["requestBody"]["content"]) == {"application/merge-patch+json", "application/json"}
    assert {"412", "428"} <= set(patch["responses"])
    assert any(parameter["name"] == "if-match" for parameter in patch["parameters"])

    def references(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return found + [ref for value in node.values() for ref in references(value)]
        if isinstance(node, list):
            return [ref for item in node for ref in references(item)]
        return []

    subscriber_paths = {path: spec["paths"][path] for path in spec["paths"] if path.startswith("/subscribers")}
    for reference in references(subscriber_paths):
        name = reference.removeprefix("#/components/schemas/")
        assert name in spec["components"]["schemas"], reference


def test_a_subscriber_with_the_largest_attribute_numbers_reads_back_and_deletes(
    client: TestClient, role_headers: dict[str, dict[str, str]]
) -> None:
    """Found by the stateful fuzz run: DynamoDB read -1e125 back as a 126-digit int, which the delete's
    audit snapshot could not write (more digits than DynamoDB keeps): a 500."""
    attributes = {"large": -1e125, "near": -8.2e124, "tiny": 1e-130, "whole": 9007199254740991}
    created = client.post("/subscribers", json=body(1, attributes=attributes), headers=role_headers["operator"])
    assert created.status_code == 201, created.text
    uid = created.json()["uid"]
    read = client.get(f"/subscribers/{uid}", headers=role_headers["operator"])
    assert read.json()["attributes"] == attributes
    assert isinstance(read.json()["attributes"]["whole"], int)
    deleted = client.delete(f"/subscribers/{uid}", headers=role_headers["admin"])
    assert deleted.status_code == 204, deleted.text
