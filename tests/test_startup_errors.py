"""A setting that cannot work stops the server with one line naming it: no traceback, a failing exit."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.servers import ROOT, free_port, plain_uvicorn
from tests.test_local_engine import local_env

BAD = {"ACCESS_TOKEN_MINUTES": "-1"}
MESSAGE = "invalid configuration: ACCESS_TOKEN_MINUTES: Input should be greater than or equal to 1"


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter, app and Makefile
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False
    )


def test_uvicorn_stops_on_a_bad_setting_with_one_line(tmp_path: Path) -> None:
    server = run(plain_uvicorn(free_port()), local_env(tmp_path, **BAD))
    assert server.returncode != 0
    assert server.stdout == ""
    assert server.stderr.splitlines() == [f"portal: {MESSAGE}"]


def test_make_run_stops_on_a_bad_setting_with_one_line_of_the_app(tmp_path: Path) -> None:
    """make adds its own line saying the recipe failed; the app's is the only other one."""
    env = local_env(tmp_path, **BAD, PORT=str(free_port()))
    result = run(["make", "--no-print-directory", "run"], env)
    assert result.returncode != 0
    # `make: ***`, or `make[1]: ***` when this test itself runs under make (`make test`).
    lines = [line for line in result.stderr.splitlines() if not re.match(r"make(\[\d+\])?: \*\*\*", line)]
    assert lines == [f"portal: {MESSAGE}"]
    assert "Traceback" not in result.stdout + result.stderr
