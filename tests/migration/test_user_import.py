"""Bulk jobs end to end with the users import: upload, validate, run, report, cancel, resume."""

from __future__ import annotations

import time
from typing import Any

import bcrypt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from passlib.hash import argon2, django_pbkdf2_sha256

from app.migration import worker
from app.storage.base import Store
from app.storage.records import JobStatus
from tests.migration.conftest import RecordingQueue, running_job

BCRYPT = bcrypt.hashpw(b"legacy-password-1", bcrypt.gensalt(rounds=4)).decode()
DJANGO = django_pbkdf2_sha256.using(rounds=1000).hash("legacy-password-2")
ARGON = argon2.using(time_cost=1, memory_cost=1024).hash("legacy-password-3")


def users_csv(*extra_rows: str) -> bytes:
    rows = [
        "Login;Mail;Name;Role;Hash",
        f"ann;ann@x.example;Ann A;operator;{BCRYPT}",
        f"bob;bob@x.example;Bob B;viewer;{DJANGO}",
        f"cyan;not-an-email;Cy C;viewer;{ARGON}",
        "dee;dee@x.example;Dee D;viewer;md5$abcdef0123456789",
        f"admin-user;a@x.example;Again;admin;{BCRYPT}",
        f"eve;eve@x.example;Eve E;superuser;{BCRYPT}",
        *extra_rows,
    ]
    return ("\r\n".join(rows) + "\r\n").encode()


MAPPING = {
    "columns": {"Login": "username", "Mail": "email", "Name": "full_name", "Role": "role", "Hash": "password_hash"}
}


def create_job(client: TestClient, headers: dict[str, str], **overrides: Any) -> dict[str, Any]:
    body = {"type": "import", "target": "users", "format": "csv", "mapping": MAPPING, **overrides}
    response = client.post("/migration/jobs", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def upload_viewers(client: TestClient, headers: dict[str, str], job_id: str, count: int) -> None:
    """The job's file: `count` valid viewers, user0 ... user<count - 1>."""
    rows = [f"user{n};u{n}@x.example;U{n};viewer;{ARGON}" for n in range(count)]
    content = ("Login;Mail;Name;Role;Hash\r\n" + "\r\n".join(rows)).encode()
    client.put(f"/migration/jobs/{job_id}/input", content=content, headers=headers)


def test_import_users_with_legacy_hashes(
    client: TestClient, role_headers: dict[str, dict[str, str]], store: Store
) -> None:
    admin = role_headers["admin"]
    created = create_job(client, admin)
    assert created["job"]["status"] == "PENDING"
    assert created["upload"]["url"] == f"/migration/jobs/{created['job']['id']}/input"
    job_id = created["job"]["id"]

    sent = client.put(
        f"/migration/jobs/{job_id}/input", content=users_csv(), headers={**admin, "content-type": "text/csv"}
    )
    assert sent.status_code == 200, sent.text
    job = client.get(f"/migration/jobs/{job_id}", headers=admin).json()
    assert job["status"] == "COMPLETED_WITH_ERRORS"
    assert job["counts"] == {
        "total": 6,
        "processed": 6,
        "created": 2,
        "updated": 0,
        "skipped": 0,
        "deleted": 0,
        "failed": 4,
    }
    assert job["percent"] == 100.0

    errors = client.get(f"/migration/jobs/{job_id}/errors", headers=admin).json()["items"]
    assert [(e["row"], e["field"], e["code"]) for e in errors] == [
        (3, "email", "invalid"),
        (4, "password_hash", "unknown_hash_scheme"),
        (5, "username", "exists"),
        (6, "role", "invalid_choice"),
    ]
    assert errors[0]["value"] == "not-an-email"

    for username, password in (("ann", "legacy-password-1"), ("bob", "legacy-password-2")):
        assert client.post("/auth/login", json={"username": username, "password": password}).status_code == 200
        assert store.users.get(username).password_hash.startswith("$argon2")  # type: ignore[union-attr]
    assert store.users.get("cyan") is None
    audit = client.get("/audit", params={"entity_type": "job", "entity_id": job_id}, headers=admin).json()["items"]
    assert [entry["action"] for entry in audit] == ["job.import.completed_with_errors"]


def test_errors_as_csv_report(client: TestClient, role_headers: dict[str, dict[str, str]]) -> None:
    admin = role_headers["admin"]
    job_id = create_job(client, admin)["job"]["id"]
    client.put(f"/migration/jobs/{job_id}/input", content=users_csv(), headers=admin)
    report = client.get(f"/migration/jobs/{job_id}/errors", params={"format": "csv"}, headers=admin)
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("text/csv")
    lines = report.text.strip().splitlines()
    assert lines[0] == "row,field,code,message,value"
    assert len(lines) == 5


def test_dry_run_writes_nothing(client: TestClient, role_headers: dict[str, dict[str, str]], store: Store) -> None:
    admin = role_headers["admin"]
    job_id = create_job(client, admin, dry_run=True)["job"]["id"]
    client.put(f"/migration/jobs/{job_id}/input", content=users_csv(), headers=admin)
    job = client.get(f"/migration/jobs/{job_id}", headers=admin).json()
    assert (job["counts"]["created"], job["counts"]["failed"]) == (2, 4)
    assert store.users.get("ann") is None


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'[{"username": "x"}]', "looks like JSON"),
        (b"Login;Colour\r\nann;red\r\n", "not mapped to any field: Colour"),
        (b'Login;Mail;Name;Role;Hash\r\nann;"unterminated\r\n', "malformed CSV"),
    ],
)
def test_file_problems_fail_the_job_before_any_write(
    client: TestClient, role_headers: dict[str, dict[str, str]], store: Store, content: bytes, reason: str
) -> None:
    admin = role_headers["admin"]
    job_id = create_job(client, admin)["job"]["id"]
    client.put(f"/migration/jobs/{job_id}/input", content=content, headers=admin)
    job = client.get(f"/migration/jobs/{job_id}", headers=admin).json()
    assert job["status"] == "FAILED"
    assert reason in job["error_summary"]
    assert job["counts"]["processed"] == 0
    assert store.users.get("ann") is None


def test_multipart_upload_creates_and_runs(client: TestClient, role_headers: dict[str, dict[str, str]]) -> None:
    import json

    response = client.post(
        "/migration/upload",
        files={"file": ("users.csv", users_csv(), "text/csv")},
        data={"options": json.dumps({"type": "import", "target": "users", "mapping": MAPPING})},
        headers=role_headers["admin"],
    )
    assert response.status_code == 201, response.text
    assert response.json()["options"]["format"] == "csv"
    job = client.get(f"/migration/jobs/{response.json()['id']}", headers=role_headers["admin"]).json()
    assert job["status"] == "COMPLETED_WITH_ERRORS"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "import", "target": "users"}, "body.format"),  # named by its field since the oneOf
        ({"type": "import", "target": "users", "format": "xml"}, "body.format"),
        (
            {"type": "import", "target": "users", "format": "csv", "mapping": {"columns": {"A": "nope"}}},
            "body.mapping.columns.A",
        ),
        (
            {"type": "import", "target": "users", "format": "csv", "mapping": {"unmapped": "keep"}},
            "body.mapping.unmapped",
        ),
        ({"type": "export", "format": "json"}, "body.format"),
        ({"type": "import", "target": "users", "format": "csv", "surprise": 1}, "body.surprise"),
    ],
)
def test_bad_job_requests(
    client: TestClient, role_headers: dict[str, dict[str, str]], store: Store, body: dict[str, Any], field: str
) -> None:
    response = client.post("/migration/jobs", json=body, headers=role_headers["admin"])
    assert response.status_code == 422, response.text
    assert field in [error["field"] for error in response.json()["errors"]]
    assert store.jobs.list_newest(status=None, job_type=None, limit=5).items == []


def test_roles(client: TestClient, role_headers: dict[str, dict[str, str]]) -> None:
    body = {"type": "import", "target": "users", "format": "csv"}
    assert client.post("/migration/jobs", json=body, headers=role_headers["operator"]).status_code == 403
    assert client.post("/migration/jobs", json=body, headers=role_headers["viewer"]).status_code == 403
    assert client.get("/migration/jobs", headers=role_headers["viewer"]).status_code == 200


def test_input_only_once_and_not_for_missing_jobs(client: TestClient, role_headers: dict[str, dict[str, str]]) -> None:
    admin = role_headers["admin"]
    job_id = create_job(client, admin)["job"]["id"]
    assert client.put(f"/migration/jobs/{job_id}/input", content=users_csv(), headers=admin).status_code == 200
    assert client.put(f"/migration/jobs/{job_id}/input", content=users_csv(), headers=admin).status_code == 409
    assert client.put("/migration/jobs/nope/input", content=b"x", headers=admin).status_code == 404


def test_upload_size_limit(
    store: Store, role_headers: dict[str, dict[str, str]], client: TestClient, app: FastAPI
) -> None:
    admin = role_headers["admin"]
    app.state.runtime.settings = app.state.runtime.settings.model_copy(update={"max_upload_bytes": 2048})
    job_id = create_job(client, admin)["job"]["id"]
    response = client.put(f"/migration/jobs/{job_id}/input", content=b"x" * 5000, headers=admin)
    assert response.status_code == 413
    assert client.get(f"/migration/jobs/{job_id}", headers=admin).json()["input_received_at"] is None


def test_large_upload_passes_the_general_body_limit(
    client: TestClient, role_headers: dict[str, dict[str, str]], store: Store
) -> None:
    admin = role_headers["admin"]
    job_id = create_job(client, admin, dry_run=True, mapping={**MAPPING, "unmapped": "ignore"})["job"]["id"]
    # A dry run of a file just over 1 MiB: long padding keeps the row count (and the test) small.
    filler = "".join(f"user{n:05d};u{n}@x.example;U;viewer;{ARGON};{'p' * 1000}\r\n" for n in range(1000))
    content = ("Login;Mail;Name;Role;Hash;Pad\r\n" + filler).encode()
    assert len(content) > 1_048_576  # more than MAX_REQUEST_BYTES
    response = client.put(f"/migration/jobs/{job_id}/input", content=content, headers=admin)
    assert response.status_code == 200, response.text
    assert store.jobs.get(job_id).counts.processed == 1000  # type: ignore[union-attr]


def test_cancel_a_job_waiting_for_its_file(client: TestClient, role_headers: dict[str, dict[str, str]]) -> None:
    admin = role_headers["admin"]
    job_id = create_job(client, admin)["job"]["id"]
    cancelled = client.post(f"/migration/jobs/{job_id}/cancel", headers=admin)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "CANCELLED"
    assert client.post(f"/migration/jobs/{job_id}/cancel", headers=admin).status_code == 409
    listed = client.get("/migration/jobs", params={"status": "CANCELLED"}, headers=admin).json()["items"]
    assert [job["id"] for job in listed] == [job_id]


def test_crash_between_batch_and_checkpoint_resumes_exactly(
    app: FastAPI,
    client: TestClient,
    role_headers: dict[str, dict[str, str]],
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker dies after writing a batch but before its checkpoint; the next run redoes that batch
    without duplicates and the final counts are exact."""
    runtime = app.state.runtime
    engine = worker.engine(runtime)
    kind = engine.kinds["import:users"]
    monkeypatch.setattr(kind, "batch_rows", 2)
    runtime.provide("job_dispatcher", RecordingQueue())  # parked: nothing runs the job but this test
    admin = role_headers["admin"]
    job_id = create_job(client, admin, mapping={**MAPPING, "unmapped": "ignore"})["job"]["id"]
    upload_viewers(client, admin, job_id, 7)

    original_commit = engine._commit
    commits = 0

    def crash_on_third(job: Any, result: Any) -> Any:
        nonlocal commits
        commits += 1
        if commits == 3:
            raise KeyboardInterrupt("worker killed")  # not an Exception: nothing in the engine handles it
        return original_commit(job, result)

    monkeypatch.setattr(engine, "_commit", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        engine.run(job_id)
    stalled = store.jobs.get(job_id)
    assert stalled is not None
    assert stalled.status is JobStatus.RUNNING
    assert stalled.checkpoint["row"] == 4
    assert store.users.get("user4") is not None  # written, but not checkpointed

    monkeypatch.setattr(engine, "_commit", original_commit)
    other = worker.JobEngine(runtime, engine.kinds, owner="second-worker")
    assert other.run(job_id) is None  # the dead worker's lease still holds
    from datetime import timedelta

    from app.timeutil import utcnow

    lapsed = utcnow() - timedelta(seconds=1)
    store.jobs.claim(job_id, owner=engine.owner, now=utcnow(), lease_until=lapsed)  # the dead worker's lease lapses
    done = other.run(job_id)
    assert done is not None
    assert done.status is JobStatus.COMPLETED
    assert done.counts.model_dump() == {
        "total": 7,
        "processed": 7,
        "created": 7,
        "updated": 0,
        "skipped": 0,
        "deleted": 0,
        "failed": 0,
    }
    assert [store.users.get(f"user{n}") is not None for n in range(7)] == [True] * 7


def test_deadline_pauses_and_frees_the_lease(
    app: FastAPI, client: TestClient, role_headers: dict[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = app.state.runtime
    engine = worker.engine(runtime)
    monkeypatch.setattr(engine.kinds["import:users"], "batch_rows", 2)
    queue = RecordingQueue()
    runtime.provide("job_dispatcher", queue)
    admin = role_headers["admin"]
    job_id = create_job(client, admin, mapping={**MAPPING, "unmapped": "ignore"})["job"]["id"]
    upload_viewers(client, admin, job_id, 5)
    assert queue.submitted == [job_id]

    # As the SQS worker does: a deadline already reached pauses after one batch and queues a continuation.
    worker.run_from_queue({"kind": worker.MESSAGE_KIND, "job_id": job_id}, runtime, time.monotonic())
    paused = runtime.store.jobs.get(job_id)
    assert paused.status is JobStatus.RUNNING
    assert paused.counts.processed == 2
    assert queue.submitted == [job_id, job_id]
    other = worker.JobEngine(runtime, engine.kinds, owner="another-lambda")
    finished = other.run(job_id)  # the lease was freed: another instance continues at once
    assert finished is not None
    assert finished.counts.processed == 5
    assert finished.status is JobStatus.COMPLETED


def test_sweeper_resumes_a_silent_job_and_gives_up_after_repeated_stalls(app: FastAPI, store: Store) -> None:
    from datetime import timedelta

    from app.storage.records import JobType
    from app.timeutil import utcnow

    runtime = app.state.runtime
    queue = RecordingQueue()
    runtime.provide("job_dispatcher", queue)
    old = utcnow() - timedelta(minutes=30)
    users = {"target": "users"}
    store.jobs.create(running_job("stalled", JobType.IMPORT, since=old, options=users))
    store.jobs.create(running_job("hopeless", JobType.IMPORT, since=old, options=users, checkpoint={"resumes": 5}))
    store.jobs.create(running_job("fresh", JobType.IMPORT, since=utcnow(), options=users))
    result = worker.sweep_task(runtime)
    assert result == {"resumed": ["stalled"], "failed": ["hopeless"]}
    assert queue.submitted == ["stalled"]
    assert store.jobs.get("stalled").checkpoint["resumes"] == 1  # type: ignore[union-attr]
    assert store.jobs.get("hopeless").status is JobStatus.FAILED  # type: ignore[union-attr]
