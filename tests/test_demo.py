"""`make run`'s first minute: an empty local store (DynamoDB Local) is seeded with demo data, once."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.demo import seed_demo_data
from app.main import create_app
from app.runtime import Runtime
from app.storage.base import Store
from app.storage.records import UserRecord
from tests.support import make_settings, race


def test_local_mode_seeds_demo_data_once(local_engine_dir: Path) -> None:
    settings = make_settings(
        app_env="local",
        data_dir=str(local_engine_dir),
        dynamodb_table=f"demo-{uuid.uuid4().hex[:8]}",
        seed_demo_data=None,
        demo_admin_password="demo-password-123",
    )
    assert settings.uses_local_engine
    assert settings.should_seed_demo_data
    with TestClient(create_app(settings)) as client:
        token = client.post("/auth/login", json={"username": "admin", "password": "demo-password-123"}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        subscribers = client.get("/subscribers", headers=headers).json()["items"]
        assert len(subscribers) == 5
        resources = client.get("/bookings/resources", headers=headers).json()["items"]
        assert [resource["name"] for resource in resources] == ["Demo high-street store"]
        bookings = client.get("/bookings", params={"resource_id": resources[0]["id"]}, headers=headers)
        assert len(bookings.json()["items"]) == 3
        for username in ("operator", "viewer"):
            assert (
                client.post("/auth/login", json={"username": username, "password": "demo-password-123"}).status_code
                == 200
            )
    with TestClient(create_app(settings)) as client:  # restart: data kept, nothing seeded twice
        token = client.post("/auth/login", json={"username": "admin", "password": "demo-password-123"}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        assert len(client.get("/subscribers", headers=headers).json()["items"]) == 5


def test_two_processes_starting_on_an_empty_store_seed_it_once(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two uvicorn workers starting together: both find no admin, exactly one seeds, neither fails."""
    settings = make_settings(app_env="local", seed_demo_data=None, demo_admin_password="demo-password-123")
    both_looked = threading.Barrier(2, timeout=30)
    get_user = store.users.get

    def get_after_both_looked(username: str) -> UserRecord | None:
        found = get_user(username)
        both_looked.wait()
        return found

    monkeypatch.setattr(store.users, "get", get_after_both_looked)
    race(2, lambda _: seed_demo_data(Runtime(settings, store)))  # raises what either start raised
    assert len(store.subscribers.list(limit=100).items) == 5
    assert len(store.users.list(limit=100).items) == 3
