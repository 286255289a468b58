"""A real worker process killed with SIGKILL in the middle of an import, then resumed by another one.

The processes share a real store server: DynamoDB on a moto server and on DynamoDB Local, and
MongoDB on the "mongo-real" server of tests/conftest.py. `portal import` runs in its own process
group through killable_portal.py, which stalls it, on every run, with a batch partly (or wholly)
written and not checkpointed; the test checks the job is mid-way, kills the group with SIGKILL, and
resumes the job with the unmodified
`portal` console script: `portal jobs run JOB_ID`, or `portal jobs sweep`. Afterwards everything
must be as if the import had never been interrupted: exact counts and row errors, every subscriber
exactly once, no orphan uniqueness claim, counters that reconcile, one audit entry for the job.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from typer.testing import CliRunner

from app import cli
from app.config import Settings, load_settings
from app.runtime import Runtime
from app.storage.base import JOB_STATUS_SCOPE, Store
from app.storage.records import JobRecord, JobStatus, SubscriberRecord
from app.subscribers.schemas import parse_subscriber
from app.subscribers.service import SubscriberService
from app.timeutil import utcnow
from tests.conftest import SERVER_URI
from tests.servers import ROOT, moto_server
from tests.support import TEST_SECRET

pytestmark = pytest.mark.slow

T = TypeVar("T")
LAUNCHER = Path(__file__).with_name("killable_portal.py")
PORTAL = Path(sys.executable).with_name("portal")
ROWS = 50
BATCH_ROWS = 10
LEASE_SECONDS = 3  # long enough to see a dead worker's lease refuse a resume, short enough to wait out
WAIT_SECONDS = 45  # upper bound for any one wait; a loaded machine takes a few seconds at most
INTERRUPT_SECONDS = 5  # Ctrl-C stops the CLI within a few seconds
BACKENDS = [
    "dynamodb",
    "dynamodb-local",
    "mongo-real",
]

# --- the file: 50 rows in 5 batches of 10, with invalid rows and duplicates inside the file --------

STATUSES = ("ACTIVE", "SUSPENDED", "INACTIVE")
PLANS = ("GOLD", "SILVER", "BRONZE")
EXPECTED_ERRORS = [
    (7, "msisdn", "invalid_msisdn"),  # not a phone number
    (23, "status", "invalid_choice"),  # not a status
    (25, "msisdn", "duplicate_in_file"),  # msisdn of row 21, same batch
    (28, "uid", "duplicate_in_file"),  # uid of row 5, an earlier batch
    (44, "imsi", "duplicate_in_file"),  # imsi of row 26, an earlier batch
]
VALID_ROWS = [n for n in range(1, ROWS + 1) if n not in {row for row, _, _ in EXPECTED_ERRORS}]
SEEDED_ROWS = (3, 13, 24)  # subscribers that exist before the upsert import (other numbers, status, plan)


def msisdn(n: int) -> str:
    return f"+44791110{n:04d}"


def imsi(n: int) -> str:
    return f"23415000000{n:04d}"


def import_file(path: Path) -> Path:
    lines = ["uid,msisdn,imsi,first_name,last_name,status,plan"]
    for n in range(1, ROWS + 1):
        uid, phone, sim, status = f"s{n:04d}", msisdn(n), imsi(n), STATUSES[n % 3]
        if n == 7:
            phone = "not a number"
        elif n == 23:
            status = "NOPE"
        elif n == 25:
            phone = msisdn(21)
        elif n == 28:
            uid = "s0005"
        elif n == 44:
            sim = imsi(26)
        lines.append(f"{uid},{phone},{sim},First{n},Last{n},{status},{PLANS[n % 3]}")
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    return path


# --- the processes' environment, and a store on the same server in this process ----------------------


@dataclass
class Deployment:
    """What every `portal` process of one test gets, and the same store opened in the test process."""

    env: dict[str, str]
    workdir: Path
    backend: str
    runtime: Runtime

    @property
    def store(self) -> Store:
        return self.runtime.store


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(params=BACKENDS)
def deployment(
    request: pytest.FixtureRequest, moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Deployment]:
    name = f"killtest-{uuid.uuid4().hex[:10]}"
    env = {
        "APP_ENV": "test",
        "JWT_SECRET": TEST_SECRET,
        "SEED_DEMO_DATA": "false",
        "DATA_DIR": str(tmp_path / "data"),  # job files: the local blob store, shared by the processes
        "JOB_LEASE_SECONDS": str(LEASE_SECONDS),
        "LOG_LEVEL": "WARNING",
        # Every AWS client of every process talks to the moto server, with credentials that are not.
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    if request.param.startswith("dynamodb"):
        local = request.param == "dynamodb-local"
        env |= {
            "STORAGE_BACKEND": "dynamodb",
            "DYNAMODB_ENDPOINT_URL": request.getfixturevalue("local_engine") if local else moto_endpoint,
            "DYNAMODB_TABLE": name,
            "DYNAMODB_CREATE_TABLE": "true",
        }
    else:
        env |= {
            "STORAGE_BACKEND": "mongo",
            "MONGODB_URI": os.environ[SERVER_URI],
            "MONGODB_DATABASE": name.replace("-", "_"),
        }
    # This process gets exactly the same configuration (for its store and the in-process CLI calls):
    # no setting, AWS profile or .env file of the developer's may leak in.
    for setting in Settings.model_fields:
        monkeypatch.delenv(setting.upper(), raising=False)
    for variable in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.chdir(tmp_path)
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    process_env = {
        **{variable: os.environ[variable] for variable in keep if variable in os.environ},
        **env,
        "PYTHONPATH": str(ROOT),
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    runtime = Runtime(load_settings())
    runtime.store  # noqa: B018 - creates the table before any portal process runs
    try:
        yield Deployment(process_env, tmp_path, request.param, runtime)
    finally:
        if request.param == "mongo-real":
            from pymongo import MongoClient

            client: MongoClient[dict[str, Any]] = MongoClient(os.environ[SERVER_URI])
            client.drop_database(env["MONGODB_DATABASE"])
            client.close()
        runtime.close()


# --- processes -------------------------------------------------------------------------------------


def kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=WAIT_SECONDS)


def portal_command(args: list[str]) -> list[str]:
    return [str(PORTAL), *args] if PORTAL.exists() else [sys.executable, "-m", "app.cli", *args]


def run_portal(deployment: Deployment, *args: str) -> tuple[int, str]:
    """The unmodified console script in its own process group; (exit status, output)."""
    process = subprocess.Popen(  # noqa: S603 - our own console script
        portal_command(list(args)),
        cwd=deployment.workdir,
        env=deployment.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=WAIT_SECONDS)
    except subprocess.TimeoutExpired:
        kill_group(process)
        output, _ = process.communicate()
        pytest.fail(f"portal {' '.join(args)} did not end within {WAIT_SECONDS} s:\n{output.decode()[-3000:]}")
    finally:
        kill_group(process)
    return process.returncode, output.decode(errors="replace")


def run_in_process(*args: str) -> tuple[int, str]:
    """The same command line in this process (no interpreter start-up: for checks that race a lease)."""
    result = CliRunner().invoke(cli.app, list(args))
    return result.exit_code, result.output


def wait_for(condition: Callable[[], T | None], what: str, *, process: subprocess.Popen[bytes] | None = None) -> T:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        value = condition()
        if value is not None:
            return value
        if process is not None and process.poll() is not None:
            pytest.fail(f"the process ended (exit {process.returncode}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"waited {WAIT_SECONDS} s for {what}")
        time.sleep(0.05)


def kill_mid_import(
    deployment: Deployment,
    *,
    mode: str,
    stall_in_batch: int,
    stall_after_rows: str,
    stop_with: signal.Signals = signal.SIGKILL,
) -> JobRecord:
    """`portal import` (with BATCH_ROWS-row batches) stalled in batch `stall_in_batch` after writing
    `stall_after_rows` of its valid rows, then SIGKILLed; returns the job as the dead worker left it.
    With `stop_with=SIGINT` (Ctrl-C) the process must end by itself, within INTERRUPT_SECONDS."""
    data = import_file(deployment.workdir / "legacy.csv")
    stalled = deployment.workdir / "stalled"
    log = deployment.workdir / "import.log"
    env = {
        **deployment.env,
        "KILLTEST_BATCH_ROWS": str(BATCH_ROWS),
        "KILLTEST_STALL_IN_BATCH": str(stall_in_batch),
        "KILLTEST_STALL_AFTER_ROWS": stall_after_rows,
        "KILLTEST_STALLED_FILE": str(stalled),
    }
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - our interpreter and launcher
            [sys.executable, str(LAUNCHER), "import", str(data), "--mode", mode],
            cwd=deployment.workdir,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stalled_job_id() -> str | None:
        return (stalled.read_text(encoding="utf-8") or None) if stalled.exists() else None

    try:
        try:
            job_id = wait_for(stalled_job_id, f"the import to stall in batch {stall_in_batch}", process=process)
        except BaseException:
            print(log.read_text(errors="replace")[-3000:])  # shown with the failure
            raise
        job = deployment.store.jobs.get(job_id)
        assert job is not None
        done = (stall_in_batch - 1) * BATCH_ROWS
        # Mid-job: running, `done` rows checkpointed, and the worker's lease still held.
        assert job.status is JobStatus.RUNNING, job
        assert (job.checkpoint.get("row"), job.counts.processed, job.counts.total) == (done, done, ROWS), job
        assert job.lease_owner is not None
        assert job.lease_until is not None
        assert job.lease_until > utcnow(), "the lease lapsed before the kill: the machine is far too slow"
        if stop_with is signal.SIGINT:
            asked = time.monotonic()
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=INTERRUPT_SECONDS)
            except subprocess.TimeoutExpired:
                pytest.fail(f"Ctrl-C did not stop `portal import` within {INTERRUPT_SECONDS} s")
            assert process.returncode == 130, f"exit {process.returncode}: {log.read_text()[-3000:]}"
            assert time.monotonic() - asked < INTERRUPT_SECONDS
            return job
    finally:
        kill_group(process)
    assert process.returncode == -signal.SIGKILL, f"exit {process.returncode}: {log.read_text()[-3000:]}"
    return job


def wait_for_lease_to_lapse(deployment: Deployment, job: JobRecord) -> None:
    assert job.lease_until is not None
    lease_until: datetime = job.lease_until
    wait_for(lambda: True if utcnow() > lease_until else None, "the dead worker's lease to lapse")


# --- what must hold after the resume -------------------------------------------------------------------


def all_subscribers(store: Store) -> list[SubscriberRecord]:
    found: list[SubscriberRecord] = []
    cursor = None
    while True:
        page = store.subscribers.list(limit=100, cursor=cursor)
        found.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return found


def dynamodb_claims(deployment: Deployment) -> set[tuple[str, str]]:
    """Every msisdn/imsi claim item in the table: (claim key, uid)."""
    import boto3

    client = boto3.client("dynamodb", endpoint_url=deployment.env["DYNAMODB_ENDPOINT_URL"])
    claims = set()
    for page in client.get_paginator("scan").paginate(TableName=deployment.env["DYNAMODB_TABLE"]):
        for item in page["Items"]:
            key = item["PK"]["S"]
            if key.startswith(("MSISDN#", "IMSI#")):
                claims.add((key, item["uid"]["S"]))
    return claims


def assert_imported_exactly(deployment: Deployment, job_id: str, *, updated_rows: tuple[int, ...] = ()) -> JobRecord:
    store = deployment.store
    job = store.jobs.get(job_id)
    assert job is not None
    assert job.status is JobStatus.COMPLETED_WITH_ERRORS, job
    counts = job.counts
    assert (counts.total, counts.processed, counts.failed) == (ROWS, ROWS, len(EXPECTED_ERRORS)), counts
    assert (counts.created, counts.updated) == (len(VALID_ROWS) - len(updated_rows), len(updated_rows)), counts
    assert (counts.skipped, counts.deleted) == (0, 0), counts
    errors = store.jobs.list_errors(job_id, limit=100).items
    assert [(e.row, e.field, e.code) for e in errors] == EXPECTED_ERRORS

    subscribers = all_subscribers(store)
    uids = [s.uid for s in subscribers]
    assert sorted(uids) == [f"s{n:04d}" for n in VALID_ROWS], "a subscriber missing or listed twice"
    for subscriber in subscribers:
        n = int(subscriber.uid[1:])
        assert (subscriber.msisdn, subscriber.imsi) == (msisdn(n), imsi(n))
        assert (subscriber.status.value, subscriber.plan) == (STATUSES[n % 3], PLANS[n % 3])
        assert (subscriber.import_job_id, subscriber.import_row) == (job_id, n)
        assert subscriber.version == (2 if n in updated_rows else 1), subscriber  # written once by the job
    if deployment.backend.startswith("dynamodb"):
        # Uniqueness lives in claim items there (MongoDB: unique indexes): none orphaned, none missing.
        expected = {(f"MSISDN#{s.msisdn}", s.uid) for s in subscribers} | {
            (f"IMSI#{s.imsi}", s.uid) for s in subscribers
        }
        assert dynamodb_claims(deployment) == expected

    status, output = run_in_process("reconcile-counters")
    assert (status, "subscriber counters match the data" in output) == (0, True), output
    live_jobs = {key: n for key, n in store.counters.get(JOB_STATUS_SCOPE).items() if n}
    assert live_jobs == {"COMPLETED_WITH_ERRORS": 1}
    audit = store.audit.list_for_entity("job", job_id, limit=10).items
    assert [entry.action for entry in audit] == ["job.import.completed_with_errors"]
    return job


# --- the tests -------------------------------------------------------------------------------------------


def test_import_killed_with_a_batch_half_written_resumes_exactly_with_jobs_run(deployment: Deployment) -> None:
    # Killed in batch 3 (rows 21-30) after its first 4 valid rows went through the store (21, 22, 24
    # written; 25 refused as a duplicate of 21), with rows 1-20 checkpointed.
    job = kill_mid_import(deployment, mode="create", stall_in_batch=3, stall_after_rows="4")
    store = deployment.store
    assert (job.counts.created, job.counts.failed) == (19, 1)
    written = [uid for uid in ("s0021", "s0022", "s0024", "s0025", "s0026") if store.subscribers.get(uid)]
    assert written == ["s0021", "s0022", "s0024"], "the kill was meant to leave batch 3 partly written"

    # The dead worker's lease is still fresh: another worker must not take the job.
    status, output = run_in_process("jobs", "run", job.id)
    assert (status, "another worker holds this job" in output) == (1, True), output
    left = store.jobs.get(job.id)
    assert left is not None
    assert (left.version, left.checkpoint, left.lease_owner) == (job.version, job.checkpoint, job.lease_owner)
    assert left.lease_until is not None
    assert left.lease_until > utcnow(), "the lease lapsed during the check: it proved nothing (machine too slow)"

    wait_for_lease_to_lapse(deployment, job)
    status, output = run_portal(deployment, "jobs", "run", job.id)
    assert status == 1, output  # completed, with row errors (exit status 1, as for `portal import`)
    assert "COMPLETED_WITH_ERRORS" in output, output
    done = assert_imported_exactly(deployment, job.id)
    assert done.checkpoint.get("resumes") is None  # resumed by hand, not by the sweeper


def test_upsert_killed_before_its_checkpoint_is_resumed_exactly_by_the_sweeper(deployment: Deployment) -> None:
    store = deployment.store
    service = SubscriberService(store, deployment.runtime.settings)
    for n in SEEDED_ROWS:
        data = {
            "uid": f"s{n:04d}",
            "msisdn": f"+44791120{n:04d}",
            "imsi": f"23415900000{n:04d}",
            "first_name": "Old",
            "last_name": "Record",
            "status": "TERMINATED",
            "plan": "LEGACY",
        }
        service.create("seed", parse_subscriber(data, phone_region="GB"))
    # Killed after batch 2 (rows 11-20, replacing s0013) was wholly written, its checkpoint not saved.
    job = kill_mid_import(deployment, mode="upsert", stall_in_batch=2, stall_after_rows="all")
    assert (job.counts.created, job.counts.updated, job.counts.failed) == (8, 1, 1)
    replaced = store.subscribers.get("s0013")
    assert replaced is not None
    assert (replaced.version, replaced.import_job_id) == (2, job.id), "batch 2 was meant to be written"

    # A sweep while the dead worker's lease is fresh leaves the job alone.
    status, output = run_in_process("jobs", "sweep", "--stale-after", "0")
    assert (status, "no stalled jobs" in output) == (0, True), output
    assert store.jobs.get(job.id).version == job.version  # type: ignore[union-attr]

    wait_for_lease_to_lapse(deployment, job)
    status, output = run_portal(deployment, "jobs", "sweep", "--stale-after", "1")
    assert status == 1, output  # it resumed the job, which completed with row errors
    assert f"resuming job {job.id}" in output, output
    assert "COMPLETED_WITH_ERRORS" in output, output
    done = assert_imported_exactly(deployment, job.id, updated_rows=SEEDED_ROWS)
    assert done.checkpoint.get("resumes") == 1
    for n in SEEDED_ROWS:  # the numbers the seeded subscribers had are free again
        assert store.subscribers.get_by_msisdn(f"+44791120{n:04d}") is None
        assert store.subscribers.get_by_imsi(f"23415900000{n:04d}") is None
    status, output = run_in_process("jobs", "sweep", "--stale-after", "0")
    assert (status, "no stalled jobs" in output) == (0, True), output


def test_import_interrupted_with_ctrl_c_stops_at_once_and_resumes_exactly(deployment: Deployment) -> None:
    # Ctrl-C in batch 3 after its first 4 valid rows were written, with rows 1-20 checkpointed.
    job = kill_mid_import(deployment, mode="create", stall_in_batch=3, stall_after_rows="4", stop_with=signal.SIGINT)
    store = deployment.store
    left = store.jobs.get(job.id)
    assert left is not None
    assert left.status is JobStatus.RUNNING
    assert (left.checkpoint.get("row"), left.counts.processed) == (20, 20)  # nothing acknowledged is lost
    assert left.lease_until is not None
    assert left.lease_until < utcnow(), "the interrupted worker's lease must be free at once"
    assert [uid for uid in ("s0021", "s0022", "s0024") if store.subscribers.get(uid)] == ["s0021", "s0022", "s0024"]

    status, output = run_portal(deployment, "jobs", "run", job.id)  # no waiting for a lease to lapse
    assert status == 1, output  # completed, with row errors
    assert "COMPLETED_WITH_ERRORS" in output, output
    assert_imported_exactly(deployment, job.id)
