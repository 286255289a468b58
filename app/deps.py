"""Dependencies shared by every router."""

# No `from __future__ import annotations`: FastAPI reads the signatures of these endpoints and
# dependencies for every route it builds, and would eval() each string annotation every time.

from typing import Annotated

from fastapi import Depends, Request

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


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
