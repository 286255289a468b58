"""Dependencies shared by every router."""

# No `from __future__ import annotations`: FastAPI reads the signatures of these endpoints and
# dependencies for every route it builds, and would eval() each string annotation every time.

from typing import Annotated

from fastapi import Depends, Request
from fastapi.routing import APIRoute

from app.config import Settings
from app.runtime import Runtime
from app.storage.base import Store


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_store(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Store:
    return runtime.store


def get_settings_dep(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Settings:
    return runtime.settings


def route_path(request: Request, operation_id: str, **params: str) -> str:
    """The absolute path of an operation's route as this request reached the app: behind an API Gateway
    stage or a base path (the request's `root_path`) it starts with that prefix, so a client can use it
    as it is (Location headers, upload URLs)."""
    for route in request.app.routes:
        if isinstance(route, APIRoute) and route.operation_id == operation_id:
            return str(request.scope.get("root_path", "")) + route.url_path_for(route.name, **params)
    raise LookupError(f"no route with operation id {operation_id!r}")


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
