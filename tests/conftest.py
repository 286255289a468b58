"""Shared fixtures: settings for tests, both storage backends, and an API client over each.

`store` is parametrised over DynamoDB (moto in-process) and MongoDB (mongomock), so every test that
takes it runs once per backend. The storage contract suite and the job and migration tests
(tests/storage, tests/migration) also run on "dynamodb-local": AWS's DynamoDB Local, stricter than
moto, one engine per test session and one table per test. The storage contract
(tests/storage/conftest.py), the store copy and the kill-and-resume tests add "mongo-real": a
MongoDB server over the wire, the one MONGODB_URI names (CI's mongo:7 job) or else briskdb behind
tests/mongo_wire.py's handshake shim, started once per session. docs/data-model.md says what that
stand-in proves.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.config import Settings
from app.storage.base import Store
from app.storage.cursor import CursorCodec
from tests.support import TEST_SECRET, make_settings

os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
BACKENDS = ["dynamodb", "mongo"]
ENGINE_BACKENDS = [*BACKENDS, "dynamodb-local"]
# The "mongo-real" server's URI, for the tests and the portal processes they start; and a flag set
# when that server is the briskdb stand-in rather than the MongoDB that MONGODB_URI named.
SERVER_URI = "PORTAL_TEST_MONGODB_URI"
STAND_IN = "PORTAL_TEST_MONGODB_STAND_IN"
_stand_in: tuple[subprocess.Popen[str], tempfile.TemporaryDirectory[str]] | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Start the stand-in before collection: portal processes that some tests start need its URI."""
    global _stand_in
    # A MongoDB the caller names wins (CI's mongo:7 job). It is taken out of MONGODB_URI, which
    # would otherwise switch every test's settings to the MongoDB backend.
    given = os.environ.get(SERVER_URI) or os.environ.pop("MONGODB_URI", None)
    if given:
        os.environ[SERVER_URI] = given
        return
    data = tempfile.TemporaryDirectory(prefix="portal-briskdb-")
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and test tooling
        [sys.executable, "-m", "tests.mongo_wire", f"{data.name}/db"],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    uri = process.stdout.readline().strip()
    if not uri.startswith("mongodb://"):
        process.kill()
        raise RuntimeError(f"the MongoDB stand-in did not start (exit {process.wait()})")
    _stand_in = (process, data)
    os.environ[SERVER_URI] = uri
    os.environ[STAND_IN] = "briskdb"


# What briskdb 0.1.0b3 refuses that MongoDB 4.4+ accepts: `$setOnInsert` (code 115). A test that
# meets it on the stand-in is reported as skipped with this reason, never as passed; CI's mongo:7
# job runs it for real.
STAND_IN_GAPS = {115: "the briskdb stand-in refuses $setOnInsert; CI's mongo:7 job runs this test"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not os.environ.get(STAND_IN) or call.excinfo is None or "mongo-real" not in item.name:
        return
    from pymongo.errors import OperationFailure

    error = call.excinfo.value
    if isinstance(error, OperationFailure) and error.code in STAND_IN_GAPS:
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: {STAND_IN_GAPS[error.code]}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`@pytest.mark.needs_mongodb_server(reason, variant="mongo-real")`: a test (or those of its
    variants whose id holds `variant`) that meets a stand-in gap where the check above can't see
    it (inside the app, which answers 500), so it is skipped on the stand-in."""
    if not os.environ.get(STAND_IN):
        return
    for item in items:
        marker = item.get_closest_marker("needs_mongodb_server")
        if marker is not None and marker.kwargs.get("variant", "") in item.name:
            item.add_marker(pytest.mark.skip(reason=f"on the briskdb stand-in: {marker.args[0]}"))


def pytest_unconfigure(config: pytest.Config) -> None:
    global _stand_in
    if _stand_in is None:
        return
    process, data = _stand_in
    _stand_in = None
    assert process.stdin is not None
    process.stdin.close()  # the stand-in stops when its stdin closes
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    del os.environ[SERVER_URI], os.environ[STAND_IN]
    data.cleanup()


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
def cursors() -> CursorCodec:
    return CursorCodec(TEST_SECRET.encode())


def dynamo_store(cursors: CursorCodec) -> Iterator[Store]:
    import boto3
    from moto import mock_aws

    from app.storage.dynamodb.store import DynamoStore

    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        store = DynamoStore(client, f"test-{uuid.uuid4().hex[:8]}", cursors, serialize_calls=True)
        store.table.ensure_table()
        yield store


class _ServerDatabases:
    """Databases on the "mongo-real" server, lent to one store at a time and emptied on return.

    Creating the project's indexes takes seconds on the stand-in, so each database gets them once
    per session; a store then starts on an empty database with every index in place."""

    def __init__(self) -> None:
        self.client: object | None = None
        self.free: list[str] = []
        self.prefix = f"test_{uuid.uuid4().hex[:8]}"
        self.created = 0

    def borrow(self) -> tuple[object, str]:
        if self.client is None:
            from pymongo import MongoClient

            self.client = MongoClient(os.environ[SERVER_URI], tz_aware=True, serverSelectionTimeoutMS=5000)
        if self.free:
            return self.client, self.free.pop()
        self.created += 1
        return self.client, f"{self.prefix}_{self.created}"

    def give_back(self, name: str) -> None:
        db = self.client[name]  # type: ignore[index]
        for collection in db.list_collection_names():
            db[collection].delete_many({})
        self.free.append(name)

    def close(self) -> None:
        if self.client is not None:
            for name in self.free:
                self.client.drop_database(name)  # type: ignore[attr-defined]
            self.client.close()  # type: ignore[attr-defined]
            self.client = None
            self.free.clear()


SERVER_DATABASES = _ServerDatabases()


@pytest.fixture(scope="session", autouse=True)
def _server_databases() -> Iterator[None]:
    yield
    SERVER_DATABASES.close()


def mongo_store(cursors: CursorCodec, *, real: bool) -> Iterator[Store]:
    from app.storage.mongo.store import MongoStore

    if real:
        client, name = SERVER_DATABASES.borrow()
    else:
        import mongomock

        client, name = mongomock.MongoClient(tz_aware=True), f"test_{uuid.uuid4().hex[:12]}"
    store = MongoStore(client, name, cursors)
    try:
        yield store
    finally:
        # As at app shutdown: the store must leave the client it was given open.
        store.close()
        if real:
            SERVER_DATABASES.give_back(name)


@pytest.fixture(scope="session")
def local_engine_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A DATA_DIR whose DynamoDB Local serves the whole session (started by the product's own code,
    as local mode does, and stopped at the end). Tests that mean "the local default" use it as
    DATA_DIR with a table of their own."""
    from app.storage.local_engine import ensure_engine, stop_engine

    data_dir = tmp_path_factory.mktemp("dynamodb-local")
    ensure_engine(data_dir)
    yield data_dir
    stop_engine(data_dir)


@pytest.fixture(scope="session")
def local_engine(local_engine_dir: Path) -> str:
    """The session engine's endpoint."""
    from app.storage.local_engine import ensure_engine

    return ensure_engine(local_engine_dir).endpoint


def local_engine_store(endpoint: str, cursors: CursorCodec) -> Iterator[Store]:
    import boto3

    from app.storage.dynamodb.store import DynamoStore
    from app.storage.local_engine import CREDENTIAL

    client = boto3.client(
        "dynamodb",
        region_name="eu-west-1",
        endpoint_url=endpoint,
        aws_access_key_id=CREDENTIAL,
        aws_secret_access_key=CREDENTIAL,
    )
    store = DynamoStore(client, f"test-{uuid.uuid4().hex[:8]}", cursors)
    store.table.ensure_table()
    try:
        yield store
    finally:
        client.delete_table(TableName=store.table.name)


def backend_store(request: pytest.FixtureRequest, cursors: CursorCodec) -> Iterator[Store]:
    if request.param == "dynamodb":
        yield from dynamo_store(cursors)
    elif request.param == "dynamodb-local":
        yield from local_engine_store(request.getfixturevalue("local_engine"), cursors)
    else:
        yield from mongo_store(cursors, real=request.param == "mongo-real")


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, cursors: CursorCodec) -> Iterator[Store]:
    yield from backend_store(request, cursors)


@pytest.fixture
def app(settings: Settings, store: Store) -> FastAPI:
    from app.main import create_app

    return create_app(settings, store)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


ROLE_PASSWORD = "role-password-0123"


@pytest.fixture
def role_headers(app: FastAPI, client: TestClient) -> dict[str, dict[str, str]]:
    """Authorization headers of one signed-in user per role: {'admin': {...}, 'operator': ..., 'viewer': ...}."""
    from app.auth.deps import auth_service_of
    from app.auth.schemas import UserCreate
    from app.storage.records import Role

    service = auth_service_of(app.state.runtime)
    headers = {}
    for role in Role:
        service.create_user("test", UserCreate(username=f"{role.value}-user", password=ROLE_PASSWORD, role=role))
        response = client.post("/auth/login", json={"username": f"{role.value}-user", "password": ROLE_PASSWORD})
        assert response.status_code == 200, response.text
        headers[role.value] = {"Authorization": f"Bearer {response.json()['access_token']}"}
    return headers
