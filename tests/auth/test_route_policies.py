"""Every route declares a policy, and every role gets exactly what its policy allows.

The test walks the app's routes, so a new route without a declared policy fails here.
"""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from app.auth.deps import Policy
from app.auth.policy import allows
from app.storage.records import Role

UNDOCUMENTED = {"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}


def route_policy(route: APIRoute) -> Policy | None:
    policies = [dependency.call for dependency in route.dependant.dependencies if isinstance(dependency.call, Policy)]
    policies += [
        sub.call
        for dependency in route.dependant.dependencies
        for sub in dependency.dependencies
        if isinstance(sub.call, Policy)
    ]
    return policies[0] if policies else None


def api_routes(app: FastAPI) -> list[APIRoute]:
    return [route for route in app.routes if isinstance(route, APIRoute) and route.path not in UNDOCUMENTED]


def test_every_route_declares_a_policy(app: FastAPI) -> None:
    missing = [f"{sorted(route.methods)} {route.path}" for route in api_routes(app) if route_policy(route) is None]
    assert missing == [], f"routes without a policy: {missing}"


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "placeholder-id", path)


@pytest.mark.parametrize("who", ["anonymous", *[role.value for role in Role]])
def test_each_role_gets_what_its_policy_allows(
    app: FastAPI, client: TestClient, role_headers: dict[str, dict[str, str]], who: str
) -> None:
    failures = []
    for route in api_routes(app):
        policy = route_policy(route)
        assert policy is not None
        for method in sorted(route.methods - {"HEAD"}):
            headers = role_headers.get(who, {})
            if route.path == "/auth/logout":
                continue  # would end the session the rest of this loop needs; covered in test_auth_api
            status = client.request(method, _concrete(route.path), headers=headers).status_code
            if policy.public:
                expected_ok = True
            elif who == "anonymous":
                expected_ok = False
                if status != 401:
                    failures.append(f"{method} {route.path} as {who}: {status}, expected 401")
                continue
            else:
                expected_ok = policy.capability is None or allows(Role(who), policy.capability)
            if expected_ok and status in (401, 403):
                failures.append(f"{method} {route.path} as {who}: {status}, expected access")
            if not expected_ok and status != 403:
                failures.append(f"{method} {route.path} as {who}: {status}, expected 403")
    assert failures == []
