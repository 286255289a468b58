"""`portal` (app.cli) with two test-only knobs, for the kill/resume tests (test_kill_resume.py).

    python tests/migration/killable_portal.py import FILE ...

runs the real command line in this process, after reading:

- KILLTEST_BATCH_ROWS=N: subscriber imports commit every N rows (sized by time otherwise), so a file small
  enough for moto has several batches and checkpoints.
- KILLTEST_STALL_IN_BATCH=K, KILLTEST_STALL_AFTER_ROWS=M (or `all`), KILLTEST_STALLED_FILE=PATH:
  in the K-th batch (counting those with a valid row: only they are written), write only the
  first M valid rows of it (or all of them) through the real store code, then write the job id
  to PATH and wait to be killed. The job is then exactly where a
  crash hurts most: a batch partly (or wholly) written and not checkpointed, reached on every
  run, however fast or slow the machine.

Only this launcher reads these variables; nothing in app/ knows about them.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

STALL_LIMIT_SECONDS = 120  # a stalled launcher nobody killed (a test that died) goes away by itself


def install_knobs() -> None:
    from app.migration.kinds import SubscriberFileImport

    if rows := os.environ.get("KILLTEST_BATCH_ROWS"):
        SubscriberFileImport.batch_rows = int(rows)
    stall_in = os.environ.get("KILLTEST_STALL_IN_BATCH")
    if not stall_in:
        return
    stall_batch = int(stall_in)
    keep = os.environ["KILLTEST_STALL_AFTER_ROWS"]
    stalled_file = Path(os.environ["KILLTEST_STALLED_FILE"])
    write = SubscriberFileImport.write
    calls = 0

    def write_then_stall(self: Any, rows: list[Any], job: Any, runtime: Any, *, dry_run: bool, heartbeat: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls < stall_batch:
            return write(self, rows, job, runtime, dry_run=dry_run, heartbeat=heartbeat)
        written = rows if keep == "all" else rows[: int(keep)]
        if written:
            write(self, written, job, runtime, dry_run=dry_run, heartbeat=heartbeat)
        stalled_file.write_text(job.id, encoding="utf-8")
        time.sleep(STALL_LIMIT_SECONDS)
        os._exit(75)

    SubscriberFileImport.write = write_then_stall  # type: ignore[method-assign]


if __name__ == "__main__":
    # Ctrl-C as at a terminal: a test run started in the background (`make test &`, a CI job without
    # job control) hands its children SIGINT ignored, and Python then installs no handler for it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    install_knobs()
    from app import cli

    sys.argv[0] = "portal"
    cli.main()
