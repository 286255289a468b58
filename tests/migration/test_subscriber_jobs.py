"""Subscriber jobs end to end on both backends: import (modes, dry run, duplicates, resume), export,
delete and rollback."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.migration import worker
from app.migration.engine import JobEngine
from app.storage.base import SUBSCRIBER_PLAN_SCOPE, SUBSCRIBER_STATUS_SCOPE, Store
from app.storage.records import JobStatus
from app.timeutil import utcnow

MESSY_AS_IS = (Path(__file__).parent / "data" / "messy.csv").read_bytes()
# The file's numbers are in Ofcom's drama range (07700 900xxx), which phonenumbers (and so the API)
# rejects as not valid; the same file with mobile numbers that exist is what an import should take.
MESSY = MESSY_AS_IS.replace(b"7700 900", b"7911 100").replace(b"7700900", b"7911100")
MESSY_MAPPING = {
    "columns": {
        "UID": "uid",
        "MSISDN": "msisdn",
        "IMSI": "imsi",
        "First Name": "first_name",
        "Last Name": "last_name",
        "Status": "status",
        "Tariff": "plan",
    },
    "transforms": {"status": ["trim", "upper", {"map": {"A": "ACTIVE", "S": "SUSPENDED"}}]},
    "unmapped": "attributes",
}
HEADER = "uid,msisdn,imsi,first_name,last_name,status,plan"


def row(
    n: int, *, status: str = "ACTIVE", plan: str = "GOLD", msisdn: int | None = None, imsi: int | None = None
) -> str:
    phone = 447911100000 + (n if msisdn is None else msisdn)
    sim = 234150000000000 + (n if imsi is None else imsi)
    return f"s{n:04d},+{phone},{sim},First{n},Last{n},{status},{plan}"


def csv_file(*rows: str) -> bytes:
    return ("\r\n".join([HEADER, *rows]) + "\r\n").encode()


def run_job(client: TestClient, headers: dict[str, str], content: bytes | None, **body: Any) -> dict[str, Any]:
    body = {"type": "import", "target": "subscribers", "format": "csv", **body}
    created = client.post("/migration/jobs", json=body, headers=headers)
    assert created.status_code == 201, created.text
    job_id = created.json()["job"]["id"]
    if content is not None:
        sent = client.put(f"/migration/jobs/{job_id}/input", content=content, headers=headers)
        assert sent.status_code == 200, sent.text
    return client.get(f"/migration/jobs/{job_id}", headers=headers).json()  # type: ignore[no-any-return]


def errors_of(client: TestClient, headers: dict[str, str], job_id: str) -> list[tuple[int, str, str]]:
    items = client.get(f"/migration/jobs/{job_id}/errors", headers=headers).json()["items"]
    return [(e["row"], e["field"], e["code"]) for e in items]


def live(store: Store, scope: str) -> dict[str, int]:
    """Counters without the keys that went back to zero."""
    return {name: n for name, n in store.counters.get(scope).items() if n}


def counts(job: dict[str, Any]) -> tuple[int, ...]:
    c = job["counts"]
    return c["processed"], c["created"], c["updated"], c["skipped"], c["deleted"], c["failed"]


def test_messy_csv_with_mapping(client: TestClient, role_headers: dict[str, dict[str, str]], store: Store) -> None:
    admin = role_headers["admin"]
    job = run_job(client, admin, MESSY, mapping=MESSY_MAPPING)
    assert job["status"] == "COMPLETED", job
    assert counts(job) == (4, 4, 0, 0, 0, 0)
    first = store.subscribers.get("sub-001")
    assert first is not None
    assert (first.msisdn, first.status.value, first.attributes) == ("+447911100123", "ACTIVE", {"Region": "north"})
    assert store.subscribers.get("sub-002").last_name == "O'Neil; Jr"  # type: ignore[union-attr]
    third = store.subscribers.get("sub-003")
    assert third is not None
    assert third.first_name == "Cy\r\nMulti"  # the quoted newline, as the file has it
    assert store.subscribers.get("sub-003").status.value == "ACTIVE"  # type: ignore[union-attr]
    assert store.subscribers.get("sub-004").status.value == "INACTIVE"  # type: ignore[union-attr]
    assert live(store, SUBSCRIBER_STATUS_SCOPE) == {"ACTIVE": 2, "SUSPENDED": 1, "INACTIVE": 1}
    assert first.import_job_id == job["id"]
    rejected = run_job(client, admin, MESSY_AS_IS, mapping=MESSY_MAPPING, mode="upsert")
    assert counts(rejected) == (4, 0, 0, 0, 0, 4)
    assert errors_of(client, admin, rejected["id"])[0] == (1, "msisdn", "invalid_msisdn")
    subscriber = client.get("/subscribers/sub-001", headers=admin).json()
    assert "import_job_id" not in subscriber


def test_create_mode_errors_and_duplicates_in_file(
    client: TestClient, role_headers: dict[str, dict[str, str]], store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = role_headers["admin"]
    monkeypatch.setattr(worker.engine(client.app.state.runtime).kinds["import:subscribers"], "batch_rows", 3)  # type: ignore[attr-defined]
    first = run_job(client, admin, csv_file(row(1)))
    assert counts(first) == (1, 1, 0, 0, 0, 0)
    content = csv_file(
        row(1),  # 1: exists (from the first job)
        row(2),  # 2
        row(3, msisdn=2),  # 3: msisdn of row 2, same batch
        row(4, status="NOPE"),  # 4: invalid
        row(5, imsi=2),  # 5: imsi of row 2, another batch
        row(2, msisdn=9, imsi=9),  # 6: uid of row 2, another batch
        "s0008,07911 100008,234150000000008,A,B,ACTIVE,GOLD",  # 7: national number
    )
    job = run_job(client, admin, content)
    assert job["status"] == "COMPLETED_WITH_ERRORS"
    assert counts(job) == (7, 2, 0, 0, 0, 5)
    assert errors_of(client, admin, job["id"]) == [
        (1, "uid", "exists"),
        (3, "msisdn", "duplicate_in_file"),
        (4, "status", "invalid_choice"),
        (5, "imsi", "duplicate_in_file"),
        (6, "uid", "duplicate_in_file"),
    ]
    report = client.get(f"/migration/jobs/{job['id']}/errors", headers=admin).json()["items"]
    assert report[1]["message"] == "msisdn also in row 2"
    assert store.subscribers.get("s0008").msisdn == "+447911100008"  # type: ignore[union-attr]
    assert live(store, SUBSCRIBER_STATUS_SCOPE) == {"ACTIVE": 3}
    audit = client.get("/audit", params={"entity_type": "job", "entity_id": job["id"]}, headers=admin).json()
    assert len(audit["items"]) == 1


def test_upsert_and_update_modes(client: TestClient, role_headers: dict[str, dict[str, str]], store: Store) -> None:
    admin = role_headers["admin"]
    run_job(client, admin, csv_file(row(1), row(2)))
    upsert = run_job(client, admin, csv_file(row(1, status="SUSPENDED", plan="SILVER"), row(3)), mode="upsert")
    assert counts(upsert) == (2, 1, 1, 0, 0, 0)
    replaced = store.subscribers.get("s0001")
    assert replaced is not None
    assert (replaced.status.value, replaced.plan, replaced.version) == ("SUSPENDED", "SILVER", 2)
    update = run_job(client, admin, csv_file(row(2, plan="BRONZE"), row(9)), mode="update")
    assert counts(update) == (2, 0, 1, 0, 0, 1)
    assert errors_of(client, admin, update["id"]) == [(2, "uid", "not_found")]
    assert live(store, SUBSCRIBER_STATUS_SCOPE) == {"ACTIVE": 2, "SUSPENDED": 1}
    assert live(store, SUBSCRIBER_PLAN_SCOPE) == {"GOLD": 1, "SILVER": 1, "BRONZE": 1}
    history = client.get("/subscribers/s0001/history", headers=admin).json()["items"]
    assert all("import_job_id" not in (entry.get("after") or {}) for entry in history)


def test_dry_run_reports_like_a_real_run_and_writes_nothing(
    client: TestClient, role_headers: dict[str, dict[str, str]], store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = role_headers["admin"]
    run_job(client, admin, csv_file(row(1)))
    monkeypatch.setattr(worker.engine(client.app.state.runtime).kinds["import:subscribers"], "batch_rows", 2)  # type: ignore[attr-defined]
    content = csv_file(row(1), row(2), row(3), row(4, msisdn=2), row(5, imsi=1))
    job = run_job(client, admin, content, dry_run=True)
    assert counts(job) == (5, 2, 0, 0, 0, 3)
    assert errors_of(client, admin, job["id"]) == [
        (1, "uid", "exists"),
        (4, "msisdn", "duplicate_in_file"),
        (5, "imsi", "exists"),
    ]
    assert store.subscribers.get("s0002") is None
    assert live(store, SUBSCRIBER_STATUS_SCOPE) == {"ACTIVE": 1}


def test_bad_default_region_is_a_422(client: TestClient, role_headers: dict[str, dict[str, str]]) -> None:
    body = {"type": "import", "target": "subscribers", "format": "csv", "default_region": "XX"}
    response = client.post("/migration/jobs", json=body, headers=role_headers["admin"])
    assert response.status_code == 422
    assert "body.default_region" in [error["field"] for error in response.json()["errors"]]


def test_default_region_reads_national_numbers(
    client: TestClient, role_headers: dict[str, dict[str, str]], store: Store
) -> None:
    content = csv_file("s0001,(201) 555-0123,234150000000001,A,B,ACTIVE,GOLD")
    job = run_job(client, role_headers["admin"], content, default_region="us")
    assert counts(job) == (1, 1, 0, 0, 0, 0)
    assert store.subscribers.get("s0001").msisdn == "+12015550123"  # type: ignore[union-attr]


@pytest.mark.parametrize("file_format", ["csv", "ndjson"])
def test_export_with_filter_and_masking(
    client: TestClient,
    role_headers: dict[str, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    file_format: str,
) -> None:
    admin = role_headers["admin"]
    rows = [row(n, status="SUSPENDED" if n % 3 == 0 else "ACTIVE") for n in range(1, 12)]
    run_job(client, admin, csv_file(*rows))
    kind = worker.engine(client.app.state.runtime).kinds["export"]  # type: ignore[attr-defined]
    monkeypatch.setattr(kind, "page_rows", 2)
    body = {"type": "export", "format": file_format, "filters": {"status": "ACTIVE"}, "mask": True}
    created = client.post("/migration/jobs", json=body, headers=admin)
    assert created.status_code == 201, created.text
    job = client.get(f"/migration/jobs/{created.json()['job']['id']}", headers=admin).json()
    assert job["status"] == "COMPLETED"
    assert job["counts"]["total"] == 8
    assert job["counts"]["processed"] == 8
    output = client.get(f"/migration/jobs/{job['id']}/output", headers=admin)
    assert output.status_code == 200
    if file_format == "csv":
        lines = output.text.splitlines()
        assert lines[0].startswith("uid,msisdn,imsi,")
        records = [dict(zip(lines[0].split(","), line.split(","), strict=False)) for line in lines[1:]]
    else:
        records = [json.loads(line) for line in output.text.splitlines()]
    assert [r["uid"] for r in records] == [f"s{n:04d}" for n in range(1, 12) if n % 3]
    assert all(r["status"] == "ACTIVE" for r in records)
    assert records[0]["imsi"] == "234150******001"


def test_delete_job(
    client: TestClient, role_headers: dict[str, dict[str, str]], store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = role_headers["admin"]
    run_job(client, admin, csv_file(row(1), row(2), row(3)))
    subscriber = store.subscribers.get("s0003")
    assert subscriber is not None
    # A future confirmed booking of s0003 (the bookings tests cover how one is made).
    monkeypatch.setattr(store.bookings, "has_future_confirmed", lambda uid, now: uid == "s0003")
    body = {"type": "delete", "format": "ndjson"}
    assert client.post("/migration/jobs", json=body, headers=role_headers["operator"]).status_code == 403
    content = b'{"uid": "s0001"}\n{"uid": "nobody"}\n{"uid": "s0003"}\n{"uid": "bad uid!"}\n'
    job = run_job(client, admin, content, type="delete", format="ndjson")
    assert counts(job) == (4, 0, 0, 0, 1, 3)
    assert errors_of(client, admin, job["id"]) == [
        (2, "uid", "not_found"),
        (3, "uid", "has_bookings"),
        (4, "uid", "invalid_uid"),
    ]
    assert store.subscribers.get("s0001") is None
    assert store.subscribers.get_by_msisdn("+447911100001") is None
    assert live(store, SUBSCRIBER_STATUS_SCOPE) == {"ACTIVE": 2}


def test_rollback_deletes_only_what_the_import_created_and_nobody_changed(
    client: TestClient, role_headers: dict[str, dict[str, str]], store: Store
) -> None:
    admin = role_headers["admin"]
    run_job(client, admin, csv_file(row(1)))
    imported = run_job(client, admin, csv_file(row(1, plan="SILVER"), row(2), row(3), row(4)), mode="upsert")
    assert counts(imported) == (4, 3, 1, 0, 0, 0)
    patched = client.patch("/subscribers/s0003", json={"plan": "BRONZE"}, headers={**admin, "If-Match": '"1"'})
    assert patched.status_code == 200, patched.text
    response = client.post(f"/migration/jobs/{imported['id']}/rollback", headers=admin)
    assert response.status_code in (200, 201, 202), response.text
    rollback = client.get(f"/migration/jobs/{response.json()['id']}", headers=admin).json()
    assert rollback["status"] == "COMPLETED"
    assert counts(rollback) == (4, 0, 0, 2, 2, 0)
    assert errors_of(client, admin, rollback["id"]) == [
        (1, "uid", "not_created_by_job"),
        (3, "uid", "changed_since_import"),
    ]
    assert [store.subscribers.get(f"s000{n}") is not None for n in range(1, 5)] == [True, False, True, False]
    assert live(store, SUBSCRIBER_PLAN_SCOPE) == {"SILVER": 1, "BRONZE": 1}


def test_crash_between_batch_and_checkpoint_resumes_exactly(
    app: FastAPI,
    client: TestClient,
    role_headers: dict[str, dict[str, str]],
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime = app.state.runtime
    engine = worker.engine(runtime)
    monkeypatch.setattr(engine.kinds["import:subscribers"], "batch_rows", 3)
    admin = role_headers["admin"]
    run_job(client, admin, csv_file(row(50)))
    runtime.provide("job_dispatcher", type("Parked", (), {"submit": lambda self, job_id: None})())
    rows = [row(n) for n in range(1, 9)] + [row(50, msisdn=90, imsi=90)]
    job_id = run_job(client, admin, csv_file(*rows), mode="upsert")["id"]

    original_commit = engine._commit
    commits = 0

    def crash_on_second(job: Any, result: Any) -> Any:
        nonlocal commits
        commits += 1
        if commits == 2:
            raise KeyboardInterrupt("worker killed")
        return original_commit(job, result)

    monkeypatch.setattr(engine, "_commit", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        engine.run(job_id)
    assert store.jobs.get(job_id).checkpoint["row"] == 3  # type: ignore[union-attr]
    assert store.subscribers.get("s0006") is not None  # written, not checkpointed
    monkeypatch.setattr(engine, "_commit", original_commit)
    store.jobs.claim(job_id, owner=engine.owner, now=utcnow(), lease_until=utcnow() - timedelta(seconds=1))
    done = JobEngine(runtime, engine.kinds, owner="second").run(job_id)
    assert done is not None
    assert done.status is JobStatus.COMPLETED
    assert (done.counts.processed, done.counts.created, done.counts.updated, done.counts.failed) == (9, 8, 1, 0)
    assert live(store, SUBSCRIBER_STATUS_SCOPE) == {"ACTIVE": 9}
    assert store.subscribers.get("s0050").msisdn == "+447911100090"  # type: ignore[union-attr]
    assert store.subscribers.reconcile_counters(fix=False) == []


@pytest.mark.parametrize("file_format", ["csv", "json", "ndjson"])
def test_an_empty_input_file_completes_the_job_with_no_rows(
    client: TestClient, role_headers: dict[str, dict[str, str]], store: Store, file_format: str
) -> None:
    """A file with no bytes is a file with no rows (an export from elsewhere may be empty)."""
    admin = role_headers["admin"]
    imported = run_job(client, admin, b"", format=file_format)
    assert (imported["status"], counts(imported)) == ("COMPLETED", (0, 0, 0, 0, 0, 0))
    deleted = run_job(client, admin, b"", type="delete", format=file_format)
    assert (deleted["status"], counts(deleted)) == ("COMPLETED", (0, 0, 0, 0, 0, 0))
    uploaded = client.post("/migration/upload", files={"file": (f"empty.{file_format}", b"")}, headers=admin)
    assert uploaded.status_code == 201, uploaded.text
    job = client.get(f"/migration/jobs/{uploaded.json()['id']}", headers=admin).json()
    assert (job["status"], counts(job)) == ("COMPLETED", (0, 0, 0, 0, 0, 0))
    assert live(store, "subscribers") == {}


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"type": "import"}, "body.format", "missing"),
        ({"type": "delete"}, "body.format", "missing"),
        ({"type": "export", "mode": "upsert"}, "body.mode", "unknown_field"),
        ({"type": "export", "format": "json"}, "body.format", "invalid_choice"),
        ({"type": "delete", "format": "csv", "mask": True}, "body.mask", "unknown_field"),
        ({"type": "delete", "format": "csv", "target": "users"}, "body.target", "invalid_choice"),
        ({"type": "import", "format": "csv", "filters": {}}, "body.filters", "unknown_field"),
        ({"type": "rename"}, "body.type", "invalid_choice"),
        ({"format": "csv"}, "body.type", "missing"),
    ],
)
def test_a_jobs_fields_follow_its_type(
    client: TestClient, role_headers: dict[str, dict[str, str]], body: dict[str, Any], field: str, code: str
) -> None:
    """A field another type of job takes is refused by its own name, as the document's oneOf says."""
    response = client.post("/migration/jobs", json=body, headers=role_headers["admin"])
    assert response.status_code == 422, response.text
    assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [(field, code)]


NAMELESS_FILES = {
    "csv": csv_file(row(1), row(2)),
    "json": b"\xef\xbb\xbf \n"
    + json.dumps([dict(zip(HEADER.split(","), row(n).split(","), strict=True)) for n in (1, 2)]).encode(),
    "ndjson": b"\r\n".join(
        json.dumps(dict(zip(HEADER.split(","), row(n).split(","), strict=True))).encode() for n in (1, 2)
    ),
}


@pytest.mark.parametrize("kind", sorted(NAMELESS_FILES))
def test_an_upload_whose_name_tells_no_format_is_read_as_its_content_shows(
    client: TestClient, role_headers: dict[str, dict[str, str]], store: Store, kind: str
) -> None:
    """`[` first is a JSON array, `{` NDJSON, anything else CSV (white space and a BOM skipped)."""
    admin = role_headers["admin"]
    uploaded = client.post("/migration/upload", files={"file": ("export", NAMELESS_FILES[kind])}, headers=admin)
    assert uploaded.status_code == 201, uploaded.text
    job = client.get(f"/migration/jobs/{uploaded.json()['id']}", headers=admin).json()
    assert job["options"]["format"] == kind
    assert (job["status"], counts(job)) == ("COMPLETED", (2, 2, 0, 0, 0, 0))
    assert live(store, SUBSCRIBER_STATUS_SCOPE) == {"ACTIVE": 2}


def test_a_nameless_upload_that_is_no_format_is_read_as_csv_and_fails_with_a_reason(
    client: TestClient, role_headers: dict[str, dict[str, str]], store: Store
) -> None:
    admin = role_headers["admin"]
    for content in (b"\x00\x01 not text \xff", b"uid\ns0001\n(not json)"):
        uploaded = client.post("/migration/upload", files={"file": ("file", content)}, headers=admin)
        assert uploaded.status_code == 201, uploaded.text
        job = client.get(f"/migration/jobs/{uploaded.json()['id']}", headers=admin).json()
        assert job["options"]["format"] == "csv"
        assert job["status"] in ("FAILED", "COMPLETED_WITH_ERRORS"), job
        assert job["status"] == "COMPLETED_WITH_ERRORS" or job["error_summary"], job
    assert live(store, "subscribers") == {}


@pytest.mark.parametrize("order", [("Mobile", "Phone"), ("Phone", "Mobile")])
def test_two_columns_on_one_field_take_the_first_non_empty_in_the_mappings_order(
    client: TestClient, role_headers: dict[str, dict[str, str]], store: Store, order: tuple[str, str]
) -> None:
    admin = role_headers["admin"]
    first, second = order
    mapping = {"columns": {first: "msisdn", second: "msisdn"}}
    lines = ["uid,imsi,first_name,last_name,plan,Phone,Mobile"]
    lines += [
        "s0001,234150000000001,A,B,GOLD,+447911100001,+447911100002",
        "s0002,234150000000002,A,B,GOLD,,+447911100003",
    ]
    job = run_job(client, admin, ("\r\n".join(lines) + "\r\n").encode(), mapping=mapping)
    assert (job["status"], counts(job)) == ("COMPLETED", (2, 2, 0, 0, 0, 0)), errors_of(client, admin, job["id"])
    expected = "+447911100001" if first == "Phone" else "+447911100002"
    assert store.subscribers.get("s0001").msisdn == expected  # type: ignore[union-attr]
    assert store.subscribers.get("s0002").msisdn == "+447911100003"  # type: ignore[union-attr]
    # The job shows its options as given, the columns in the order that decides.
    assert job["options"]["mapping"]["columns"] == mapping["columns"]
    assert list(job["options"]["mapping"]["columns"]) == list(order)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"mapping": {"columns": {"Login": "username"}}}, "body.mapping.columns.Login"),
        ({"mapping": {"defaults": {"password_hash": "x" * 20}}}, "body.mapping.defaults.password_hash.[key]"),
        ({"target": "users", "mapping": {"columns": {"Phone": "msisdn"}}}, "body.mapping.columns.Phone"),
        ({"target": "users", "mapping": {"transforms": {"plan": ["trim"]}}}, "body.mapping.transforms.plan.[key]"),
        ({"target": "robots"}, "body.target"),
    ],
)
def test_a_mapping_names_fields_of_its_target(
    client: TestClient, role_headers: dict[str, dict[str, str]], body: dict[str, Any], field: str
) -> None:
    """The document lists each target's fields (a mapping per target); any other is refused by name."""
    response = client.post(
        "/migration/jobs", json={"type": "import", "format": "csv", **body}, headers=role_headers["admin"]
    )
    assert response.status_code == 422, response.text
    assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [(field, "invalid_choice")]


def test_a_job_without_an_output_file_answers_its_output_with_a_conflict(
    client: TestClient, role_headers: dict[str, dict[str, str]]
) -> None:
    """The job exists (its link from `Location` works); only an export writes a file: a 409, not a 404."""
    admin = role_headers["admin"]
    job = run_job(client, admin, csv_file(row(1)))
    response = client.get(f"/migration/jobs/{job['id']}/output", headers=admin)
    assert response.status_code == 409, response.text
    assert response.json()["type"] == "/problems/conflict"
