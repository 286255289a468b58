from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI

from app.migration.worker import InlineDispatcher
from app.storage.blobs import LocalBlobStore


@pytest.fixture
def app(app: FastAPI, tmp_path: Path) -> FastAPI:
    """The app with job files in a temporary folder and jobs run to the end inside the request."""
    runtime = app.state.runtime
    runtime.provide("blobs", LocalBlobStore(tmp_path / "files"))
    runtime.provide("job_dispatcher", InlineDispatcher(runtime))
    return app
