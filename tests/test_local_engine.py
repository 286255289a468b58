"""The local default store: DynamoDB Local, one engine per DATA_DIR, owner-only files.

Real processes where processes matter (`portal local-db`, uvicorn); the engine of most tests is the
session's (tests/conftest.py `local_engine_dir`), found through its state file like any local process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.secrets import resolve_signing_secret
from app.storage import local_engine
from app.storage.blobs import LocalBlobStore
from tests.servers import ROOT, free_port
from tests.support import make_settings, race

PORTAL = Path(sys.executable).with_name("portal")


def local_settings(data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "app_env": "local",
        "jwt_secret": None,
        "data_dir": str(data_dir),
        "dynamodb_table": f"local-{uuid.uuid4().hex[:8]}",
    }
    return make_settings(**{**values, **overrides})


def local_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """A shell with nothing configured but DATA_DIR: what `make run` or a plain uvicorn sees."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DYNAMODB_", "MONGODB_", "STORAGE_", "JWT_", "APP_ENV", "AWS_ENDPOINT"))
    }
    return {**env, "DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING", **extra}


def portal(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own CLI
        [str(PORTAL), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False
    )


def modes(root: Path) -> dict[str, int]:
    return {str(path.relative_to(root)): path.stat().st_mode & 0o777 for path in [root, *root.rglob("*")]}


def test_local_default_keeps_data_across_restarts(local_engine_dir: Path) -> None:
    settings = local_settings(local_engine_dir, seed_demo_data=False)
    assert settings.uses_local_engine
    app = create_app(settings)
    with TestClient(app):
        app.state.runtime.store.counters.increment("demo", {"restarts": 1})
    for expected in (1, 2):
        app = create_app(settings)
        with TestClient(app):
            assert app.state.runtime.store.counters.get("demo") == {"restarts": expected}
            app.state.runtime.store.counters.increment("demo", {"restarts": 1})
    # The engine is shared, not the app's: closing the app left it serving.
    state, serving = local_engine.engine_status(local_engine_dir)
    assert state is not None
    assert serving


@pytest.mark.slow
def test_two_processes_starting_at_once_start_one_engine_with_owner_only_files(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = local_env(data_dir)
    data_dir.mkdir(mode=0o755)  # as an older version left it: tightened
    # A state file left by an engine that is gone (a reboot): replaced, not trusted.
    dead = subprocess.Popen(["true"])  # noqa: S607
    dead.wait()
    stale = {"port": free_port(), "pid": dead.pid, "process_start": 1, "started_at": "x", "db_path": "x"}
    (data_dir / local_engine.STATE_FILE).write_text(json.dumps(stale))
    try:
        starts = [
            subprocess.Popen(  # noqa: S603 - our own CLI
                [str(PORTAL), "local-db", "start"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        endpoints = {start.communicate(timeout=180)[0].strip() for start in starts}
        assert all(start.returncode == 0 for start in starts)
        state, serving = local_engine.engine_status(data_dir)
        assert state is not None
        assert serving
        assert endpoints == {state.endpoint}
        assert state.pid != dead.pid
        pattern = f"{data_dir.resolve()}/dynamodb"
        java = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, check=False)  # noqa: S603, S607
        assert java.stdout.split() == [str(state.pid)]

        status = portal(env, "local-db", "status")
        assert status.returncode == 0
        assert json.loads(status.stdout)["endpoint"] == state.endpoint
        # Everything under DATA_DIR is the owner's only, and no temporary file is left behind.
        found = modes(data_dir)
        assert found.pop(".") == 0o700
        assert found.pop(local_engine.DB_DIR) == 0o700
        assert "dynamodb/shared-local-instance.db" in found
        assert set(found.values()) == {0o600}, found
        assert not [name for name in found if name.endswith((".tmp", ".part"))]
        stopped = portal(env, "local-db", "stop")
        assert "stopped DynamoDB Local" in stopped.stderr
        assert portal(env, "local-db", "status").returncode == 1
        # Started again on the port it had: a server still holding that endpoint reconnects.
        again = portal(env, "local-db", "start")
        assert again.stdout.strip() == state.endpoint
    finally:
        portal(env, "local-db", "stop")
    assert portal(env, "local-db", "status").returncode == 1


@pytest.mark.slow
def test_a_damaged_database_file_stops_the_start_with_one_line_naming_it(tmp_path: Path) -> None:
    database = tmp_path / local_engine.DB_DIR / local_engine.DB_FILE
    database.parent.mkdir(mode=0o700)
    database.write_bytes(bytes(range(256)) * 64)
    env = local_env(tmp_path)
    began = time.monotonic()
    start = portal(env, "local-db", "start")
    assert start.returncode == 2
    assert time.monotonic() - began < 90  # not the whole start timeout
    assert f"is {database} damaged?" in start.stderr
    assert "Traceback" not in start.stderr
    pattern = f"{tmp_path.resolve()}/dynamodb"
    java = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, check=False)  # noqa: S603, S607
    assert java.stdout == ""  # the failing engine was stopped


def serve_until_it_stops(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Start the app under uvicorn and wait for it to exit, as these tests expect it to."""
    return subprocess.run(  # noqa: S603 - our own interpreter and app
        [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_damaged_state_file_stops_the_app_with_one_line_naming_it(tmp_path: Path) -> None:
    state_file = tmp_path / local_engine.STATE_FILE
    state_file.write_text('{"port": 8000, "pi')
    env = local_env(tmp_path)
    server = serve_until_it_stops(env)
    assert server.returncode != 0
    assert f"{state_file} is not a DynamoDB Local state file" in server.stderr
    assert "Traceback" not in server.stderr
    cli = portal(env, "reconcile-counters")
    assert cli.returncode == 2
    assert str(state_file) in cli.stderr
    assert "Traceback" not in cli.stderr
    assert state_file.read_text() == '{"port": 8000, "pi'  # left for the user to look at


def test_without_java_the_app_stops_with_one_line_naming_what_to_install(tmp_path: Path) -> None:
    env = local_env(tmp_path, PATH=str(Path(sys.executable).parent))  # no java on PATH
    server = serve_until_it_stops(env)
    assert server.returncode != 0
    assert "install openjdk-17-jre-headless" in server.stderr
    assert "Traceback" not in server.stderr
    cli = portal(env, "local-db", "start")
    assert cli.returncode == 2
    assert "install openjdk-17-jre-headless" in cli.stderr
    assert not (tmp_path / local_engine.STATE_FILE).exists()


def test_the_local_signing_secret_is_owner_only_and_one_for_racing_processes(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    settings = local_settings(data_dir)
    secrets = race(8, lambda _: resolve_signing_secret(settings))
    assert len(set(secrets)) == 1
    assert modes(data_dir) == {".": 0o700, "signing-secret": 0o600}


def test_local_job_files_are_owner_only(tmp_path: Path) -> None:
    import io

    blobs = LocalBlobStore(tmp_path / "data" / "files")
    blobs.put_stream("jobs/a/input.csv", io.BytesIO(b"uid\n1\n"), max_bytes=100, content_type="text/csv")
    source = tmp_path / "report.csv"
    source.write_bytes(b"uid\n")
    blobs.put_file("jobs/a/report.csv", source, content_type="text/csv")
    found = modes(tmp_path / "data")
    assert found == {
        ".": 0o700,
        "files": 0o700,
        "files/jobs": 0o700,
        "files/jobs/a": 0o700,
        "files/jobs/a/input.csv": 0o600,
        "files/jobs/a/report.csv": 0o600,
    }


def test_a_damaged_local_signing_secret_is_refused_naming_the_file(tmp_path: Path) -> None:
    from app.config import ConfigurationError

    secret = tmp_path / "signing-secret"
    secret.write_bytes(b"\n")  # e.g. an interrupted write of an older version
    with pytest.raises(ConfigurationError, match=f"{secret}: "):
        resolve_signing_secret(local_settings(tmp_path))


@pytest.mark.parametrize("pid", [0, -1, 1, "4242", True])
def test_a_state_file_naming_no_single_process_is_refused_not_signalled(tmp_path: Path, pid: object) -> None:
    # pid 0 / -1 would make os.kill reach this process group / every process; 1 is init.
    state_file = tmp_path / local_engine.STATE_FILE
    fields = {"port": free_port(), "pid": pid, "process_start": None, "started_at": "x", "db_path": "x"}
    state_file.write_text(json.dumps(fields))
    with pytest.raises(local_engine.LocalEngineError, match="is not a DynamoDB Local state file"):
        local_engine.stop_engine(tmp_path)
    with pytest.raises(local_engine.LocalEngineError, match="is not a DynamoDB Local state file"):
        local_engine.ensure_engine(tmp_path)


@pytest.mark.slow
def test_a_start_killed_half_way_leaves_no_second_engine(tmp_path: Path) -> None:
    env = local_env(tmp_path)
    pattern = f"{tmp_path.resolve()}/dynamodb"

    def engines() -> list[str]:
        found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, check=False)  # noqa: S603, S607
        return found.stdout.split()

    first = subprocess.Popen([str(PORTAL), "local-db", "start"], cwd=ROOT, env=env)  # noqa: S603 - our own CLI
    try:
        deadline = time.monotonic() + 60
        while not engines() and time.monotonic() < deadline:
            time.sleep(0.02)
        first.kill()  # the engine is starting, not yet ready
        first.wait(timeout=30)
        again = portal(env, "local-db", "start")
        assert again.returncode == 0, again.stderr
        state = local_engine.read_state(tmp_path)
        assert state is not None
        assert again.stdout.strip() == state.endpoint
        assert engines() == [str(state.pid)]
    finally:
        portal(env, "local-db", "stop")
        for pid in engines():  # what a failed run left behind
            os.kill(int(pid), 9)
