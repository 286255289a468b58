"""The AWS services besides the stores (app/aws.py), on moto: the signing secret from SSM, job
messages to SQS, and the choice of file storage (S3 or a local folder)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from app.config import ConfigurationError
from app.migration.worker import MESSAGE_KIND, SqsDispatcher
from app.runtime import Runtime
from app.secrets import resolve_signing_secret
from app.storage.blobs import LocalBlobStore, S3BlobStore, create_blob_store
from tests.support import TEST_SECRET, make_settings

REGION = "eu-west-1"
PARAMETER = "/portal/test/jwt-secret"


@pytest.fixture(autouse=True)
def aws() -> Iterator[None]:
    with mock_aws():
        yield


def test_the_signing_secret_is_read_from_ssm() -> None:
    boto3.client("ssm", region_name=REGION).put_parameter(Name=PARAMETER, Value=TEST_SECRET, Type="SecureString")
    settings = make_settings(app_env="prod", jwt_secret=None, jwt_secret_ssm_parameter=PARAMETER)
    assert resolve_signing_secret(settings) == TEST_SECRET.encode()


def test_a_short_secret_in_ssm_is_refused_outside_local() -> None:
    boto3.client("ssm", region_name=REGION).put_parameter(Name=PARAMETER, Value="short", Type="SecureString")
    settings = make_settings(app_env="prod", jwt_secret=None, jwt_secret_ssm_parameter=PARAMETER)
    with pytest.raises(ConfigurationError, match="JWT_SECRET_SSM_PARAMETER"):
        resolve_signing_secret(settings)


def test_a_job_is_handed_to_the_queue_as_one_message() -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="portal-jobs")["QueueUrl"]
    SqsDispatcher(Runtime(make_settings(jobs_queue_url=url)), url).submit("job-1")
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(message["Body"]) for message in messages] == [{"kind": MESSAGE_KIND, "job_id": "job-1"}]


def test_job_files_go_to_the_bucket_when_one_is_set(tmp_path: Path) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="portal-files", CreateBucketConfiguration={"LocationConstraint": REGION})
    blobs = create_blob_store(make_settings(uploads_bucket="portal-files", data_dir=tmp_path))
    assert isinstance(blobs, S3BlobStore)
    blobs.put_file("uploads/j1/input.csv", _file(tmp_path), content_type="text/csv")
    assert s3.get_object(Bucket="portal-files", Key="uploads/j1/input.csv")["Body"].read() == b"uid\r\n"


def test_job_files_stay_under_the_data_dir_without_a_bucket(tmp_path: Path) -> None:
    blobs = create_blob_store(make_settings(data_dir=tmp_path))
    assert isinstance(blobs, LocalBlobStore)
    blobs.put_file("uploads/j1/input.csv", _file(tmp_path), content_type="text/csv")
    assert (tmp_path / "files" / "uploads" / "j1" / "input.csv").read_bytes() == b"uid\r\n"


def _file(folder: Path) -> Path:
    path = folder / "input.csv"
    path.write_bytes(b"uid\r\n")
    return path
