"""The storage contract suite runs on every backend: DynamoDB Local and a MongoDB server over the
wire ("mongo-real") included (see tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.storage.base import Store
from app.storage.cursor import CursorCodec
from tests.conftest import ENGINE_BACKENDS, backend_store


@pytest.fixture(params=[*ENGINE_BACKENDS, "mongo-real"])
def store(request: pytest.FixtureRequest, cursors: CursorCodec) -> Iterator[Store]:
    yield from backend_store(request, cursors)
