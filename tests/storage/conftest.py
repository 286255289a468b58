"""The storage contract also runs on a MongoDB server over the wire ("mongo-real", see tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.storage.base import Store
from app.storage.cursor import CursorCodec
from tests.conftest import BACKENDS, backend_store


@pytest.fixture(params=[*BACKENDS, "mongo-real"])
def store(request: pytest.FixtureRequest, cursors: CursorCodec) -> Iterator[Store]:
    yield from backend_store(request.param, cursors)
