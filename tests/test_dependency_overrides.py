"""`app.dependency_overrides` reaches every route, though the routes are added without `include_router`."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from app.deps import SERVING_APP_OVERRIDES, get_settings_dep
from app.main import create_app
from app.storage.base import Store
from tests.support import make_settings


def test_an_override_takes_effect_on_a_real_route(app: FastAPI, client: TestClient) -> None:
    assert client.get("/health").json()["environment"] == "test"
    app.dependency_overrides[get_settings_dep] = lambda: make_settings(app_env="dev")
    assert client.get("/health").json()["environment"] == "dev"
    app.dependency_overrides.clear()
    assert client.get("/health").json()["environment"] == "test"


def test_one_apps_overrides_leave_another_app_alone(app: FastAPI, client: TestClient, store: Store) -> None:
    # Both apps serve the same route objects (built once, when the routers were imported).
    other = create_app(make_settings(), store)
    app.dependency_overrides[get_settings_dep] = lambda: make_settings(app_env="dev")
    with TestClient(other) as other_client:
        assert other_client.get("/health").json()["environment"] == "test"
    assert client.get("/health").json()["environment"] == "dev"


def test_every_route_reads_the_overrides_of_the_app_serving_it(app: FastAPI) -> None:
    routes = [route for route in app.routes if isinstance(route, APIRoute)]
    assert len(routes) > 40
    providers = {route.path: route.dependency_overrides_provider for route in routes}
    assert {path for path, provider in providers.items() if provider not in (app, SERVING_APP_OVERRIDES)} == set()
