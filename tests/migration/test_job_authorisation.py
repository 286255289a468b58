"""Jobs are authorised per object, on both backends.

Seeing a job (list, get) needs `jobs:read`, and `users:admin` for a users import. Acting on it
(input, cancel, errors, output, rollback) needs what creating it needed and being its creator or
holding `jobs:admin`. A job the caller may not see is a 404, one they see but may not act on a 403.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import bcrypt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.auth.deps import auth_service_of
from app.auth.schemas import UserCreate, UserUpdate
from app.migration import worker
from app.migration.service import JobService
from app.storage.base import Store
from app.storage.records import JobStatus, Role

PASSWORD = "people-password-0123"
ADMIN_ROW_HASH = bcrypt.hashpw(b"mallory-password-1", bcrypt.gensalt(rounds=4)).decode()
ESCALATION = f"username,password_hash,role\r\nmallory,{ADMIN_ROW_HASH},admin\r\n".encode()
SUBSCRIBERS = (
    b"uid,msisdn,imsi,first_name,last_name,plan\r\ns1,+447911100001,234150000000001,A,B,GOLD\r\ns2,nope,x,A,B,GOLD\r\n"
)


def subscribers(n: int) -> bytes:
    """A file with one good row (its own uid, msisdn and imsi) and one bad row."""
    return SUBSCRIBERS.replace(b"s1,", f"n{n},".encode()).replace(b"00001,", f"{n:05d},".encode())


UIDS = b"uid\r\ns1\r\nnobody\r\n"


@pytest.fixture
def people(app: FastAPI, client: TestClient) -> dict[str, dict[str, str]]:
    """Headers of two admins, two operators and a viewer."""
    auth = auth_service_of(app.state.runtime)
    roles = {"admin": Role.ADMIN, "admin2": Role.ADMIN, "operator": Role.OPERATOR, "operator2": Role.OPERATOR}
    headers = {}
    for name, role in {**roles, "viewer": Role.VIEWER}.items():
        auth.create_user("test", UserCreate(username=name, password=PASSWORD, role=role))
        response = client.post("/auth/login", json={"username": name, "password": PASSWORD})
        assert response.status_code == 200, response.text
        headers[name] = {"Authorization": f"Bearer {response.json()['access_token']}"}
    return headers


def create(client: TestClient, headers: dict[str, str], body: dict[str, Any]) -> str:
    response = client.post("/migration/jobs", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["job"]["id"])


def listed(client: TestClient, headers: dict[str, str], **params: str) -> list[str]:
    response = client.get("/migration/jobs", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return [job["id"] for job in response.json()["items"]]


def test_an_operator_cannot_make_themself_an_admin_through_an_admins_users_import(
    client: TestClient, people: dict[str, dict[str, str]], store: Store
) -> None:
    """The attack as reported: the operator finds the admin's pending users import and sends its input."""
    admin, operator = people["admin"], people["operator"]
    job_id = create(client, admin, {"type": "import", "target": "users", "format": "csv"})

    assert job_id not in listed(client, operator, status="PENDING")
    assert client.get(f"/migration/jobs/{job_id}", headers=operator).status_code == 404
    sent = client.put(f"/migration/jobs/{job_id}/input", content=ESCALATION, headers=operator)
    assert sent.status_code == 404, sent.text
    assert sent.headers["content-type"].startswith("application/problem+json")

    assert store.users.get("mallory") is None
    assert client.post("/auth/login", json={"username": "mallory", "password": "mallory-password-1"}).status_code == 401
    job = store.jobs.get(job_id)
    assert job is not None
    assert (job.status, job.input_received_at) == (JobStatus.PENDING, None)
    assert client.post(f"/migration/jobs/{job_id}/cancel", headers=operator).status_code == 404
    assert store.jobs.get(job_id).cancel_requested is False  # type: ignore[union-attr]
    # The admin who created it still can.
    assert client.put(f"/migration/jobs/{job_id}/input", content=ESCALATION, headers=admin).status_code == 200
    assert store.users.get("mallory") is not None


def test_an_operator_cannot_start_another_operators_subscriber_import(
    client: TestClient, people: dict[str, dict[str, str]], store: Store
) -> None:
    job_id = create(client, people["operator"], {"type": "import", "format": "csv"})
    assert job_id in listed(client, people["operator2"], status="PENDING")  # seen, not touched
    sent = client.put(f"/migration/jobs/{job_id}/input", content=SUBSCRIBERS, headers=people["operator2"])
    assert sent.status_code == 403, sent.text
    assert "creator" in sent.json()["detail"]
    assert store.subscribers.get("s1") is None


# --- the table: every route on a job x caller x whose job -------------------------------------------

KINDS: dict[str, dict[str, Any]] = {
    "subscribers-import": {"type": "import", "format": "csv"},
    "users-import": {"type": "import", "target": "users", "format": "csv"},
    "delete": {"type": "delete", "format": "csv"},
    "export": {"type": "export", "format": "csv"},
}
FILES: dict[str, Callable[[int], bytes]] = {
    "subscribers-import": subscribers,
    "users-import": lambda n: ESCALATION,
    "delete": lambda n: UIDS,
}

# (kind, creator, caller) -> what the caller may do with the job: "act", "see" (list and get only)
# or "none" (it does not exist for them). Written out by hand, not computed by the rule under test.
CASES = [
    ("subscribers-import", "operator", "operator", "act"),
    ("subscribers-import", "operator", "operator2", "see"),
    ("subscribers-import", "operator", "viewer", "see"),
    ("subscribers-import", "operator", "admin", "act"),
    ("subscribers-import", "admin", "admin", "act"),
    ("subscribers-import", "admin", "admin2", "act"),
    ("subscribers-import", "admin", "operator", "see"),
    ("users-import", "admin", "admin", "act"),
    ("users-import", "admin", "admin2", "act"),
    ("users-import", "admin", "operator", "none"),
    ("users-import", "admin", "viewer", "none"),
    ("delete", "admin", "admin", "act"),
    ("delete", "admin", "admin2", "act"),
    ("delete", "admin", "operator", "see"),
    ("delete", "admin", "viewer", "see"),
    ("export", "operator", "operator", "act"),
    ("export", "operator", "operator2", "see"),
    ("export", "operator", "viewer", "see"),
    ("export", "operator", "admin", "act"),
    ("export", "admin", "operator", "see"),
]


def denied(access: str, caller: str) -> int:
    if caller == "viewer":
        return 403  # the routes that act on a job need jobs:run before any job is looked up
    return 404 if access == "none" else 403


@pytest.mark.parametrize(("kind", "creator", "caller", "access"), CASES, ids=["-".join(case[:3]) for case in CASES])
def test_every_job_route_by_caller_and_owner(
    app: FastAPI,
    client: TestClient,
    people: dict[str, dict[str, str]],
    store: Store,
    kind: str,
    creator: str,
    caller: str,
    access: str,
) -> None:
    owner, me = people[creator], people[caller]
    body = KINDS[kind]
    parked = type("Parked", (), {"submit": lambda self, job_id: None})()
    runtime = app.state.runtime
    inline = worker.dispatcher(runtime)
    files = iter(range(1, 100))

    def content() -> bytes:
        return FILES[kind](next(files))

    def fresh(*, finished: bool) -> str:
        """A job of this kind by its creator: finished (input sent, run) or still waiting."""
        if kind == "export" and not finished:
            runtime.provide("job_dispatcher", parked)  # left PENDING: nothing runs it
        job_id = create(client, owner, body)
        runtime.provide("job_dispatcher", inline)
        if finished and kind in FILES:
            sent = client.put(f"/migration/jobs/{job_id}/input", content=content(), headers=owner)
            assert sent.status_code == 200, sent.text
        return job_id

    seen = access != "none"
    acts = access == "act"
    results: dict[str, tuple[int, int]] = {}

    def check(name: str, expected: int, call: Callable[[], Any]) -> None:
        results[name] = (call().status_code, expected)

    job_id = fresh(finished=False)
    check("get", 200 if seen else 404, lambda: client.get(f"/migration/jobs/{job_id}", headers=me))
    assert (job_id in listed(client, me)) is seen
    if kind in FILES:
        waiting = fresh(finished=False)
        check(
            "input",
            200 if acts else denied(access, caller),
            lambda: client.put(f"/migration/jobs/{waiting}/input", content=content(), headers=me),
        )
        assert (store.jobs.get(waiting).input_received_at is not None) is acts  # type: ignore[union-attr]
        done = fresh(finished=True)
        for output in ("json", "csv"):
            check(
                f"errors-{output}",
                200 if acts else denied(access, caller),
                lambda output=output: client.get(  # type: ignore[misc]
                    f"/migration/jobs/{done}/errors", params={"format": output}, headers=me
                ),
            )
    check(
        "cancel",
        200 if acts else denied(access, caller),
        lambda: client.post(f"/migration/jobs/{job_id}/cancel", headers=me),
    )
    assert (store.jobs.get(job_id).status is JobStatus.CANCELLED) is acts  # type: ignore[union-attr]
    if kind == "export":
        done = fresh(finished=True)
        check(
            "output",
            200 if acts else denied(access, caller),
            lambda: client.get(f"/migration/jobs/{done}/output", headers=me),
        )
    if kind == "subscribers-import":
        done = fresh(finished=True)
        allowed = acts and caller.startswith("admin")  # rollback is an admin's
        check(
            "rollback",
            202 if allowed else denied(access, caller),
            lambda: client.post(f"/migration/jobs/{done}/rollback", headers=me),
        )
    assert {name: got for name, (got, _) in results.items()} == {name: want for name, (_, want) in results.items()}


@pytest.mark.parametrize("caller", ["viewer", "operator", "admin"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_creating_needs_the_jobs_capability(
    client: TestClient, people: dict[str, dict[str, str]], kind: str, caller: str
) -> None:
    may = {"viewer": set(), "operator": {"subscribers-import", "export"}, "admin": set(KINDS)}[caller]
    response = client.post("/migration/jobs", json=KINDS[kind], headers=people[caller])
    assert response.status_code == (201 if kind in may else 403), response.text
    if kind in FILES:
        upload = client.post(
            "/migration/upload",
            files={"file": ("input.csv", FILES[kind](1), "text/csv")},
            data={"options": json.dumps(KINDS[kind])},
            headers=people[caller],
        )
        assert upload.status_code == (201 if kind in may else 403), upload.text


def test_list_pages_skip_hidden_jobs_and_stay_full(client: TestClient, people: dict[str, dict[str, str]]) -> None:
    """Hidden jobs are filtered out of a page and the page is filled from the next ones."""
    admin, operator = people["admin"], people["operator"]
    visible = [create(client, operator, KINDS["subscribers-import"]) for _ in range(2)]
    hidden = [create(client, admin, KINDS["users-import"]) for _ in range(3)]
    visible += [create(client, operator, KINDS["subscribers-import"]) for _ in range(2)]
    first = client.get("/migration/jobs", params={"limit": 3}, headers=operator).json()
    assert len(first["items"]) == 3
    rest = client.get("/migration/jobs", params={"limit": 3, "cursor": first["next_cursor"]}, headers=operator).json()
    shown = [job["id"] for job in first["items"] + rest["items"]]
    assert sorted(shown) == sorted(visible)
    assert not set(shown) & set(hidden)
    assert sorted(listed(client, admin)) == sorted(visible + hidden)


def test_s3_upload_starts_a_job_only_while_its_creator_may_still_run_it(
    app: FastAPI, client: TestClient, people: dict[str, dict[str, str]], store: Store
) -> None:
    runtime = app.state.runtime
    auth = auth_service_of(runtime)
    job_id = create(client, people["admin2"], KINDS["users-import"])
    job = store.jobs.get(job_id)
    assert job is not None
    assert job.input_key is not None
    runtime.blobs.put_stream(job.input_key, io.BytesIO(ESCALATION), max_bytes=10**6, content_type="text/csv")
    auth.update_user("test", "admin2", UserUpdate(role=Role.OPERATOR))  # demoted before the file arrived

    assert JobService(runtime).start_from_upload(job.input_key) is None
    ended = store.jobs.get(job_id)
    assert ended is not None
    assert ended.status is JobStatus.FAILED
    assert "'admin2' may no longer run it (needs users:admin)" in (ended.error_summary or "")
    assert store.users.get("mallory") is None

    allowed = create(client, people["admin"], KINDS["users-import"])
    key = store.jobs.get(allowed).input_key  # type: ignore[union-attr]
    runtime.blobs.put_stream(key, io.BytesIO(ESCALATION), max_bytes=10**6, content_type="text/csv")
    started = JobService(runtime).start_from_upload(key)
    assert started is not None
    assert store.users.get("mallory") is not None


@pytest.mark.parametrize("job_id", ["a" * 65, "has space", "x%0d%0aSet-Cookie:a=b"])
@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("GET", ""),
        ("PUT", "/input"),
        ("POST", "/cancel"),
        ("GET", "/errors"),
        ("GET", "/output"),
        ("POST", "/rollback"),
    ],
)
def test_job_ids_are_bounded_before_the_store(
    client: TestClient, people: dict[str, dict[str, str]], job_id: str, method: str, suffix: str
) -> None:
    response = client.request(method, f"/migration/jobs/{job_id}{suffix}", content=b"x", headers=people["admin"])
    assert response.status_code == 422, response.text
    assert [error["field"] for error in response.json()["errors"]] == ["path.job_id"]


def test_a_recreated_username_does_not_take_over_the_deleted_users_jobs(
    app: FastAPI, client: TestClient, people: dict[str, dict[str, str]]
) -> None:
    """A job belongs to its creator's user id, not to the name: a new `operator` is someone else."""
    auth = auth_service_of(app.state.runtime)
    job_id = create(client, people["operator"], {"type": "export", "format": "csv"})
    auth.delete_user("test", "operator")
    auth.create_user("test", UserCreate(username="operator", password=PASSWORD, role=Role.OPERATOR))
    login = client.post("/auth/login", json={"username": "operator", "password": PASSWORD})
    successor = {"Authorization": f"Bearer {login.json()['access_token']}"}

    assert client.get(f"/migration/jobs/{job_id}", headers=successor).status_code == 200  # visible, as any export
    for method, suffix in (("GET", "/output"), ("GET", "/errors"), ("POST", "/cancel")):
        response = client.request(method, f"/migration/jobs/{job_id}{suffix}", headers=successor)
        assert response.status_code == 403, (suffix, response.text)
    assert client.get(f"/migration/jobs/{job_id}/output", headers=people["admin"]).status_code == 200


def test_an_upload_for_a_deleted_and_recreated_creator_does_not_start(
    app: FastAPI, client: TestClient, people: dict[str, dict[str, str]], store: Store
) -> None:
    runtime = app.state.runtime
    auth = auth_service_of(runtime)
    job_id = create(client, people["admin2"], KINDS["users-import"])
    key = store.jobs.get(job_id).input_key  # type: ignore[union-attr]
    runtime.blobs.put_stream(key, io.BytesIO(ESCALATION), max_bytes=10**6, content_type="text/csv")
    auth.delete_user("test", "admin2")
    auth.create_user("test", UserCreate(username="admin2", password=PASSWORD, role=Role.ADMIN))

    assert JobService(runtime).start_from_upload(key) is None
    assert store.jobs.get(job_id).status is JobStatus.FAILED  # type: ignore[union-attr]
    assert store.users.get("mallory") is None
