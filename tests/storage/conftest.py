"""The storage contract suite runs on every backend: DynamoDB Local and a MongoDB server over the
wire ("mongo-real") included (see tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app.storage.base import Store
from app.storage.cursor import CursorCodec
from app.storage.dynamodb.store import DynamoStore
from tests.conftest import ENGINE_BACKENDS, backend_store, dynamo_store


@pytest.fixture(params=[*ENGINE_BACKENDS, "mongo-real"])
def store(request: pytest.FixtureRequest, cursors: CursorCodec) -> Iterator[Store]:
    yield from backend_store(request, cursors)


@pytest.fixture
def dynamo(cursors: CursorCodec) -> Iterator[DynamoStore]:
    """A DynamoDB store on moto alone, for the tests of DynamoDB's own layout."""
    for store in dynamo_store(cursors):  # the loop's end runs the generator's clean-up
        assert isinstance(store, DynamoStore)
        yield store


@pytest.fixture
def dynamo_queries(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]] | None:
    """The arguments of every DynamoDB `query` call the store makes from now on (None on MongoDB,
    whose lists are one indexed find per page): a test bounds the work of one request with it."""
    if not isinstance(store, DynamoStore):
        return None
    queries: list[dict[str, Any]] = []
    call = store.table.call

    def recording_call(operation: str, **kwargs: Any) -> dict[str, Any]:
        if operation == "query":
            queries.append(kwargs)
        return call(operation, **kwargs)

    monkeypatch.setattr(store.table, "call", recording_call)
    return queries
