"""Schemathesis against the running app (uvicorn on 127.0.0.1, the local DynamoDB engine, signed in as admin).

Every operation is fuzzed: no 5xx, every status code and body as documented. A bounded run is part
of `make test`; `make fuzz` runs longer (FUZZ_MAX_EXAMPLES).

Two passes, because some operations end the fuzzer's own session (logout, password change) or can
reset, demote or delete its admin: those run in a second pass without the stateful phase, where
path parameters are random and never name the fuzzer's account.

Every check runs, `positive_data_acceptance` included: a schema-valid request must not be refused
(docs/api-conventions.md says how the document states each rule). tests/schemathesis.toml adds the
two statuses made for If-Match; tests/fuzz_hooks.py gives the generator the document's own formats.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.servers import uvicorn_server

ADMIN_PASSWORD = "fuzz-admin-password-1"
SESSION_CHANGING = ["auth_logout", "auth_change_password", "users_reset_password", "users_update", "users_delete"]
MAX_EXAMPLES = os.environ.get("FUZZ_MAX_EXAMPLES", "30")
SEED = os.environ.get("FUZZ_SEED", "20261123")  # another seed explores other requests
HERE = Path(__file__).resolve().parent


def schemathesis(url: str, token: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(HERE / "schemathesis.toml"),
        "run",
        f"{url}/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        "all",
        "--max-examples",
        MAX_EXAMPLES,
        "--workers",
        "1",
        "--seed",
        SEED,
        "--generation-database",
        "none",
        "--request-timeout",
        "20",
        "--no-color",
        *arguments,
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz_hooks"}
    return subprocess.run(  # noqa: S603
        command, capture_output=True, text=True, timeout=900, check=False, cwd=HERE.parent, env=env
    )


@pytest.mark.slow
def test_schemathesis_finds_no_failure(tmp_path: Path, local_engine_dir: Path) -> None:
    env = {
        "APP_ENV": "local",
        # The session's engine (found through its state file), with a table of this test's own.
        "DATA_DIR": str(local_engine_dir),
        "DYNAMODB_TABLE": f"fuzz-{uuid.uuid4().hex[:8]}",
        "DEMO_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "LOGIN_RATE_PER_MINUTE": "10000",
        "LOGIN_MAX_FAILURES": "100",
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "1024",
        "LOG_LEVEL": "WARNING",
    }
    with uvicorn_server(env, tmp_path) as url:

        def token() -> str:
            response = httpx.post(f"{url}/auth/login", data={"username": "admin", "password": ADMIN_PASSWORD})
            response.raise_for_status()
            return str(response.json()["access_token"])

        # Both sessions up front: fuzzed logins with wrong passwords may lock the account meanwhile.
        first_token, second_token = token(), token()
        excluded = [argument for name in SESSION_CHANGING for argument in ("--exclude-operation-id", name)]
        first = schemathesis(url, first_token, *excluded)
        assert first.returncode == 0, first.stdout[-6000:]
        included = [argument for name in SESSION_CHANGING for argument in ("--include-operation-id", name)]
        second = schemathesis(url, second_token, *included, "--phases", "examples,coverage,fuzzing")
        assert second.returncode == 0, second.stdout[-6000:]
        assert "No issues found" in first.stdout or "passed" in first.stdout
