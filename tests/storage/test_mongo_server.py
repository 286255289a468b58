"""MongoDB behaviour that only a server over the wire shows (mongomock ignores it): who closes the
client, index evolution, what a duplicate-key error names, and which field names a server stores."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.errors import InvalidOperation

from app.runtime import Runtime
from app.storage.cursor import CursorCodec
from app.storage.mongo.store import MongoStore
from tests.conftest import SERVER_URI
from tests.support import make_settings


@pytest.fixture
def server() -> Iterator[MongoClient[dict[str, Any]]]:
    client: MongoClient[dict[str, Any]] = MongoClient(os.environ[SERVER_URI], tz_aware=True)
    yield client
    client.close()


@pytest.fixture
def database_name(server: MongoClient[dict[str, Any]]) -> Iterator[str]:
    name = f"server_{uuid.uuid4().hex[:10]}"
    yield name
    server.drop_database(name)


def test_a_store_leaves_open_the_client_it_was_given(
    server: MongoClient[dict[str, Any]], database_name: str, cursors: CursorCodec
) -> None:
    store = MongoStore(server, database_name, cursors)
    store.close()
    assert server[database_name].command("ping")["ok"] == 1


def test_a_store_made_from_settings_closes_its_own_client(database_name: str) -> None:
    runtime = Runtime(make_settings(mongodb_uri=os.environ[SERVER_URI], mongodb_database=database_name))
    store = runtime.store
    assert isinstance(store, MongoStore)
    runtime.close()
    with pytest.raises(InvalidOperation):
        store.client[database_name].command("ping")
