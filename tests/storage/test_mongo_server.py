"""MongoDB behaviour that mongomock hides: who closes the client, index evolution (a server refuses
to create an index under a name it already has with other keys or options), and the `keyPattern`
of a duplicate-key error."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import ASCENDING, MongoClient
from pymongo.errors import InvalidOperation

from app.runtime import Runtime
from app.storage.cursor import CursorCodec
from app.storage.mongo import database
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


@pytest.fixture(params=["mongo", "mongo-real"])
def any_server(request: pytest.FixtureRequest, server: MongoClient[dict[str, Any]]) -> Any:
    if request.param == "mongo":
        import mongomock

        return mongomock.MongoClient(tz_aware=True)
    return server


def test_a_changed_index_is_reported_and_migrated_not_refused_at_start(
    any_server: Any, database_name: str, cursors: CursorCodec
) -> None:
    db = any_server[database_name]
    MongoStore(any_server, database_name, cursors).close()
    # An older release's indexes: by_status with other keys, and one the model no longer names.
    db["jobs"].drop_index("by_status")
    db["jobs"].create_index([("status", ASCENDING)], name="by_status")
    db["jobs"].create_index([("kind", ASCENDING)], name="by_kind")

    store = MongoStore(any_server, database_name, cursors)  # starts: a real server would refuse to create it
    check = store.readiness().checks["indexes:jobs"]
    assert not check.ok
    assert "by_status: keys [('status', 1)] on the server" in check.detail
    assert "by_kind: not in the model" in check.detail

    migrated = database.migrate_indexes(db)  # on the stand-in, its TTL indexes too (see conftest)
    assert sorted(line for line in migrated if line.startswith("jobs.")) == [
        "jobs.by_kind: not in the model -> dropped",
        "jobs.by_status: keys [('status', 1)] on the server, [('status', 1), ('order', -1)] in the model -> rebuilt",
    ]
    assert database.index_differences(db).get("jobs") is None
    assert store.readiness().checks["indexes:jobs"].ok


def test_portal_migrate_indexes_rebuilds_a_changed_index(monkeypatch: pytest.MonkeyPatch, cursors: CursorCodec) -> None:
    import mongomock
    from typer.testing import CliRunner

    from app import cli
    from app.cli import common as cli_common

    store = MongoStore(mongomock.MongoClient(tz_aware=True), "cli_indexes", cursors)
    store.db["jobs"].drop_index("newest_first")
    store.db["jobs"].create_index([("created_at", ASCENDING)], name="newest_first")
    monkeypatch.setattr(cli_common, "open_runtime", lambda: Runtime(make_settings(), store))
    result = CliRunner().invoke(cli.app, ["migrate-indexes"])
    assert result.exit_code == 0, result.output
    assert "jobs.newest_first: keys [('created_at', 1)]" in result.output
    assert database.index_differences(store.db) == {}


@pytest.mark.needs_mongodb_server("briskdb's duplicate-key errors carry no keyPattern")
def test_a_duplicate_key_names_its_index_keys(
    server: MongoClient[dict[str, Any]], database_name: str, cursors: CursorCodec
) -> None:
    """The subscriber repository reads `keyPattern` to name the field a create collided on."""
    from pymongo.errors import DuplicateKeyError

    MongoStore(server, database_name, cursors).close()
    subscribers = server[database_name]["subscribers"]
    subscribers.insert_one({"_id": "a", "msisdn": "1", "imsi": "1"})
    with pytest.raises(DuplicateKeyError) as raised:
        subscribers.insert_one({"_id": "b", "msisdn": "2", "imsi": "1"})
    assert (raised.value.details or {}).get("keyPattern") == {"imsi": 1}


def test_the_field_named_by_key_pattern_wins_over_a_lookup(cursors: CursorCodec) -> None:
    import mongomock
    from pymongo.errors import DuplicateKeyError

    from tests.subscribers.support import audit_for, imsi, msisdn, record

    store = MongoStore(mongomock.MongoClient(tz_aware=True), "key_pattern", cursors)
    store.subscribers.create(record(1), audit_for(record(1)))
    both_taken = record(2, msisdn=msisdn(1), imsi=imsi(1))
    error = DuplicateKeyError("E11000", 11000, {"keyPattern": {"imsi": 1}})
    conflict = store.subscribers._taken(error, both_taken, ("msisdn", "imsi"))
    assert conflict.attribute == "imsi"
