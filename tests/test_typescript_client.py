"""The example TypeScript client (clients/typescript) works: compiled under `tsc --strict` and run
with node, it signs in, pages, creates, updates with If-Match, books with an Idempotency-Key and
tells problems apart by type against a real server (uvicorn on 127.0.0.1, the local DynamoDB
engine, demo data). `make client-check` (in `make test`) fails while its generated types are stale."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from tests.servers import ROOT, uvicorn_server

CLIENT = ROOT / "clients" / "typescript"
NODE_BIN = ROOT / "node_modules" / ".bin"
ADMIN_PASSWORD = "client-admin-password-1"


def run(*command: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - the project's own tools
        [str(part) for part in command], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env, check=False
    )


@pytest.mark.slow
def test_the_compiled_example_runs_against_the_api(tmp_path: Path, local_engine_dir: Path) -> None:
    # Compiled outside the tree; node finds openapi-fetch through the link and runs it as an ES module.
    build = tmp_path / "build"
    build.mkdir()
    (build / "node_modules").symlink_to(ROOT / "node_modules")
    (build / "package.json").write_text(json.dumps({"type": "module"}))
    compiled = run(NODE_BIN / "tsc", "-p", CLIENT, "--strict", "--outDir", build / "dist")
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr

    env = {
        "APP_ENV": "local",
        "DATA_DIR": str(local_engine_dir),
        "DYNAMODB_TABLE": f"client-{uuid.uuid4().hex[:8]}",
        "DEMO_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "1024",
        "LOG_LEVEL": "WARNING",
    }
    with uvicorn_server(env, tmp_path) as url:
        node = shutil.which("node")
        assert node is not None, "node is not on PATH"
        example = run(
            node,
            build / "dist" / "example.js",
            env={**os.environ, "PORTAL_URL": url, "PORTAL_PASSWORD": ADMIN_PASSWORD},
        )
        assert example.returncode == 0, example.stdout + example.stderr
        summary = json.loads(example.stdout.strip().splitlines()[-1])
        assert summary["user"] == "admin"
        assert summary["pages"] >= 3  # five demo subscribers and the new one, two per page
        assert summary["location"] == f"/subscribers/{summary['created']}"
        assert summary["plan"] == "GOLD"
        assert summary["stale"] == "/problems/precondition-failed"
        assert summary["duplicate"] == "/problems/conflict"
        assert summary["invalid"] == "/problems/validation-error"
        assert summary["invalid_fields"] == ["body.msisdn"]

        # What the example did is in the store, as the API reports it.
        token = httpx.post(f"{url}/auth/login", data={"username": "admin", "password": ADMIN_PASSWORD}).json()
        bearer = {"Authorization": f"Bearer {token['access_token']}"}
        subscriber = httpx.get(f"{url}{summary['location']}", headers=bearer).json()
        assert (subscriber["plan"], subscriber["attributes"]) == (
            "GOLD",
            {"source": "typescript-example", "tier": "gold"},
        )
        booking = httpx.get(f"{url}/bookings/{summary['booking']}", headers=bearer).json()
        assert (booking["subscriber_uid"], booking["status"]) == (summary["created"], "CONFIRMED")
