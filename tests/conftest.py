"""Shared fixtures: settings for tests, both storage backends, and an API client over each.

`store` is parametrised over DynamoDB (moto in-process) and MongoDB (mongomock), plus a real
MongoDB when MONGODB_URI is set, so every test that takes it runs once per backend. The storage
contract suite and the job and migration tests (tests/storage, tests/migration) also run on
"dynamodb-local": AWS's DynamoDB Local, stricter than moto, one engine per test session and one
table per test.
"""

from __future__ import annotations

import os
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
BACKENDS = ["dynamodb", "mongo"] + (["mongo-real"] if os.environ.get("MONGODB_URI") else [])
ENGINE_BACKENDS = [*BACKENDS, "dynamodb-local"]


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


def mongo_store(cursors: CursorCodec, *, real: bool) -> Iterator[Store]:
    from app.storage.mongo.store import MongoStore

    if real:
        from pymongo import MongoClient

        client: object = MongoClient(os.environ["MONGODB_URI"], tz_aware=True, serverSelectionTimeoutMS=5000)
    else:
        import mongomock

        client = mongomock.MongoClient(tz_aware=True)
    name = f"test_{uuid.uuid4().hex[:12]}"
    store = MongoStore(client, name, cursors)
    try:
        yield store
    finally:
        if real:
            client.drop_database(name)  # type: ignore[attr-defined]
        store.close()


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
