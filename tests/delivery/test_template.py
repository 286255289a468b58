"""The packaged stack (`osls package --stage dev`): what serverless.yml and infra/*.yml promise.

The table test compares the CloudFormation table with `schema.table_definition()`, so the key
design in code and the deployed table cannot drift apart.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from app.storage.dynamodb.schema import TTL_ATTRIBUTE, table_definition
from infra.package_bytecode import NOT_COMPILED, PYC_TAG, NoPython312, find_python312
from tests.delivery.conftest import (
    ARTIFACT,
    ROOT,
    SERVICE,
    STAGE,
    osls_command,
    require_node,
    tool_env,
)
from tests.lambda_events import http_v2

Template = dict[str, Any]

APP_HANDLER = "app.handler.handler"
# `s3: existing: true` makes the framework add one helper function (a CloudFormation custom
# resource) that attaches the bucket notification after both bucket and function exist.
FRAMEWORK_HELPERS = {"CustomDashresourceDashexistingDashs3LambdaFunction"}
# What the Lambda Python runtime brings (serverless.yml noDeploy), plus six for python-dateutil.
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "urllib3", "six"}
ELF_MACHINE_X86_64 = 62
LAMBDA_ZIP_LIMIT = 50 * 1024 * 1024  # direct upload limit
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024


def resources(template: Template, kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res["Type"] == kind}


def one(template: Template, kind: str) -> dict[str, Any]:
    found = resources(template, kind)
    assert len(found) == 1, f"expected one {kind}, found {sorted(found)}"
    return next(iter(found.values()))


def app_function(template: Template) -> dict[str, Any]:
    functions = [
        res
        for res in resources(template, "AWS::Lambda::Function").values()
        if res["Properties"].get("Handler") == APP_HANDLER
    ]
    assert len(functions) == 1
    return functions[0]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        statement
        for policy in role["Properties"].get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
    ]


def resource_text(resource: Any) -> str:
    """A policy Resource as text: literal ARNs as they are, intrinsics as their JSON."""
    return resource if isinstance(resource, str) else json.dumps(resource, sort_keys=True)


# --- functions and events ---------------------------------------------------------------------------


def test_exactly_one_function_serves_everything(template: Template, service_state: dict[str, Any]) -> None:
    assert list(service_state["service"]["functions"]) == ["api"]
    functions = resources(template, "AWS::Lambda::Function")
    app = app_function(template)
    assert set(functions) - {name for name, res in functions.items() if res is app} <= FRAMEWORK_HELPERS

    props = app["Properties"]
    assert props["Runtime"] == "python3.12"
    assert props["Architectures"] == ["x86_64"]  # the packaged wheels are manylinux x86_64
    assert props["FunctionName"] == f"{SERVICE}-{STAGE}-api"
    assert 30 <= props["Timeout"] <= 900


def test_http_api_routes_everything_to_the_function(template: Template) -> None:
    route = one(template, "AWS::ApiGatewayV2::Route")["Properties"]
    assert route["RouteKey"] == "$default"

    integration = one(template, "AWS::ApiGatewayV2::Integration")["Properties"]
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert integration["PayloadFormatVersion"] == "2.0"
    assert "ApiLambdaFunction" in json.dumps(integration["IntegrationUri"])
    assert one(template, "AWS::ApiGatewayV2::Api")["Properties"]["ProtocolType"] == "HTTP"
    # No API-level CORS: the app answers preflights itself from CORS_ORIGINS.
    assert "CorsConfiguration" not in one(template, "AWS::ApiGatewayV2::Api")["Properties"]


def event_source_mapping(template: Template, source: dict[str, Any]) -> dict[str, Any]:
    (mapping,) = [
        res["Properties"]
        for res in resources(template, "AWS::Lambda::EventSourceMapping").values()
        if res["Properties"]["EventSourceArn"] == source
    ]
    return mapping


def test_the_function_has_two_event_source_mappings(template: Template) -> None:
    assert sorted(
        json.dumps(res["Properties"]["EventSourceArn"])
        for res in resources(template, "AWS::Lambda::EventSourceMapping").values()
    ) == sorted(
        json.dumps(arn) for arn in ({"Fn::GetAtt": ["JobsQueue", "Arn"]}, {"Fn::GetAtt": ["PortalTable", "StreamArn"]})
    )


def test_jobs_queue_triggers_the_function_with_partial_batch_responses(template: Template) -> None:
    mapping = event_source_mapping(template, {"Fn::GetAtt": ["JobsQueue", "Arn"]})
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 1 <= mapping["BatchSize"] <= 10


def test_uploads_trigger_the_function(template: Template) -> None:
    notification = one(template, "Custom::S3")["Properties"]
    assert notification["BucketName"] == {"Ref": "UploadsBucket"}
    assert notification["FunctionName"] == app_function(template)["Properties"]["FunctionName"]
    assert notification["BucketConfigs"] == [{"Event": "s3:ObjectCreated:*", "Rules": [{"Prefix": "uploads/"}]}]


def test_schedules_send_the_sweeps(template: Template) -> None:
    schedules = {
        json.loads(target["Input"])["task"]: rule["Properties"]["ScheduleExpression"]
        for rule in resources(template, "AWS::Events::Rule").values()
        for target in rule["Properties"]["Targets"]
    }
    assert schedules == {
        "sweep-jobs": "rate(5 minutes)",
        # The outbox drain (what the stream could not relay), webhook retries, booking reminders.
        "relay-events": "rate(1 minute)",
        "webhooks-retry": "rate(1 minute)",
        "notifications-reminders": "rate(1 minute)",
    }
    # Each names a task the handler knows: an unknown one would fail every minute.
    for task in schedules:
        assert handle_scheduled_task_exists(task), task


def handle_scheduled_task_exists(name: str) -> bool:
    # What app.handler imports before running a task, and the app it builds at init.
    import app.changefeed.consumers
    import app.changefeed.drain
    import app.migration.worker  # noqa: F401
    from app import events

    return name in events.scheduled_tasks


def test_environment_is_wired_to_the_stack(template: Template) -> None:
    env = app_function(template)["Properties"]["Environment"]["Variables"]

    assert env["APP_ENV"] == "dev"
    assert env["STORAGE_BACKEND"] == "dynamodb"
    assert env["DYNAMODB_TABLE"] == {"Ref": "PortalTable"}
    assert env["UPLOADS_BUCKET"] == {"Ref": "UploadsBucket"}
    assert env["JOBS_QUEUE_URL"] == {"Ref": "JobsQueue"}
    assert env["EVENT_BUS_NAME"] == {"Ref": "EventBus"}
    assert env["EVENTS_RELAY"] == "stream"
    assert env["NOTIFICATIONS_ENABLED"] == "false"  # until a stage configures a sender
    assert env["JWT_SECRET_SSM_PARAMETER"] == f"/{SERVICE}/{STAGE}/jwt-secret"
    assert env["LOG_LEVEL"] in {"DEBUG", "INFO", "WARNING", "ERROR"}
    assert "*" not in env["CORS_ORIGINS"].split(",")
    assert "JWT_SECRET" not in env  # never the secret itself
    # Every variable is a setting the app reads: a typo would silently fall back to a default.
    known = {name.upper() for name in Settings.model_fields}
    assert set(env) <= known, sorted(set(env) - known)


def test_logs_are_kept_for_a_bounded_time(template: Template) -> None:
    group = one(template, "AWS::Logs::LogGroup")["Properties"]
    assert group["LogGroupName"] == f"/aws/lambda/{SERVICE}-{STAGE}-api"
    assert group["RetentionInDays"] == 30


def test_outputs_name_the_api_and_its_resources(template: Template) -> None:
    assert {"HttpApiUrl", "TableName", "UploadsBucketName", "JobsQueueUrl"} <= set(template["Outputs"])


# --- IAM ------------------------------------------------------------------------------------------


def test_function_role_has_no_wildcard_resource(template: Template) -> None:
    role = template["Resources"]["IamRoleLambdaExecution"]
    assert app_function(template)["Properties"]["Role"] == {"Fn::GetAtt": ["IamRoleLambdaExecution", "Arn"]}

    allowed_suffix_wildcards = {
        # Lambda's own log group (the framework scopes it to this function's group).
        "log-group:/aws/lambda/subscriber-portal-dev*:*",
        "log-group:/aws/lambda/subscriber-portal-dev*:*:*",
        # Every GSI of the table, and the two key prefixes of the bucket.
        "${PortalTable.Arn}/index/*",
        "${UploadsBucket.Arn}/uploads/*",
        "${UploadsBucket.Arn}/exports/*",
    }
    for statement in statements(role):
        assert statement["Effect"] == "Allow"
        assert not any(action.endswith(":*") or action == "*" for action in as_list(statement["Action"]))
        for resource in as_list(statement["Resource"]):
            assert resource != "*", statement
            text = resource_text(resource)
            if "*" in text:
                assert any(text.endswith(f'{suffix}"}}') for suffix in allowed_suffix_wildcards), text


def test_framework_helper_role_is_scoped_to_this_bucket(template: Template) -> None:
    # The existing-bucket helper may edit this bucket's notifications and add the invoke
    # permission to a function of this account and region (the framework's own scoping).
    role = template["Resources"]["IamRoleCustomResourcesLambdaExecution"]
    for statement in statements(role):
        for resource in as_list(statement["Resource"]):
            assert resource != "*"
            text = resource_text(resource)
            if set(as_list(statement["Action"])) <= {"s3:PutBucketNotification", "s3:GetBucketNotification"}:
                assert '{"Ref": "UploadsBucket"}' in text
            else:
                assert set(as_list(statement["Action"])) == {
                    "lambda:AddPermission",
                    "lambda:RemovePermission",
                }
                assert '"function", "*"' in text
                assert '{"Ref": "AWS::AccountId"}' in text


STREAM_READ = {"dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:DescribeStream", "dynamodb:ListStreams"}


def test_dynamodb_access_is_the_table_and_its_indexes_only(template: Template) -> None:
    dynamo = [
        s
        for s in statements(template["Resources"]["IamRoleLambdaExecution"])
        if any(action.startswith("dynamodb:") for action in as_list(s["Action"]))
    ]
    # Reading the stream (granted by the framework from the stream event) is its own statement.
    stream = [s for s in dynamo if set(as_list(s["Action"])) <= STREAM_READ]
    assert [as_list(s["Resource"]) for s in stream] == [[{"Fn::GetAtt": ["PortalTable", "StreamArn"]}]]
    dynamo = [s for s in dynamo if s not in stream]
    assert dynamo
    for statement in dynamo:
        assert sorted(map(resource_text, as_list(statement["Resource"]))) == sorted(
            [
                resource_text({"Fn::GetAtt": ["PortalTable", "Arn"]}),
                resource_text({"Fn::Sub": "${PortalTable.Arn}/index/*"}),
            ]
        )
        # The stack owns the table's shape; the function only reads and writes items.
        assert not {"dynamodb:CreateTable", "dynamodb:DeleteTable", "dynamodb:UpdateTable"} & set(
            as_list(statement["Action"])
        )


def test_jwt_secret_parameter_is_the_only_ssm_access(template: Template) -> None:
    ssm = [
        s
        for s in statements(template["Resources"]["IamRoleLambdaExecution"])
        if any(action.startswith("ssm:") for action in as_list(s["Action"]))
    ]
    assert [as_list(s["Action"]) for s in ssm] == [["ssm:GetParameter"]]
    assert as_list(ssm[0]["Resource"]) == [
        {
            "Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}"
            f":parameter/{SERVICE}/{STAGE}/jwt-secret"
        }
    ]


# --- data resources ---------------------------------------------------------------------------------


def test_table_matches_the_schema_in_code(template: Template) -> None:
    table = template["Resources"]["PortalTable"]["Properties"]
    expected = table_definition(table["TableName"])

    assert table["TableName"] == f"{SERVICE}-{STAGE}"
    assert table["BillingMode"] == expected["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == expected["KeySchema"]

    def by_name(items: list[dict[str, Any]], key: str) -> dict[str, Any]:
        return {item[key]: item for item in items}

    assert by_name(table["AttributeDefinitions"], "AttributeName") == by_name(
        expected["AttributeDefinitions"], "AttributeName"
    )
    assert by_name(table["GlobalSecondaryIndexes"], "IndexName") == by_name(
        expected["GlobalSecondaryIndexes"], "IndexName"
    )


def test_table_is_protected(template: Template) -> None:
    table = template["Resources"]["PortalTable"]["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True}


def test_uploads_bucket_is_private_encrypted_and_short_lived(template: Template) -> None:
    bucket = template["Resources"]["UploadsBucket"]["Properties"]
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    rules = bucket["LifecycleConfiguration"]["Rules"]
    expiry = {rule.get("Prefix"): rule.get("ExpirationInDays") for rule in rules if rule["Status"] == "Enabled"}
    assert expiry["uploads/"] == 7
    assert expiry["exports/"] == 7
    assert any("AbortIncompleteMultipartUpload" in rule for rule in rules)

    cors = bucket["CorsConfiguration"]["Fn::If"]
    assert cors[0] == "HasCorsOrigins"
    assert cors[1]["CorsRules"][0]["AllowedMethods"] == ["PUT", "GET", "HEAD"]


def test_jobs_queue_has_a_dead_letter_queue(template: Template) -> None:
    queue = template["Resources"]["JobsQueue"]["Properties"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["JobsDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 5,
    }
    # AWS: at least six times the function timeout, or messages are redelivered mid-work.
    assert queue["VisibilityTimeout"] >= 6 * app_function(template)["Properties"]["Timeout"]
    assert template["Resources"]["JobsDeadLetterQueue"]["Type"] == "AWS::SQS::Queue"


def test_prod_keeps_its_data_when_the_stack_goes(packaged: Path) -> None:
    """dev (above) deletes with the stack; prod's resolved configuration retains table and bucket."""
    require_node()
    result = subprocess.run(
        osls_command("print", "--stage", "prod", "--format", "json"),
        cwd=ROOT,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads(result.stdout[result.stdout.index("{") :])
    prod = config["resources"]
    resolved = {name: res for part in as_list(prod) for name, res in part.get("Resources", {}).items()}
    for name in ("PortalTable", "UploadsBucket"):
        assert resolved[name]["DeletionPolicy"] == "Retain"
        assert resolved[name]["UpdateReplacePolicy"] == "Retain"
    assert resolved["PortalTable"]["Properties"]["DeletionProtectionEnabled"] is True
    assert config["provider"]["environment"]["APP_ENV"] == "prod"


def test_dev_data_goes_with_the_stack(template: Template) -> None:
    for name in ("PortalTable", "UploadsBucket"):
        assert template["Resources"][name]["DeletionPolicy"] == "Delete"


# --- the artifact ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def artifact(packaged: Path) -> Iterator[zipfile.ZipFile]:
    with zipfile.ZipFile(ARTIFACT) as archive:
        yield archive


def test_artifact_ships_the_app_and_its_linux_dependencies_only(artifact: zipfile.ZipFile) -> None:
    names = artifact.namelist()
    tops = {name.split("/", 1)[0] for name in names}

    assert "app/handler.py" in names
    assert not tops & {"tests", "bench", "docs", "infra", "node_modules", ".venv", ".data", "requirements"}
    assert not tops & {"boto3", "botocore", "s3transfer"}  # provided by the Lambda runtime
    assert not any(name.endswith(".pyc") and "__pycache__/" not in name for name in names)
    # Compiled modules were built for the Lambda (CPython 3.12, Linux x86_64), not this machine.
    extensions = [name for name in names if name.endswith(".so")]
    assert any("pydantic_core" in name for name in extensions)
    for name in extensions:
        assert "cpython-312-x86_64-linux-gnu" in name or ".abi3." in name or "cpython" not in name, name
        header = artifact.read(name)[:20]
        assert header[:4] == b"\x7fELF", name  # Linux, not macOS or Windows
        assert int.from_bytes(header[18:20], "little") == ELF_MACHINE_X86_64, name
    # Package metadata stays (importlib.metadata look-ups at run time).
    assert any(name.startswith("email_validator-") and "dist-info" in name for name in names)


PYC_MAGIC_312 = (3531).to_bytes(2, "little") + b"\r\n"  # importlib.util.MAGIC_NUMBER of CPython 3.12
PYC_UNCHECKED_HASH = 0b01  # flags word of PEP 552: hash-based, not checked against the source


def test_artifact_ships_312_bytecode_for_every_module(artifact: zipfile.ZipFile) -> None:
    """Each module has its CPython 3.12 .pyc, hash-based (valid whatever mtimes extraction gives),
    and nothing else is compiled: no other version's, no leftovers of a removed module."""
    names = artifact.namelist()
    modules = [Path(name) for name in names if name.endswith(".py") and not NOT_COMPILED.search(name)]
    expected = {(module.parent / "__pycache__" / f"{module.stem}.{PYC_TAG}.pyc").as_posix() for module in modules}
    shipped = {name for name in names if "__pycache__/" in name}
    assert "app/__pycache__/handler.cpython-312.pyc" in shipped
    assert shipped == expected, (sorted(expected - shipped)[:5], sorted(shipped - expected)[:5])
    for name in sorted(shipped):
        header = artifact.read(name)[:8]
        assert header[:4] == PYC_MAGIC_312, name
        assert int.from_bytes(header[4:8], "little") == PYC_UNCHECKED_HASH, name


def test_packaging_without_python_312_stops_with_what_to_install(tmp_path: Path) -> None:
    nowhere = {"PATH": str(tmp_path), "HOME": str(tmp_path), "PYENV_ROOT": str(tmp_path)}
    with pytest.raises(NoPython312, match=r"No CPython 3\.12 found .* PYTHON312="):
        find_python312(nowhere)
    # An explicit choice that is not a 3.12 is refused, not silently replaced by another one.
    with pytest.raises(NoPython312, match=r"is not a working CPython 3\.12"):
        find_python312({**nowhere, "PYTHON312": sys.executable})


def test_artifact_fits_lambda_limits(artifact: zipfile.ZipFile) -> None:
    assert ARTIFACT.stat().st_size < LAMBDA_ZIP_LIMIT
    assert sum(info.file_size for info in artifact.infolist()) < LAMBDA_UNZIPPED_LIMIT


SMOKE = """
import importlib.machinery, importlib.util, inspect, json, pathlib, sys
task = pathlib.Path(sys.argv[2])
# Every module the handler imports from the package must load from its shipped bytecode: a .pyc
# the loader rejects (wrong version, stale hash) would be compiled from source here instead.
compiled_from_source = []
source_to_code = importlib.machinery.SourceFileLoader.source_to_code
def counting_source_to_code(self, data, path, *args, **kwargs):
    if pathlib.Path(path).is_relative_to(task):
        compiled_from_source.append(path)
    return source_to_code(self, data, path, *args, **kwargs)
importlib.machinery.SourceFileLoader.source_to_code = counting_source_to_code
event = json.loads(sys.argv[1])
from app.handler import handler
response = handler(event, None)
assert not compiled_from_source, compiled_from_source[:5]
# Each .pyc is the compilation of the source beside it (the hash the loader would check).
for pyc in task.rglob("__pycache__/*.pyc"):
    source = pyc.parent.parent / (pyc.name.split(".")[0] + ".py")
    assert pyc.read_bytes()[8:16] == importlib.util.source_hash(source.read_bytes()), pyc
# Tracebacks keep their source lines: the sources ship beside the bytecode.
assert "def handler(" in inspect.getsource(handler)
print(json.dumps(response))
"""


def test_artifact_answers_http_on_python_312(artifact: zipfile.ZipFile, tmp_path: Path) -> None:
    """Unzipped like Lambda does, with boto3 beside it as the runtime provides, on CPython 3.12."""
    python = find_python312()  # packaging needed one too
    task = tmp_path / "task"
    artifact.extractall(task)
    runtime = tmp_path / "runtime"
    lock = (ROOT / "requirements" / "lambda.txt").read_text().splitlines()
    provided = [line for line in lock if line.split("==")[0] in RUNTIME_PROVIDED]
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(runtime), *provided],
        check=True,
        capture_output=True,
        timeout=300,
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join([str(task), str(runtime)]),
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",  # /var/task is read-only
        "APP_ENV": "dev",
        "JWT_SECRET": "smoke-test-secret-that-is-long-enough-0123456789",
        "DYNAMODB_TABLE": "smoke",
        "AWS_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    result = subprocess.run(
        [python, "-S", "-c", SMOKE, json.dumps(http_v2("GET", "/health")), str(task)],
        cwd=tempfile.gettempdir(),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    response = json.loads(result.stdout.strip().splitlines()[-1])
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["environment"] == "dev"
