"""`portal migrate-store` as a real process against DynamoDB on moto's server (and the "mongo-real"
MongoDB server of tests/conftest.py): a copy, a repeat, a refusal to write into a store holding other data, and a
copy killed with SIGKILL half-way that the next run finishes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from app.config import Settings
from app.migration import store_copy
from app.runtime import Runtime
from app.storage.base import Store
from app.storage.dynamodb.audit import audit_item
from app.storage.records import AuditEntry
from app.timeutil import utcnow
from tests.conftest import SERVER_URI
from tests.migration.test_store_copy import LOGIN_THROTTLE, populate
from tests.servers import ROOT, moto_server
from tests.support import TEST_SECRET, make_settings

COMMAND_SECONDS = 120


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def env(endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """What an operator's shell would hold: the source table's settings; the target's come as options."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")  # moto's fake credentials, for the test's own clients too
    values = {key: value for key, value in os.environ.items() if not key.startswith(("MONGODB", "SOURCE_", "TARGET_"))}
    values.update(
        APP_ENV="test",
        JWT_SECRET=TEST_SECRET,
        DYNAMODB_ENDPOINT_URL=endpoint,
        DYNAMODB_TABLE=f"source-{uuid.uuid4().hex[:8]}",
        AWS_REGION="eu-west-1",
        DATA_DIR=str(tmp_path / "data"),
    )
    return values


def settings_of(env: dict[str, str], **overrides: object) -> Settings:
    values = {"dynamodb_endpoint_url": env["DYNAMODB_ENDPOINT_URL"], "dynamodb_table": env["DYNAMODB_TABLE"]}
    return make_settings(**{**values, **overrides})


@pytest.fixture
def source(env: dict[str, str]) -> Iterator[Store]:
    runtime = Runtime(settings_of(env))
    yield runtime.store
    runtime.close()


def portal(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and CLI
        [sys.executable, "-m", "app.cli", "migrate-store", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
        check=False,
    )


TO_TABLE = ["--source", "dynamodb", "--target", "dynamodb", "--target-dynamodb-table"]


def test_copy_repeat_and_refusals(env: dict[str, str], source: Store, tmp_path: Path) -> None:
    populate(source, tmp_path)
    target_table = f"target-{uuid.uuid4().hex[:8]}"

    first = portal(env, *TO_TABLE, target_table, "--batch-size", "10")
    assert first.returncode == 0, first.stderr
    assert "every record is in the target, byte for byte" in first.stderr
    assert "DIFFERENT" not in first.stdout
    state_files = list((tmp_path / "data" / "migrate-store").glob("*.json"))
    assert len(state_files) == 1
    assert json.loads(state_files[0].read_text())["copy_done"] is True

    again = portal(env, *TO_TABLE, target_table)  # the copy is done: only verified again
    assert again.returncode == 0, again.stderr

    other_state = str(tmp_path / "other.json")
    refused = portal(env, *TO_TABLE, target_table, "--state", other_state)
    assert refused.returncode == 2
    assert "already holds data" in refused.stderr
    redone = portal(env, *TO_TABLE, target_table, "--state", other_state, "--restart")
    assert redone.returncode == 0, redone.stderr

    (tmp_path / "junk.json").write_text("{not json", encoding="utf-8")
    junk = portal(env, *TO_TABLE, target_table, "--state", str(tmp_path / "junk.json"))
    assert junk.returncode == 2
    assert "not a migrate-store state file" in junk.stderr
    same = portal(env, "--source", "dynamodb", "--target", "dynamodb")
    assert same.returncode == 2
    assert "the same store" in same.stderr
    no_uri = portal(env, "--source", "dynamodb", "--target", "mongo")
    assert no_uri.returncode == 2
    assert "TARGET_MONGODB_URI" in no_uri.stderr


def test_a_copy_killed_half_way_is_finished_by_the_next_run(env: dict[str, str], source: Store, tmp_path: Path) -> None:
    populate(source, tmp_path)
    # Enough history that a copy in batches of 5 takes seconds, leaving time to kill it.
    now = utcnow()
    entries = [legacy_entry(n, now - timedelta(seconds=n)) for n in range(600)]
    source.table.batch_write(audit_item(entry) for entry in entries)  # type: ignore[attr-defined]
    target_table = f"target-{uuid.uuid4().hex[:8]}"
    state = tmp_path / "state.json"
    args = [*TO_TABLE, target_table, "--batch-size", "5", "--state", str(state)]

    process = subprocess.Popen(  # noqa: S603 - our own interpreter and CLI
        [sys.executable, "-m", "app.cli", "migrate-store", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + COMMAND_SECONDS
        while not _written(state) >= 100:
            assert process.poll() is None, "the copy ended before it could be killed"
            assert time.monotonic() < deadline, "the copy made no progress"
            time.sleep(0.02)
        assert process.poll() is None, "the copy ended before it could be killed"
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    saved = json.loads(state.read_text())
    assert saved["copy_done"] is False

    resumed = portal(env, *args)
    assert resumed.returncode == 0, resumed.stderr
    assert "every record is in the target, byte for byte" in resumed.stderr
    # It went on from the saved position: only the batch in flight at the kill was written twice.
    records = sum(
        check.source_count for check in store_copy.verify(source.transfer, source.transfer, progress=quiet).checks
    )
    assert records <= _written(state) <= records + 5
    target = Runtime(settings_of(env, dynamodb_table=target_table))
    try:
        assert target.store.audit.list_for_entity("subscriber", "legacy-7", limit=100).items == (
            source.audit.list_for_entity("subscriber", "legacy-7", limit=100).items
        )
    finally:
        target.close()


def legacy_entry(n: int, at: datetime) -> AuditEntry:
    return AuditEntry(
        id=f"bulk-{n:05d}",
        at=at,
        actor="legacy",
        action="subscriber.update",
        entity_type="subscriber",
        entity_id=f"legacy-{n % 50}",
        after={"note": "x" * 200},
    )


def quiet(step: str, records: int) -> None:
    return None


def _written(state: Path) -> int:
    try:
        return sum(json.loads(state.read_text())["written"].values())
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


@pytest.mark.needs_mongodb_server(LOGIN_THROTTLE)
def test_from_a_real_mongodb(env: dict[str, str], tmp_path: Path) -> None:
    database = f"copy_{uuid.uuid4().hex[:10]}"
    mongo = Runtime(make_settings(mongodb_uri=os.environ[SERVER_URI], mongodb_database=database))
    try:
        populate(mongo.store, tmp_path)
        env = {**env, "SOURCE_MONGODB_URI": os.environ[SERVER_URI], "SOURCE_MONGODB_DATABASE": database}
        copied = portal(env, "--source", "mongo", "--target", "dynamodb")
        assert copied.returncode == 0, copied.stderr
        assert "every record is in the target, byte for byte" in copied.stderr
    finally:
        mongo.store.client.drop_database(database)  # type: ignore[attr-defined]
        mongo.close()
