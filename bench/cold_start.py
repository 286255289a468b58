"""Cold start as Lambda sees it: a fresh process per sample, timed to the handler's first answer.

Each sample is a new Python process (as a new Lambda execution environment would be) that builds
its handler and answers one API Gateway v2 `GET /health` event, takes its clock readings, then
ends with `os._exit(0)`: Lambda never waits for an interpreter's teardown, so no figure includes
it. Two figures per sample, both ending at the answer:

- **init + first answer**: from the first line of the sample's code (the interpreter is up) to the
  answer: importing and building the handler (Lambda's init phase) plus the first invocation.
- **from spawn**: from just before the process is started, so the interpreter's own start too.

The baseline, interleaved with the portal in the same run, is a bare FastAPI + Mangum app that
imports boto3, creates a DynamoDB client and has a `GET /subscribers/{uid}` route doing one
GetItem. Prints medians, the spread (min-max) and the ratio. Without `--artifact`, each sample
then times its first `GET /subscribers/{uid}` (the portal's with an operator's token: user and
session reads, then the subscriber) against a moto server seeded through the app's services.

    python bench/cold_start.py [--runs 15] [--python PATH] [--from-source]  # else app/ compiled first
    python bench/cold_start.py --artifact .serverless/subscriber-portal.zip [--runs 11]

`make bench` runs the first form with an interpreter whose environment holds exactly
`requirements/lambda.txt` (dev-only packages such as cryptography change which backends libraries
like python-jose load). `--artifact` measures the packaged zip itself on a CPython 3.12: unzipped
twice into read-only folders, as shipped (with its bytecode) and with every `__pycache__` removed,
the runtime-provided boto3 beside them, no bytecode written; four variants interleaved.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from infra.package_bytecode import find_python312  # noqa: E402
from tests.lambda_events import http_v2  # noqa: E402

EVENT = json.dumps(http_v2("GET", "/health"))
SUBSCRIBER = "bench-0001"

# {init} builds `handler`; the clock readings are printed only once the answers are checked. A
# second event, if given, is the first real request after init (its own time, measured alone).
SAMPLE = """
import time
started = time.monotonic_ns()
import json, os, sys
{init}
response = handler(json.loads(sys.argv[1]), None)
answered = time.monotonic_ns()
assert response["statusCode"] == 200, response
read = 0
if len(sys.argv) > 2:
    read_started = time.monotonic_ns()
    response = handler(json.loads(sys.argv[2]), None)
    read = time.monotonic_ns() - read_started
    assert response["statusCode"] == 200, response
sys.stdout.write(f"{{started}} {{answered}} {{read}}\\n")
sys.stdout.flush()
os._exit(0)
"""

PORTAL = SAMPLE.format(init="from app.handler import handler")

BASELINE = SAMPLE.format(
    init="""
import boto3
from fastapi import FastAPI
from mangum import Mangum
app = FastAPI()
client = boto3.client("dynamodb", region_name="eu-west-1", endpoint_url=os.environ.get("DYNAMODB_ENDPOINT_URL"))
@app.get("/health")
def health():
    return {"status": "ok"}
@app.get("/subscribers/{uid}")
def subscriber(uid: str):
    key = {"PK": {"S": os.environ["BENCH_PK"]}, "SK": {"S": os.environ["BENCH_SK"]}}  # the bench's subscriber
    return client.get_item(TableName=os.environ["DYNAMODB_TABLE"], Key=key)["Item"]
handler = Mangum(app, lifespan="off")
"""
)

# As deployed: not local, so no local engine, no table creation and no demo data.
ENV = {
    "PATH": os.environ.get("PATH", ""),
    "APP_ENV": "dev",
    "JWT_SECRET": "bench-secret-bench-secret-bench-secret-0123",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_REGION": "eu-west-1",
    "LOG_LEVEL": "WARNING",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONNOUSERSITE": "1",
}

# What the Lambda Python runtime provides beside the package (serverless.yml noDeploy), plus six.
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "urllib3", "six"}


@dataclass
class Variant:
    name: str
    command: list[str]
    env: dict[str, str]
    cwd: Path
    init_and_answer: list[float] = field(default_factory=list)
    from_spawn: list[float] = field(default_factory=list)
    first_read: list[float] = field(default_factory=list)

    def sample(self) -> None:
        spawned = time.monotonic_ns()
        result = subprocess.run(self.command, cwd=self.cwd, env=self.env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise SystemExit(f"{self.name}: sample failed:\n{result.stdout}\n{result.stderr}")
        started, answered, read = map(int, result.stdout.split())
        self.init_and_answer.append((answered - started) / 1e6)
        self.from_spawn.append((answered - spawned) / 1e6)
        if read:
            self.first_read.append(read / 1e6)


def summary(samples: list[float]) -> str:
    return f"{statistics.median(samples):7.1f} ms  ({min(samples):.0f}-{max(samples):.0f})"


def run(variants: list[Variant], runs: int) -> None:
    for variant in variants:  # warm the OS file cache; not counted
        variant.sample()
        variant.init_and_answer.clear()
        variant.from_spawn.clear()
        variant.first_read.clear()
    for _ in range(runs):
        for variant in variants:
            variant.sample()
    width = max(len(variant.name) for variant in variants)
    print(f"runs per variant: {runs} (interleaved); median (min-max), every figure ends at the answer")
    print(f"{'':{width}}  {'init + first answer':>26}  {'from spawn':>26}")
    for variant in variants:
        print(f"{variant.name:{width}}  {summary(variant.init_and_answer):>26}  {summary(variant.from_spawn):>26}")
    for variant in variants:
        if variant.first_read:
            print(f"{variant.name:{width}}  then its first GET /subscribers/{{uid}}: {summary(variant.first_read)}")


def ratio(portal: Variant, baseline: Variant) -> str:
    median = statistics.median
    init = median(portal.init_and_answer) / median(baseline.init_and_answer)
    spawn = median(portal.from_spawn) / median(baseline.from_spawn)
    return (
        f"ratio {portal.name} / {baseline.name}: {init:.2f} init + first answer, {spawn:.2f} from spawn (goal <= 1.30)"
    )


def seeded_table(endpoint: str, env: dict[str, str]) -> str:
    """The table on moto's server with one operator and subscriber `bench-0001`; returns the
    operator's access token. Written by this (development) interpreter through the app's own
    services, so the samples read exactly what the API writes."""
    import boto3

    from app.auth.deps import auth_service_of
    from app.auth.schemas import UserCreate
    from app.config import Settings
    from app.runtime import Runtime
    from app.storage.dynamodb.schema import table_definition
    from app.storage.records import Role
    from app.subscribers.schemas import parse_subscriber
    from app.subscribers.service import SubscriberService

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):  # moto's fake credentials, for the clients here
        os.environ[name] = env[name]
    settings = Settings(
        app_env="dev",
        dynamodb_endpoint_url=endpoint,
        dynamodb_table=env["DYNAMODB_TABLE"],
        aws_region=env["AWS_REGION"],
        jwt_secret=env["JWT_SECRET"],
    )
    boto3.client("dynamodb", region_name=settings.aws_region, endpoint_url=endpoint).create_table(
        **table_definition(settings.dynamodb_table)
    )
    runtime = Runtime(settings)
    auth = auth_service_of(runtime)
    password = "cold-start-bench-operator-password"
    auth.create_user("bench", UserCreate(username="operator", password=password, role=Role.OPERATOR, full_name="Bench"))
    row = {"uid": SUBSCRIBER, "msisdn": "+447911123401", "imsi": "234150000000401", "first_name": "Ada"}
    row |= {"last_name": "Lovelace", "status": "ACTIVE", "plan": "GOLD"}
    SubscriberService(runtime.store, settings).create("bench", parse_subscriber(row, phone_region="GB"))
    return auth.login("operator", password, client_ip="127.0.0.1").access_token


def measure_environment(python: str, runs: int, from_source: bool) -> None:
    from app.storage.dynamodb.subscribers import subscriber_key
    from tests.servers import moto_server  # development venv only; the samples don't use it

    env = {**ENV, "DYNAMODB_TABLE": "cold-start-bench"}
    if from_source:  # an empty cache folder: every module is compiled in every sample
        env["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="cold-start-no-bytecode-")
    else:  # as the package ships: the app compiled too, not only the venv's packages
        subprocess.run([python, "-m", "compileall", "-q", str(ROOT / "app")], check=True)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request
    with moto_server() as endpoint:
        env["DYNAMODB_ENDPOINT_URL"] = endpoint
        env["BENCH_PK"], env["BENCH_SK"] = subscriber_key(SUBSCRIBER)
        token = seeded_table(endpoint, env)
        read = json.dumps(http_v2("GET", f"/subscribers/{SUBSCRIBER}", headers={"authorization": f"Bearer {token}"}))
        baseline = Variant("baseline", [python, "-c", BASELINE, EVENT, read], env, ROOT)
        portal = Variant("portal", [python, "-c", PORTAL, EVENT, read], env, ROOT)
        print(f"interpreter: {python}")
        print(f"bytecode:    {'none (all compiled from source)' if from_source else 'everywhere (app/ too)'}")
        print(f"store:       moto server on {endpoint} (the first read includes its HTTP round trips)")
        run([baseline, portal], runs)
    print(ratio(portal, baseline))


def read_only(tree: Path) -> None:
    for path in [tree, *tree.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & ~0o222)


def measure_artifact(artifact: Path, python: str, runs: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="cold-start-artifact-"))
    try:
        compiled, source, runtime = work / "compiled", work / "source", work / "runtime"
        with zipfile.ZipFile(artifact) as archive:
            names = archive.namelist()
            archive.extractall(compiled)
            archive.extractall(source, [name for name in names if "__pycache__/" not in name])
        # The runtime's boto3 is compiled where Lambda installs it; pip of the 3.12 compiles it here.
        lock = (ROOT / "requirements" / "lambda.txt").read_text().splitlines()
        provided = [line.split()[0] for line in lock if line.split("==")[0] in RUNTIME_PROVIDED]
        subprocess.run(
            [
                python,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--root-user-action=ignore",
                "--no-deps",
                "--target",
                str(runtime),
                *provided,
            ],
            check=True,
        )
        for tree in (compiled, source, runtime):
            read_only(tree)
        variants = []
        for label, task in (("compiled", compiled), ("source", source)):
            env = {**ENV, "PYTHONPATH": os.pathsep.join([str(task), str(runtime)])}
            for name, code in (("baseline", BASELINE), ("portal", PORTAL)):
                variants.append(Variant(f"{name} ({label})", [python, "-S", "-c", code, EVENT], env, work))
        print(f"artifact:    {artifact} ({artifact.stat().st_size:,} bytes, {len(names)} entries)")
        print(f"interpreter: {python}")
        run(variants, runs)
        print(ratio(variants[1], variants[0]))
        print(ratio(variants[3], variants[2]))
        print(ratio(variants[3], variants[1]).replace("goal <= 1.30", "source vs compiled"))
        if any(source.rglob("__pycache__")):
            raise SystemExit("bytecode was written into the source-only tree: the figures are not from source")
    finally:
        for path in [work, *work.rglob("*")]:
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o200)
        shutil.rmtree(work)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--python", help="interpreter to measure (default: this one; with --artifact: a CPython 3.12)")
    parser.add_argument(
        "--from-source",
        action="store_true",
        help="compile every module from source in every sample (no bytecode at all)",
    )
    parser.add_argument("--artifact", type=Path, help="measure this Lambda zip (make package) instead")
    args = parser.parse_args()
    if args.artifact:
        measure_artifact(args.artifact, args.python or find_python312(), args.runs)
    else:
        measure_environment(args.python or sys.executable, args.runs, args.from_source)


if __name__ == "__main__":
    main()
