"""The local default with real processes: what a developer does with `make run` and `portal`.

Every server is `uvicorn app.main:app` with nothing configured but DATA_DIR (the session's, so its
DynamoDB Local is found through the state file) and a table of the test's own. Nothing in-process
stands in for the server, the CLI or the engine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.servers import ROOT, start_uvicorn, stop_process_group
from tests.subscribers.support import body as subscriber_body

pytestmark = pytest.mark.slow

PASSWORD = "local-demo-password-1"
PORTAL = Path(sys.executable).with_name("portal")
IMPORT_ROWS = 400
WAIT_SECONDS = 120


@pytest.fixture
def env(local_engine_dir: Path) -> dict[str, str]:
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DYNAMODB_", "MONGODB_", "STORAGE_", "JWT_", "APP_ENV", "AWS_ENDPOINT"))
    }
    return {
        **inherited,
        "DATA_DIR": str(local_engine_dir),
        "DYNAMODB_TABLE": f"proc-{uuid.uuid4().hex[:8]}",
        "DEMO_ADMIN_PASSWORD": PASSWORD,
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "1024",
        "LOG_LEVEL": "WARNING",
    }


def sign_in(url: str) -> dict[str, str]:
    response = httpx.post(f"{url}/auth/login", json={"username": "admin", "password": PASSWORD}, timeout=30)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def total(url: str, headers: dict[str, str]) -> int:
    response = httpx.get(f"{url}/dashboard/stats", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return int(response.json()["subscribers_total"])


def test_sigkill_of_the_api_loses_nothing_it_acknowledged(env: dict[str, str], tmp_path: Path) -> None:
    server = start_uvicorn(env, tmp_path / "uvicorn.log")
    try:
        kept, logged_out = sign_in(server.base_url), sign_in(server.base_url)
        assert httpx.post(f"{server.base_url}/auth/logout", headers=logged_out, timeout=30).status_code == 204
        created = httpx.post(f"{server.base_url}/subscribers", json=subscriber_body(1), headers=kept, timeout=30)
        assert created.status_code == 201, created.text
        os.killpg(server.process.pid, signal.SIGKILL)  # no shutdown of any kind
        server.process.wait(timeout=30)
    finally:
        stop_process_group(server.process)

    server = start_uvicorn(env, tmp_path / "uvicorn.log")
    try:
        uid = created.json()["uid"]
        again = httpx.get(f"{server.base_url}/subscribers/{uid}", headers=kept, timeout=30)
        assert again.status_code == 200, again.text
        assert again.json() == created.json()
        refused = httpx.get(f"{server.base_url}/subscribers/{uid}", headers=logged_out, timeout=30)
        assert refused.status_code == 401
        assert total(server.base_url, kept) == 5 + 1  # the demo data was seeded once, before the kill
    finally:
        stop_process_group(server.process)


def test_portal_import_beside_the_server_shares_its_store(env: dict[str, str], tmp_path: Path) -> None:
    lines = ["uid,msisdn,imsi,first_name,last_name,status,plan"]
    lines += [f"imp-{n:05d},+4479222{n:05d},23415{n:010d},First,Last{n},ACTIVE,GOLD" for n in range(IMPORT_ROWS)]
    csv = tmp_path / "subscribers.csv"
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")

    server = start_uvicorn(env, tmp_path / "uvicorn.log")
    try:
        headers = sign_in(server.base_url)
        before = total(server.base_url, headers)
        with (tmp_path / "portal.log").open("wb") as log:
            cli = subprocess.Popen(  # noqa: S603 - our own CLI
                [str(PORTAL), "import", str(csv), "--mode", "create"], cwd=ROOT, env=env, stdout=log, stderr=log
            )
        seen_during: list[int] = []
        deadline = time.monotonic() + WAIT_SECONDS
        while cli.poll() is None and time.monotonic() < deadline:
            count = total(server.base_url, headers)
            if cli.poll() is None and before < count < before + IMPORT_ROWS:
                seen_during.append(count)
            time.sleep(0.1)
        assert cli.wait(timeout=WAIT_SECONDS) == 0, (tmp_path / "portal.log").read_text()[-3000:]
        assert seen_during, "the server saw none of the import's rows while it ran"
        assert total(server.base_url, headers) == before + IMPORT_ROWS
        last = httpx.get(f"{server.base_url}/subscribers/imp-{IMPORT_ROWS - 1:05d}", headers=headers, timeout=30)
        assert last.status_code == 200
        jobs = httpx.get(f"{server.base_url}/migration/jobs", headers=headers, timeout=30)
        assert [job["status"] for job in jobs.json()["items"]] == ["COMPLETED"]
    finally:
        stop_process_group(server.process)


def test_two_workers_give_one_view(env: dict[str, str], tmp_path: Path) -> None:
    server = start_uvicorn(env, tmp_path / "uvicorn.log", workers=2)
    try:
        url = server.base_url
        headers = sign_in(url)
        # Every request on a new connection, so the kernel spreads them over both workers.
        for n in range(10):
            response = httpx.post(f"{url}/subscribers", json=subscriber_body(n), headers=headers, timeout=30)
            assert response.status_code == 201, response.text
        views = set()
        for _ in range(20):
            page = httpx.get(f"{url}/subscribers", params={"limit": 100}, headers=headers, timeout=30).json()
            views.add(tuple(sorted(item["uid"] for item in page["items"])))
        assert len(views) == 1
        assert len(next(iter(views))) == 5 + 10  # demo data seeded once, by one of the workers
        assert httpx.post(f"{url}/auth/logout", headers=headers, timeout=30).status_code == 204
        statuses = {httpx.get(f"{url}/subscribers", headers=headers, timeout=30).status_code for _ in range(20)}
        assert statuses == {401}
        children = ["pgrep", "-P", str(server.process.pid)]
        workers = subprocess.run(children, capture_output=True, text=True, check=False)  # noqa: S603
        assert len(workers.stdout.split()) >= 2
    finally:
        stop_process_group(server.process)
