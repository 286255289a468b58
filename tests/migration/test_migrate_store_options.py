"""`portal migrate-store` refusals decided before either store is opened: a side's setting that breaks
the settings' own rules, and a state file of another copy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from app import cli
from tests.support import TEST_SECRET

TO_TABLE = ["migrate-store", "--source", "dynamodb", "--target", "dynamodb"]


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    for name in ("MONGODB_URI", "STORAGE_BACKEND", "DYNAMODB_TABLE", "DYNAMODB_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("APP_ENV", "test")
    monkeypatch.setenv("JWT_SECRET", TEST_SECRET)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    # An endpoint nothing listens on: a test that got as far as opening a store would fail loudly.
    monkeypatch.setenv("DYNAMODB_ENDPOINT_URL", "http://127.0.0.1:9")
    return CliRunner()


def junk_state(tmp_path: Path) -> str:
    path = tmp_path / "junk.json"
    path.write_text("{not json", encoding="utf-8")
    return str(path)


def said(result: Result) -> str:
    """The messages without the line breaks rich adds at the terminal's width."""
    return " ".join(result.output.split())


FROM_MONGO = ["migrate-store", "--source", "mongo", "--target", "dynamodb", "--source-mongodb-uri", "mongodb://x/"]


@pytest.mark.parametrize(
    ("args", "refusal"),
    [
        ([*TO_TABLE, "--target-dynamodb-table", "no spaces"], "--target-dynamodb-table: String should match pattern"),
        ([*TO_TABLE, "--target-dynamodb-table", "ab"], "--target-dynamodb-table: String should have at least 3"),
        ([*FROM_MONGO, "--source-mongodb-database", "a/b"], "--source-mongodb-database: String should match pattern"),
    ],
)
def test_a_side_setting_breaking_the_settings_rules_is_refused(
    runner: CliRunner, tmp_path: Path, args: list[str], refusal: str
) -> None:
    """Checked as the settings check it, before anything else (here: before the state file, which
    is junk too), naming the option and the validator's reason."""
    result = runner.invoke(cli.app, [*args, "--state", junk_state(tmp_path)])
    assert result.exit_code == 2, result.output
    assert refusal in said(result)
    assert "state file" not in said(result)


def test_a_state_file_of_another_copy_is_refused(runner: CliRunner, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"source": "mongo elsewhere", "target": "dynamodb elsewhere"}), encoding="utf-8")
    result = runner.invoke(cli.app, [*TO_TABLE, "--target-dynamodb-table", "other-table", "--state", str(state)])
    assert result.exit_code == 2, result.output
    assert "belongs to another copy (mongo elsewhere -> dynamodb elsewhere)" in said(result)
