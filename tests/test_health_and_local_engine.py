from __future__ import annotations

import boto3
from fastapi.testclient import TestClient
from moto import mock_aws

from app.main import create_app
from app.storage.cursor import CursorCodec
from app.storage.dynamodb.store import DynamoStore
from tests.support import make_settings


def test_liveness_needs_no_store(settings: object) -> None:
    app = create_app(make_settings())
    # No store was given and none is created: /health must not touch storage.
    response = TestClient(app).get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": "0.1.0", "environment": "test"}
    assert app.state.runtime._store is None


def test_readiness_is_503_when_the_table_is_missing(cursors: CursorCodec) -> None:
    with mock_aws():
        store = DynamoStore(boto3.client("dynamodb", region_name="eu-west-1"), "missing-table", cursors)
        client = TestClient(create_app(make_settings(), store))
        response = client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["table"]["ok"] is False
