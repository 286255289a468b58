"""`portal reconcile-counters`: reports drift (exit 1), fixes it with --fix, is quiet when all is well."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from app import cli
from app.cli import common as cli_common
from app.config import Settings
from app.runtime import Runtime
from app.storage.base import Store
from tests.subscribers.support import audit_for, counts, record


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, settings: Settings, store: Store) -> CliRunner:
    runtime = Runtime(settings, store)
    monkeypatch.setattr(runtime, "close", lambda: None)  # the test still needs the store afterwards
    monkeypatch.setattr(cli_common, "open_runtime", lambda: runtime)
    for n in range(3):
        subscriber = record(n, status="SUSPENDED" if n else "ACTIVE")
        store.subscribers.create(subscriber, audit_for(subscriber))
    return CliRunner()


def test_no_drift_exits_0(runner: CliRunner) -> None:
    result = runner.invoke(cli.app, ["reconcile-counters"])
    assert result.exit_code == 0, result.output
    assert "match the data" in result.output


def test_drift_is_reported_with_exit_1_and_left_alone(runner: CliRunner, store: Store) -> None:
    store.counters.increment("subscribers.status", {"SUSPENDED": 5})
    result = runner.invoke(cli.app, ["reconcile-counters"])
    assert result.exit_code == 1
    assert "SUSPENDED" in result.output
    assert "--fix" in result.output
    assert counts(store, "subscribers.status") == {"ACTIVE": 1, "SUSPENDED": 7}


def test_fix_repairs_the_counters(runner: CliRunner, store: Store) -> None:
    store.counters.increment("subscribers.plan", {"GOLD": -2, "STALE": 4})
    result = runner.invoke(cli.app, ["reconcile-counters", "--fix"])
    assert result.exit_code == 0, result.output
    assert "fixed 2 counter(s)" in result.output
    assert counts(store, "subscribers.plan") == {"GOLD": 3}
    assert runner.invoke(cli.app, ["reconcile-counters"]).exit_code == 0
