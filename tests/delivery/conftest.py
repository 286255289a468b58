"""Fixtures for the delivery checks: the packaged CloudFormation template and the Lambda function
running under serverless-offline.

`packaged_template` builds `.serverless/` with `osls package --stage dev` when it is missing or
older than its inputs (`make test` builds it first, so normally nothing happens here).

`offline_api` starts, once per session, a moto server on 127.0.0.1 holding the stage's bucket,
queue and SSM secret, the stage's table on the session's DynamoDB Local (AWS's own engine, stricter
than moto), and `osls offline start --stage dev` in front of them. The function
runs the real handler (Mangum, settings for APP_ENV=dev, JWT secret read from SSM) in the
virtualenv's Python. End-to-end tests use `offline_api.base_url` for HTTP, `offline_api.invoke()`
for SQS/S3/scheduled events (serverless-offline emulates only HTTP and schedules) and
`offline_api.client(service)` to reach the fake AWS.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.servers import free_port, moto_server
from tests.webhooks.support import Receiver, loopback_certificate, receiver

ROOT = Path(__file__).resolve().parents[2]
SERVERLESS_DIR = ROOT / ".serverless"
TEMPLATE = SERVERLESS_DIR / "cloudformation-template-update-stack.json"
ARTIFACT = SERVERLESS_DIR / "subscriber-portal.zip"
STATE = SERVERLESS_DIR / "serverless-state.json"
SERVICE = "subscriber-portal"
STAGE = "dev"
REGION = "eu-west-1"

PACKAGE_TIMEOUT_S = 600  # pip downloads Linux wheels on a cold cache
OFFLINE_START_TIMEOUT_S = 90
OFFLINE_STOP_TIMEOUT_S = 15


def require_node() -> None:
    """The only reason to skip: Node.js is not installed on this machine at all."""
    missing = [tool for tool in ("node", "npm", "npx") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"Node.js tooling not installed ({', '.join(missing)}): serverless checks need it")


# Machine set-up the tools need (package indexes, proxies, CA bundles), never app settings.
PASSED_THROUGH = {
    "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "TERM", "SLS_DEBUG",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS",
}  # fmt: skip
PASSED_THROUGH_PREFIXES = ("PIP_", "NPM_CONFIG_", "UV_", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


def tool_env(**extra: str) -> dict[str, str]:
    """A small, explicit environment: the virtualenv's python3 first on PATH (serverless-python-
    requirements and serverless-offline both run `python3`), nothing inherited that could change
    what the app does (MONGODB_URI, JWT_SECRET, AWS profiles...)."""
    venv_bin = str(Path(sys.executable).parent)
    env = {
        name: value
        for name, value in os.environ.items()
        if name in PASSED_THROUGH or name.upper().startswith(PASSED_THROUGH_PREFIXES)
    }
    env["PATH"] = os.pathsep.join([venv_bin, os.environ.get("PATH", "")])
    if sys.prefix != sys.base_prefix:
        env["VIRTUAL_ENV"] = sys.prefix
    env["CI"] = "true"  # no interactive prompts, no spinners
    env.update(extra)
    return env


def ensure_node_modules() -> None:
    if (ROOT / "node_modules" / ".bin" / "osls").exists():
        return
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ROOT, env=tool_env(), check=True, timeout=600)


def osls_command(*args: str) -> list[str]:
    # Called by name: serverless-offline's peer `serverless` (v4) must never be the one that runs.
    return ["npx", "--no", "osls", *args]


def package_inputs() -> list[Path]:
    inputs = [
        ROOT / "serverless.yml",
        ROOT / "package-lock.json",
        ROOT / "requirements" / "lambda.txt",
        *sorted((ROOT / "infra").glob("*.yml")),
        ROOT / "infra" / "bytecode-plugin.js",
        ROOT / "infra" / "package_bytecode.py",
        *sorted((ROOT / "app").rglob("*.py")),
    ]
    return [path for path in inputs if path.exists()]


def template_is_stale() -> bool:
    if not (TEMPLATE.exists() and ARTIFACT.exists() and STATE.exists()):
        return True
    # Someone may have packaged another stage by hand since.
    if json.loads(STATE.read_text()).get("service", {}).get("provider", {}).get("stage") != STAGE:
        return True
    built = min(path.stat().st_mtime for path in (TEMPLATE, ARTIFACT, STATE))
    return any(path.stat().st_mtime > built for path in package_inputs())


def build_package() -> None:
    ensure_node_modules()
    result = subprocess.run(
        osls_command("package", "--stage", STAGE),
        cwd=ROOT,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=PACKAGE_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"osls package failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")


@pytest.fixture(scope="session")
def packaged() -> Path:
    """`.serverless/` for stage dev, fresh with respect to serverless.yml, infra/, the lock and app/."""
    require_node()
    if template_is_stale():
        build_package()
    return SERVERLESS_DIR


@pytest.fixture(scope="session")
def template(packaged: Path) -> dict[str, Any]:
    return json.loads(TEMPLATE.read_text())


@pytest.fixture(scope="session")
def service_state(packaged: Path) -> dict[str, Any]:
    return json.loads(STATE.read_text())


# --- serverless-offline ---------------------------------------------------------------------------


FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


@dataclass(frozen=True)
class OfflineApi:
    """The function served by serverless-offline, and the fake AWS behind it."""

    base_url: str  # HTTP API emulation, e.g. http://127.0.0.1:PORT (no stage prefix: $default)
    lambda_url: str  # serverless-offline's Lambda Invoke API, for non-HTTP events
    aws_endpoint_url: str  # moto server: S3, SQS, SSM, EventBridge
    dynamodb_endpoint_url: str  # DynamoDB Local
    table_name: str
    uploads_bucket: str
    jobs_queue_url: str
    jwt_secret: str
    webhook_receiver: Receiver
    event_bus_name: str = f"{SERVICE}-{STAGE}"
    email_sender: str = "bookings@portal.example"
    function_name: str = f"{SERVICE}-{STAGE}-api"
    region: str = REGION
    log_path: Path = field(default=Path())

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.dynamodb_endpoint_url if service.startswith("dynamodb") else self.aws_endpoint_url,
            region_name=self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            aws_session_token="testing",
        )

    def invoke(self, event: dict[str, Any], timeout: float = 60) -> Any:
        """Invoke the function with any event (SQS, S3, {"task": ...}) and return its result."""
        request = urllib.request.Request(
            f"{self.lambda_url}/2015-03-31/functions/{self.function_name}/invocations",
            data=json.dumps(event).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")

    def log_tail(self, chars: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


def provision_stage(api: OfflineApi) -> None:
    """What CloudFormation and the first-deploy steps create in AWS, created in moto and DynamoDB Local instead."""
    from app.storage.dynamodb.schema import TTL_ATTRIBUTE, table_definition

    dynamodb = api.client("dynamodb")
    # As infra/dynamodb.yml: the stream the function relays events from (DynamoDB Local has one).
    stream = {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    dynamodb.create_table(**table_definition(api.table_name), StreamSpecification=stream)
    dynamodb.update_time_to_live(
        TableName=api.table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )
    s3 = api.client("s3")
    s3.create_bucket(Bucket=api.uploads_bucket, CreateBucketConfiguration={"LocationConstraint": api.region})
    api.client("sqs").create_queue(QueueName=api.jobs_queue_url.rsplit("/", 1)[-1])
    api.client("events").create_event_bus(Name=api.event_bus_name)
    api.client("ses").verify_email_identity(EmailAddress=api.email_sender)
    api.client("ssm").put_parameter(Name=f"/{SERVICE}/{STAGE}/jwt-secret", Value=api.jwt_secret, Type="SecureString")


def wait_until_serving(api: OfflineApi, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + OFFLINE_START_TIMEOUT_S
    last_error = "no attempt"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"osls offline exited with {process.returncode}:\n{api.log_tail()}")
        try:
            with urllib.request.urlopen(f"{api.base_url}/health", timeout=10) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            last_error = repr(exc)
        time.sleep(0.5)
    pytest.fail(f"osls offline not serving after {OFFLINE_START_TIMEOUT_S}s ({last_error}):\n{api.log_tail()}")


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """npx -> node -> /bin/sh -> python3: all share the process group started for npx."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=OFFLINE_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=OFFLINE_STOP_TIMEOUT_S)
    except ProcessLookupError:
        pass
    # Handler processes may outlive the group leader for a moment; make sure none is left.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def webhook_receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Receiver, Path]]:
    """An integrator's HTTPS receiver on 127.0.0.1, with its own CA: (receiver, the CA's PEM)."""
    certificate = loopback_certificate(tmp_path_factory.mktemp("receiver"))
    with receiver(tls=certificate) as hook:
        yield hook, certificate[0]


@pytest.fixture(scope="session")
def offline_api(moto_endpoint: str, local_engine: str, webhook_receiver: tuple[Receiver, Path]) -> Iterator[OfflineApi]:
    require_node()
    ensure_node_modules()
    http_port, lambda_port = free_port(), free_port()
    log_dir = Path(tempfile.mkdtemp(prefix="osls-offline-"))
    hook, receiver_ca = webhook_receiver
    api = OfflineApi(
        webhook_receiver=hook,
        base_url=f"http://127.0.0.1:{http_port}",
        lambda_url=f"http://127.0.0.1:{lambda_port}",
        aws_endpoint_url=moto_endpoint,
        dynamodb_endpoint_url=local_engine,
        table_name=f"{SERVICE}-{STAGE}",
        uploads_bucket=f"{SERVICE}-{STAGE}-uploads",
        jobs_queue_url=f"{moto_endpoint}/123456789012/{SERVICE}-{STAGE}-jobs",
        jwt_secret="offline-harness-signing-secret-0123456789abcdef",
        log_path=log_dir / "offline.log",
    )
    provision_stage(api)

    # serverless-offline cannot resolve CloudFormation references (Ref/GetAtt), so the four
    # resource identifiers come in as --param (serverless.yml, `params`); everything else is the
    # dev stage as deployed. AWS_ENDPOINT_URL sends every boto3 client (SSM, S3, SQS, EventBridge) to moto,
    # AWS_ENDPOINT_URL_DYNAMODB the DynamoDB client to DynamoDB Local; serverless-offline passes
    # AWS_* variables through to the handler process.
    command = osls_command(
        "offline",
        "start",
        "--stage",
        STAGE,
        "--region",
        REGION,
        "--host",
        "127.0.0.1",
        "--httpPort",
        str(http_port),
        "--lambdaPort",
        str(lambda_port),
        "--param",
        f"tableName={api.table_name}",
        "--param",
        f"uploadsBucket={api.uploads_bucket}",
        "--param",
        f"jobsQueueUrl={api.jobs_queue_url}",
        "--param",
        f"eventBusName={api.event_bus_name}",
        # Messages by email through SES (moto), and webhooks to the receiver above: a private
        # address the stage allows, on https with the receiver's CA (docs/events.md).
        "--param",
        "notificationsEnabled=true",
        "--param",
        f"notificationsEmailSender={api.email_sender}",
        "--param",
        "notificationsChannels=email",
        "--param",
        "webhookAllowedNetworks=127.0.0.1/32",
        "--param",
        f"webhookCaBundle={receiver_ca}",
    )
    env = tool_env(AWS_ENDPOINT_URL=moto_endpoint, AWS_ENDPOINT_URL_DYNAMODB=local_engine, **FAKE_CREDENTIALS)
    with api.log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until_serving(api, process)
        yield api
    finally:
        stop_process_group(process)
        shutil.rmtree(log_dir, ignore_errors=True)
