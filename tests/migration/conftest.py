"""Job and migration tests run on every backend, DynamoDB Local included (see tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from app.migration.worker import InlineDispatcher
from app.storage.base import Store
from app.storage.blobs import LocalBlobStore
from app.storage.cursor import CursorCodec
from app.storage.records import JobRecord, JobStatus, JobType
from tests.conftest import ENGINE_BACKENDS, backend_store


@pytest.fixture(params=ENGINE_BACKENDS)
def store(request: pytest.FixtureRequest, cursors: CursorCodec) -> Iterator[Store]:
    yield from backend_store(request, cursors)


def with_inline_jobs(app: FastAPI, folder: Path) -> FastAPI:
    """The app with job files in a local folder under `folder` and jobs run to the end inside the request."""
    runtime = app.state.runtime
    runtime.provide("blobs", LocalBlobStore(folder / "files"))
    runtime.provide("job_dispatcher", InlineDispatcher(runtime))
    return app


@pytest.fixture
def app(app: FastAPI, tmp_path: Path) -> FastAPI:
    return with_inline_jobs(app, tmp_path)


class RecordingQueue:
    """A job dispatcher that runs nothing and keeps what it was handed, as a queue would."""

    def __init__(self) -> None:
        self.submitted: list[str] = []

    def submit(self, job_id: str) -> None:
        self.submitted.append(job_id)


def running_job(job_id: str, job_type: JobType, *, since: datetime, **fields: Any) -> JobRecord:
    """A RUNNING job created and last heard from at `since`: what the sweeper judges."""
    return JobRecord(
        id=job_id,
        type=job_type,
        status=JobStatus.RUNNING,
        created_by="someone",
        created_at=since,
        heartbeat_at=since,
        **fields,
    )
