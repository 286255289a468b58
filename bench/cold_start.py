"""Cold start: time from process start to the Lambda handler's answer to a v2 `GET /health` event.

Each sample is a fresh Python process (as a new Lambda execution environment would be). The
baseline, measured in the same run and interleaved with the portal, is a bare FastAPI + Mangum
app that imports boto3 and creates a DynamoDB client. Prints both medians and their ratio.

    python bench/cold_start.py [--runs 15] [--python PATH]

`make bench` runs it with an interpreter whose environment holds exactly `requirements/lambda.txt`
(what the Lambda package ships), not the development venv: dev-only packages such as cryptography
(pulled in by moto) change which backends libraries like python-jose load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.lambda_events import http_v2  # noqa: E402

EVENT = json.dumps(http_v2("GET", "/health"))

PORTAL = """
import json, sys
from app.handler import handler
response = handler(json.loads(sys.argv[1]), None)
assert response["statusCode"] == 200, response
print("ok", flush=True)
"""

BASELINE = """
import json, sys
import boto3
from fastapi import FastAPI
from mangum import Mangum
app = FastAPI()
client = boto3.client("dynamodb", region_name="eu-west-1")
@app.get("/health")
def health():
    return {"status": "ok"}
handler = Mangum(app, lifespan="off")
response = handler(json.loads(sys.argv[1]), None)
assert response["statusCode"] == 200, response
print("ok", flush=True)
"""

# As deployed: not local, so no embedded store, no table creation and no demo data.
ENV = {
    **os.environ,
    "APP_ENV": "dev",
    "JWT_SECRET": "bench-secret-bench-secret-bench-secret-0123",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_REGION": "eu-west-1",
    "LOG_LEVEL": "WARNING",
    "PYTHONDONTWRITEBYTECODE": "1",
}


def sample(python: str, code: str) -> float:
    started = time.perf_counter()
    result = subprocess.run([python, "-c", code, EVENT], cwd=ROOT, env=ENV, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0 or "ok" not in result.stdout:
        raise SystemExit(f"sample failed:\n{result.stdout}\n{result.stderr}")
    return elapsed * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--python", default=sys.executable, help="interpreter of the environment to measure")
    parser.add_argument(
        "--from-source",
        action="store_true",
        help="compile every module from source in every sample, as in the Lambda package (no bytecode)",
    )
    args = parser.parse_args()
    # Otherwise bytecode is used where it exists: the venvs' packages have theirs, and `app/` has
    # whatever an earlier run (e.g. the tests) left in its __pycache__ folders.
    if args.from_source:
        ENV["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="cold-start-no-bytecode-")
    sample(args.python, PORTAL), sample(args.python, BASELINE)  # warm the OS file cache for both
    portal, baseline = [], []
    for _ in range(args.runs):
        portal.append(sample(args.python, PORTAL))
        baseline.append(sample(args.python, BASELINE))
    portal_median, baseline_median = statistics.median(portal), statistics.median(baseline)
    print(f"interpreter:            {args.python}")
    print(f"runs per variant:       {args.runs}")
    print(f"bytecode:               {'none (all compiled from source)' if args.from_source else 'where present'}")
    print(f"baseline median:        {baseline_median:7.1f} ms  (FastAPI + Mangum + boto3 DynamoDB client)")
    print(f"portal median:          {portal_median:7.1f} ms  (app.handler, GET /health, v2 event)")
    print(
        f"portal p90 / baseline p90: {sorted(portal)[int(0.9 * len(portal))]:.1f} / "
        f"{sorted(baseline)[int(0.9 * len(baseline))]:.1f} ms"
    )
    print(f"ratio portal/baseline:  {portal_median / baseline_median:7.2f}  (goal <= 1.30)")


if __name__ == "__main__":
    main()
