"""Uniqueness under concurrency, through the API: the store decides, not a read before the write."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from app.storage.base import Store
from tests.subscribers.support import assert_consistent, body, counts, msisdn
from tests.support import race

Headers = dict[str, dict[str, str]]


def test_twenty_concurrent_creates_of_one_msisdn_give_one_201_and_nineteen_409s(
    client: TestClient, role_headers: Headers, store: Store
) -> None:
    operator = role_headers["operator"]

    def create(index: int) -> Any:
        # Different uids and imsis: only the msisdn collides.
        return client.post("/subscribers", json=body(100 + index, msisdn=msisdn(1)), headers=operator)

    responses = race(20, create)
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [409] * 19
    for response in responses:
        if response.status_code == 409:
            assert [error["field"] for error in response.json()["errors"]] == ["body.msisdn"]
    winner = next(response.json() for response in responses if response.status_code == 201)
    found = client.get("/subscribers/search", params={"msisdn": msisdn(1)}, headers=operator).json()["items"]
    assert [item["uid"] for item in found] == [winner["uid"]]
    assert counts(store, "subscribers.status") == {"ACTIVE": 1}
    assert_consistent(store)  # no orphan claim, no unfinished outbox write, counters exact


def test_concurrent_patches_of_one_version_have_one_winner(
    client: TestClient, role_headers: Headers, store: Store
) -> None:
    operator = role_headers["operator"]
    assert client.post("/subscribers", json=body(1), headers=operator).status_code == 201

    def patch(index: int) -> Any:
        return client.patch(
            "/subscribers/sub-0001", json={"plan": f"PLAN{index}"}, headers={**operator, "If-Match": '"1"'}
        )

    responses = race(10, patch)
    assert sorted(response.status_code for response in responses) == [200] + [412] * 9
    assert len(counts(store, "subscribers.plan")) == 1
    assert_consistent(store)
