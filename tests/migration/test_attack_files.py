"""The attack table: crafted import files against every reader.

Each file must end its job FAILED with a reason naming the limit it broke (or, where the row can
be skipped safely, give a row error), through the job engine on both stores. The memory a reader
may take for such a file is measured in a child process that runs under an address-space limit,
so a reader that grows with the attacker's choice fails the test instead of the machine.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.migration import worker
from app.migration.readers import MAX_COLUMNS, MAX_DEPTH, MAX_ROW_BYTES
from app.storage.base import Store

DEEP = 100_000
HUGE = 2 * 1024 * 1024  # well past every per-row limit, and small enough to build in a few ms
ROOT = Path(__file__).resolve().parents[2]
# What the child may add to its address space while reading one file. Python's own parser needed
# 253 MB for a row nested 10,000 deep; bounded readers stay far below this.
ADDRESS_SPACE_HEADROOM = 256 * 1024 * 1024
TRACED_PEAK_LIMIT = 32 * 1024 * 1024


@dataclass(frozen=True)
class Attack:
    name: str
    kind: str
    content: Callable[[], bytes]
    reason: str  # a regular expression the job's error summary (or row error) must match
    row_error: bool = False  # the row is skipped with a row error; the job goes on


def _deep(depth: int) -> bytes:
    return b'{"uid": "s1", "a": ' + b"[" * depth + b"]" * depth + b"}"


def _keys(count: int) -> bytes:
    return b"{" + b", ".join(b'"k%d": %d' % (n, n) for n in range(count)) + b"}"


ATTACKS = [
    # JSON array (streamed through ijson)
    Attack("json-depth-bomb", "json", lambda: b"[" + _deep(DEEP) + b"]", f"deeper than {MAX_DEPTH} levels"),
    Attack(
        "json-depth-bomb-after-good-rows",
        "json",
        lambda: b'[{"uid": "s0"}, ' + _deep(DEEP) + b"]",
        rf"deeper than {MAX_DEPTH} levels \(after row \d\)",
    ),
    Attack("json-just-too-deep", "json", lambda: b"[" + _deep(MAX_DEPTH) + b"]", f"deeper than {MAX_DEPTH}"),
    Attack("json-enormous-field", "json", lambda: b'[{"uid": "' + b"x" * HUGE + b'"}]', f"{MAX_ROW_BYTES} bytes"),
    Attack("json-huge-row", "json", lambda: b"[" + _keys(50_000) + b"]", f"{MAX_ROW_BYTES} bytes"),
    Attack("json-too-many-keys", "json", lambda: b"[" + _keys(MAX_COLUMNS + 1) + b"]", f"at most {MAX_COLUMNS}"),
    Attack("json-enormous-scalar-row", "json", lambda: b'["' + b"x" * HUGE + b'"]', f"{MAX_ROW_BYTES} bytes"),
    Attack("json-deep-array-rows", "json", lambda: b"[" * DEEP + b"]" * DEEP, "deeper than|must be an object"),
    Attack("json-invalid-utf8", "json", lambda: b'[{"uid": "\xff\xfe"}]', "not UTF-8|malformed JSON"),
    Attack(
        "json-utf16-hidden-depth",
        "json",
        lambda: ('[{"a": ["\u2200", ' + "[" * 50_000 + "]" * 50_000 + ', "x"]}]').encode("utf-16-le"),
        "malformed JSON|not UTF-8",
    ),
    Attack("json-nul-bytes", "json", lambda: b'[{"uid": "a\x00b"}]', "malformed JSON"),
    # NDJSON
    Attack("ndjson-deep-line", "ndjson", lambda: _deep(DEEP) + b"\n", f"line 1.*deeper than {MAX_DEPTH} levels"),
    Attack(
        "ndjson-deep-second-line", "ndjson", lambda: b'{"uid": "s0"}\n' + _deep(DEEP) + b"\n", "line 2.*deeper than"
    ),
    Attack("ndjson-enormous-line", "ndjson", lambda: b'{"uid": "' + b"x" * HUGE + b'"}\n', f"{MAX_ROW_BYTES} bytes"),
    Attack("ndjson-no-newline-at-all", "ndjson", lambda: b" " * HUGE + b'{"uid": "s1"}', f"{MAX_ROW_BYTES} bytes"),
    Attack("ndjson-huge-row", "ndjson", lambda: _keys(50_000) + b"\n", f"{MAX_ROW_BYTES} bytes"),
    Attack("ndjson-too-many-keys", "ndjson", lambda: _keys(MAX_COLUMNS + 1) + b"\n", f"at most {MAX_COLUMNS}"),
    Attack("ndjson-invalid-utf8", "ndjson", lambda: b'{"uid": "\xff\xfe"}\n', "not UTF-8"),
    Attack("ndjson-nul-bytes", "ndjson", lambda: b'{"uid": "a\x00b"}\n', "not valid JSON"),
    Attack(
        "ndjson-utf16-hidden-depth",  # U+2200 holds a 0x22 byte that is not a quote in UTF-16
        "ndjson",
        lambda: ('{"a": ["\u2200", ' + "[" * 50_000 + "]" * 50_000 + ', "x"]}\n').encode("utf-16-le"),
        "not UTF-8|not valid JSON|binary",
    ),
    Attack("ndjson-huge-number", "ndjson", lambda: b'{"uid": ' + b"9" * 100_000 + b"}\n", "not valid JSON"),
    # CSV
    Attack("csv-header-bomb", "csv", lambda: b"uid," + b"h" * 100_000 + b"\r\ns1,x\r\n", "field larger than"),
    Attack("csv-enormous-header", "csv", lambda: b"uid," + b"h" * HUGE + b"\r\n", f"{MAX_ROW_BYTES} characters"),
    Attack(
        "csv-100k-columns",
        "csv",
        lambda: ",".join(f"c{n}" for n in range(30_000)).encode() + b"\r\n",
        f"at most {MAX_COLUMNS}",
    ),
    Attack("csv-enormous-field", "csv", lambda: b"uid,a\r\ns1," + b"x" * 100_000 + b"\r\n", "field larger than"),
    Attack("csv-enormous-line", "csv", lambda: b"uid,a\r\ns1," + b"x" * HUGE + b"\r\n", f"{MAX_ROW_BYTES} characters"),
    Attack(
        "csv-enormous-quoted-row",
        "csv",
        lambda: b"uid,a\r\n" + b",".join([b'"' + b"x" * 1000 + b'\n"'] * (HUGE // 1000)) + b"\r\n",
        f"row 1.*{MAX_ROW_BYTES} characters",
    ),
    Attack("csv-values-bomb", "csv", lambda: b"uid,a\r\ns1," + b"," * HUGE + b"x\r\n", f"{MAX_ROW_BYTES} characters"),
    Attack("csv-extra-values", "csv", lambda: b"uid,a\r\ns1,x," + b"y," * 999 + b"\r\n", "for 2 col", row_error=True),
    Attack("csv-invalid-utf8", "csv", lambda: b"uid,a\r\ns1,\xff\xfe\r\n", "not UTF-8"),
    Attack("csv-nul-bytes", "csv", lambda: b"uid,a\r\ns1,a\x00b\r\n", "NUL"),
    Attack("csv-nul-header", "csv", lambda: b"uid,\x00\r\ns1,a\r\n", "binary"),
]
BY_NAME = {attack.name: attack for attack in ATTACKS}


def test_every_reader_is_attacked() -> None:
    assert {attack.kind for attack in ATTACKS} == {"csv", "json", "ndjson"}
    assert len(BY_NAME) == len(ATTACKS)


# --- through the job engine, on both stores ------------------------------------------------------------


@pytest.mark.parametrize("attack", ATTACKS, ids=[attack.name for attack in ATTACKS])
def test_a_crafted_file_ends_its_job_with_a_reason(
    attack: Attack, app: FastAPI, client: TestClient, role_headers: dict[str, dict[str, str]], store: Store
) -> None:
    admin = role_headers["admin"]
    body = {
        "type": "import",
        "target": "subscribers",
        "format": attack.kind,
        "mapping": {"unmapped": "ignore"},
    }
    created = client.post("/migration/jobs", json=body, headers=admin)
    assert created.status_code == 201, created.text
    job_id = created.json()["job"]["id"]
    sent = client.put(f"/migration/jobs/{job_id}/input", content=attack.content(), headers=admin)
    assert sent.status_code == 200, sent.text
    job = store.jobs.get(job_id)
    assert job is not None
    if attack.row_error:
        assert job.status.value == "COMPLETED_WITH_ERRORS", job.error_summary
        messages = [error.message for error in store.jobs.list_errors(job_id, limit=10).items]
        assert any(re.search(attack.reason, message) for message in messages), messages
        return
    assert job.status.value == "FAILED"
    assert job.error_summary is not None
    assert len(job.error_summary) < 300  # a reason a person reads, not a dump of the file
    assert re.search(attack.reason, job.error_summary), job.error_summary
    assert (job.counts.processed, job.counts.created) == (0, 0)  # refused before anything was written
    assert worker.sweep(app.state.runtime, _Nowhere(), stale_after=timedelta(0)) == {"resumed": [], "failed": []}


class _Nowhere:
    def submit(self, job_id: str) -> None:
        raise AssertionError(f"the sweeper resumed {job_id}")


# --- memory, in a child process under an address-space limit ---------------------------------------------


def probe(names: list[str]) -> list[dict[str, Any]]:
    """Runs in the child: every reader pass a job makes (check_file, then read_rows) over each file."""
    import io
    import resource
    import tracemalloc

    from app.migration.readers import check_file, read_rows

    results = []
    for name in names:
        attack = BY_NAME[name]
        content = attack.content()
        tracemalloc.start()
        outcome = "ok"
        try:
            check_file(io.BytesIO(content), attack.kind)  # type: ignore[arg-type]
            for row in read_rows(io.BytesIO(content), attack.kind):  # type: ignore[arg-type]
                if row.problem:
                    outcome = f"row problem: {row.problem}"
        except MemoryError:
            outcome = "MemoryError"
        except Exception as exc:  # the test asserts what it was
            outcome = f"{type(exc).__name__}: {exc}"
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        results.append(
            {"name": name, "outcome": outcome, "peak": peak, "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF)[2]}
        )
    return results


CHILD = """
import json, resource, sys
sys.setrecursionlimit(1000)
from tests.migration.test_attack_files import ADDRESS_SPACE_HEADROOM, probe
vm = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (vm + ADDRESS_SPACE_HEADROOM, vm + ADDRESS_SPACE_HEADROOM))
start = resource.getrusage(resource.RUSAGE_SELF)[2]
print(json.dumps({"start_kib": start, "results": probe(sys.argv[1:])}))
"""


def test_readers_stay_bounded_in_memory_on_every_attack() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(  # noqa: S603 - our own interpreter and test module
        [sys.executable, "-c", CHILD, *BY_NAME],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    wrong = []
    for result in report["results"]:
        attack = BY_NAME[result["name"]]
        expected = "row problem" if attack.row_error else "FileFormatError"
        if not result["outcome"].startswith(expected) or not re.search(attack.reason, result["outcome"]):
            wrong.append((attack.name, result["outcome"][:200]))
        if result["peak"] > TRACED_PEAK_LIMIT:
            wrong.append((attack.name, f"traced peak {result['peak'] / 2**20:.1f} MiB"))
    assert wrong == []
    grown_mib = (report["results"][-1]["maxrss_kib"] - report["start_kib"]) / 1024
    assert grown_mib < 100, f"the readers grew the process by {grown_mib:.0f} MiB"
