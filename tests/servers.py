"""Real servers for end-to-end tests: started on 127.0.0.1, bounded in time, always stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Uvicorn:
    """A running `uvicorn app.main:app` (its own process group) and where it answers."""

    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path


def plain_uvicorn(port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)]


def start_uvicorn(
    env: dict[str, str],
    log_path: Path,
    *,
    port: int | None = None,
    workers: int = 1,
    startup_seconds: float = 120,
    command: Callable[[int], list[str]] = plain_uvicorn,
) -> Uvicorn:
    """Starts uvicorn and returns once /health/ready answers (the store is built and seeded by then:
    every worker builds it in its start-up, before it accepts a connection). `command(port)` is the
    command line (plain `uvicorn app.main:app` by default)."""
    port = port or free_port()
    argv = command(port)
    if workers > 1:
        argv += ["--workers", str(workers)]
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and app
            argv, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Uvicorn(process, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + startup_seconds
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {process.returncode}: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"{server.base_url}/health/ready", timeout=5).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            stop_process_group(process)
            raise TimeoutError(f"uvicorn did not answer within {startup_seconds} s: {log_path.read_text()[-2000:]}")
        time.sleep(0.2)


@contextmanager
def uvicorn_server(
    env: dict[str, str],
    log_dir: Path,
    *,
    startup_seconds: float = 120,
    command: Callable[[int], list[str]] = plain_uvicorn,
) -> Iterator[str]:
    """`uvicorn app.main:app` (or `command(port)`) in its own process group; yields the base URL once it is ready."""
    server = start_uvicorn(env, log_dir / "uvicorn.log", startup_seconds=startup_seconds, command=command)
    try:
        yield server.base_url
    finally:
        stop_process_group(server.process)


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's server (every AWS service it mocks) on 127.0.0.1; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
