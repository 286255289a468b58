"""`portal import`, `portal export` and `portal jobs run|list|show|errors`: the same jobs as the API, run inline."""

from __future__ import annotations

import csv
import io
import json
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app import cli
from app.cli import common as cli_common
from app.config import Settings
from app.runtime import Runtime
from app.storage.base import Store
from app.storage.blobs import LocalBlobStore
from app.storage.records import JobRecord, JobStatus, JobType
from app.timeutil import utcnow
from tests.migration.conftest import running_job

MAPPING = {"columns": {"MSISDN": "msisdn", "Tariff": "plan"}, "transforms": {"status": ["trim", "upper"]}}


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, settings: Settings, store: Store, tmp_path: Path) -> CliRunner:
    runtime = Runtime(settings, store)
    runtime.provide("blobs", LocalBlobStore(tmp_path / "files"))
    monkeypatch.setattr(runtime, "close", lambda: None)  # the test still needs the store afterwards
    monkeypatch.setattr(cli_common, "open_runtime", lambda: runtime)
    return CliRunner()


def write_input(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "legacy.csv"
    data.write_text(
        "uid;MSISDN;imsi;first_name;last_name;status;Tariff\n"
        "c1;07911 100001;234150000000001;Ann;Lee; active ;GOLD\n"
        "c2;+447911100002;234150000000002;Bob;Ng;SUSPENDED;SILVER\n"
        "c3;not a number;234150000000003;Cy;Oh;ACTIVE;GOLD\n",
        encoding="utf-8",
    )
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps(MAPPING), encoding="utf-8")
    return data, mapping


def test_import_reports_counts_and_errors(runner: CliRunner, store: Store, tmp_path: Path) -> None:
    data, mapping = write_input(tmp_path)
    result = runner.invoke(cli.app, ["import", str(data), "--mapping", str(mapping)])
    assert result.exit_code == 1, result.output  # completed with errors
    assert "COMPLETED_WITH_ERRORS" in result.output
    assert "msisdn" in result.output
    jobs = store.jobs.list_newest(status=None, job_type=None, limit=5).items
    assert len(jobs) == 1
    assert f"portal jobs errors {jobs[0].id}" in result.output  # where the full report is
    assert (jobs[0].counts.created, jobs[0].counts.failed, jobs[0].created_by) == (2, 1, "cli")
    assert store.subscribers.get("c1").msisdn == "+447911100001"  # type: ignore[union-attr]


def test_dry_run_and_bad_options(runner: CliRunner, store: Store, tmp_path: Path) -> None:
    data, mapping = write_input(tmp_path)
    result = runner.invoke(cli.app, ["import", str(data), "--mapping", str(mapping), "--dry-run"])
    assert result.exit_code == 1, result.output
    assert store.subscribers.get("c1") is None
    bad = runner.invoke(cli.app, ["import", str(data), "--region", "XX"])
    assert bad.exit_code == 2
    assert "default_region" in bad.output


def test_export_to_a_file(runner: CliRunner, store: Store, tmp_path: Path) -> None:
    data, mapping = write_input(tmp_path)
    runner.invoke(cli.app, ["import", str(data), "--mapping", str(mapping)])
    out = tmp_path / "out.ndjson"
    result = runner.invoke(cli.app, ["export", "--status", "ACTIVE", "--format", "ndjson", "--mask", "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(row["uid"], row["imsi"]) for row in rows] == [("c1", "234150******001")]


def test_jobs_run_resumes_a_job_and_refuses_unknown_ones(runner: CliRunner, store: Store, tmp_path: Path) -> None:
    stalled = JobRecord(
        id="stalled-export",
        type=JobType.EXPORT,
        status=JobStatus.RUNNING,
        options={"format": "csv"},
        created_by="someone",
        created_at=utcnow(),
    )
    store.jobs.create(stalled)
    result = runner.invoke(cli.app, ["jobs", "run", "stalled-export"])
    assert result.exit_code == 0, result.output
    assert store.jobs.get("stalled-export").status is JobStatus.COMPLETED  # type: ignore[union-attr]
    assert runner.invoke(cli.app, ["jobs", "run", "nope"]).exit_code == 2


def test_jobs_sweep_resumes_stalled_jobs_here_and_fails_hopeless_ones(runner: CliRunner, store: Store) -> None:
    assert runner.invoke(cli.app, ["jobs", "sweep"]).exit_code == 0  # nothing to do

    minute_ago = utcnow() - timedelta(minutes=1)
    csv = {"format": "csv"}
    for job_id, resumes in (("stalled-export", 0), ("hopeless-export", 5)):
        job = running_job(job_id, JobType.EXPORT, since=minute_ago, options=csv, checkpoint={"resumes": resumes})
        store.jobs.create(job)
    # Its worker is alive: the lease it took at its last checkpoint runs for another minute.
    store.jobs.create(running_job("busy-export", JobType.EXPORT, since=minute_ago, options=csv))
    assert store.jobs.claim("busy-export", owner="alive", now=utcnow(), lease_until=utcnow() + timedelta(minutes=1))

    quiet = runner.invoke(cli.app, ["jobs", "sweep"])  # silent for a minute: not stalled by the default (5 min)
    assert (quiet.exit_code, "no stalled jobs" in quiet.output) == (0, True), quiet.output

    result = runner.invoke(cli.app, ["jobs", "sweep", "--stale-after", "30"])
    assert result.exit_code == 1, result.output  # it gave up on one job
    assert "hopeless-export: the job's worker stopped repeatedly" in result.output
    assert "resuming job stalled-export" in result.output
    resumed = store.jobs.get("stalled-export")
    assert resumed is not None
    assert (resumed.status, resumed.checkpoint.get("resumes")) == (JobStatus.COMPLETED, 1)
    assert store.jobs.get("hopeless-export").status is JobStatus.FAILED  # type: ignore[union-attr]
    busy = store.jobs.get("busy-export")
    assert busy is not None
    assert (busy.status, busy.lease_owner, busy.checkpoint) == (JobStatus.RUNNING, "alive", {})


def only_job(store: Store, job_type: JobType) -> JobRecord:
    (job,) = [job for job in store.jobs.list_newest(status=None, job_type=job_type, limit=10).items]
    return job


def test_summaries_count_what_the_kind_of_job_does(runner: CliRunner, store: Store, tmp_path: Path) -> None:
    data, mapping = write_input(tmp_path)
    imported = runner.invoke(cli.app, ["import", str(data), "--mapping", str(mapping)])
    assert tuple(name for name in ("created", "updated", "errors") if f"{name} " in imported.stdout) == (
        "created",
        "updated",
        "errors",
    )
    exported = runner.invoke(cli.app, ["export"])
    assert exported.exit_code == 0, exported.output
    export = only_job(store, JobType.EXPORT)
    assert "exported 2" in exported.stdout
    assert export.output_key is not None
    assert export.output_key in exported.stdout
    for irrelevant in ("created", "updated", "deleted", "skipped"):
        assert irrelevant not in exported.stdout


def test_progress_moves_once_per_batch(
    runner: CliRunner, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.migration import worker

    runtime = cli_common.open_runtime()
    monkeypatch.setattr(worker.engine(runtime).kinds["import:subscribers"], "batch_rows", 1)
    data, mapping = write_input(tmp_path)
    result = runner.invoke(cli.app, ["import", str(data), "--mapping", str(mapping)])
    lines = [line for line in result.stderr.splitlines() if line.startswith("job ") and " rows " in line]
    done = [line.split(" rows ")[1].split(",")[0] for line in lines]
    assert done == ["0/3 (0%)", "1/3 (33%)", "2/3 (67%)", "3/3 (100%)"]
    assert lines[-1].endswith("created 2, updated 0, errors 1")


def test_jobs_list_filters_by_status_and_kind_newest_first(runner: CliRunner, store: Store, tmp_path: Path) -> None:
    data, mapping = write_input(tmp_path)
    runner.invoke(cli.app, ["import", str(data), "--mapping", str(mapping)])
    runner.invoke(cli.app, ["export"])
    imported, exported = only_job(store, JobType.IMPORT), only_job(store, JobType.EXPORT)

    everything = runner.invoke(cli.app, ["jobs", "list"])
    assert everything.exit_code == 0, everything.output
    assert everything.stdout.index(exported.id) < everything.stdout.index(imported.id)
    exports = runner.invoke(cli.app, ["jobs", "list", "--kind", "export"]).stdout
    assert (exported.id in exports, imported.id in exports) == (True, False)
    with_errors = runner.invoke(cli.app, ["jobs", "list", "--status", "COMPLETED_WITH_ERRORS"]).stdout
    assert (exported.id in with_errors, imported.id in with_errors) == (False, True)
    newest = runner.invoke(cli.app, ["jobs", "list", "--limit", "1"])
    assert (exported.id in newest.stdout, imported.id in newest.stdout) == (True, False)
    assert "--limit" in newest.stderr  # says there are more
    assert runner.invoke(cli.app, ["jobs", "list", "--kind", "upload"]).exit_code == 2
    assert runner.invoke(cli.app, ["jobs", "list", "--limit", "0"]).exit_code == 2


def test_jobs_show_gives_progress_and_summary(runner: CliRunner, store: Store, tmp_path: Path) -> None:
    data, mapping = write_input(tmp_path)
    runner.invoke(cli.app, ["import", str(data), "--mapping", str(mapping)])
    job = only_job(store, JobType.IMPORT)
    shown = runner.invoke(cli.app, ["jobs", "show", job.id])
    assert shown.exit_code == 0, shown.output
    for expected in (job.id, "import subscribers", "COMPLETED_WITH_ERRORS", "3/3 (100%)", "created 2", "errors 1"):
        assert expected in shown.stdout, expected
    assert "msisdn" in shown.stdout  # its first row errors
    missing = runner.invoke(cli.app, ["jobs", "show", "nope"])
    assert (missing.exit_code, "not found" in missing.stderr) == (2, True)


def test_jobs_errors_as_a_table_or_csv_with_neutralised_cells(runner: CliRunner, store: Store, tmp_path: Path) -> None:
    data, mapping = write_input(tmp_path)
    data.write_text(data.read_text(encoding="utf-8").replace("not a number", "=HYPERLINK(1)"), encoding="utf-8")
    runner.invoke(cli.app, ["import", str(data), "--mapping", str(mapping)])
    job = only_job(store, JobType.IMPORT)

    table = runner.invoke(cli.app, ["jobs", "errors", job.id])
    assert table.exit_code == 0, table.output
    assert "msisdn" in table.stdout
    as_csv = runner.invoke(cli.app, ["jobs", "errors", job.id, "--format", "csv"])
    assert as_csv.exit_code == 0, as_csv.output
    rows = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert rows[0] == ["row", "field", "code", "message", "value"]
    assert [(row[0], row[1], row[4]) for row in rows[1:]] == [("3", "msisdn", "'=HYPERLINK(1)")]
    report = tmp_path / "errors.csv"
    written = runner.invoke(cli.app, ["jobs", "errors", job.id, "--format", "csv", "-o", str(report)])
    assert written.exit_code == 0, written.output
    assert report.read_text(encoding="utf-8") == as_csv.stdout
    assert stat.S_IMODE(report.stat().st_mode) == 0o600  # it holds raw input: personal data
    assert runner.invoke(cli.app, ["jobs", "errors", "nope"]).exit_code == 2


def test_export_to_a_file_is_owner_only(runner: CliRunner, store: Store, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    assert runner.invoke(cli.app, ["export", "-o", str(out)]).exit_code == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
