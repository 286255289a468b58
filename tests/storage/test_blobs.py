"""Job files: the same behaviour from a local folder and from S3 (moto)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from app.migration.readers import read_rows
from app.storage.base import RecordMissing
from app.storage.blobs import BlobStore, BlobTooLarge, LocalBlobStore, S3BlobStore


@pytest.fixture(params=["local", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param == "local":
        yield LocalBlobStore(tmp_path)
        return
    with mock_aws():
        client = boto3.client("s3", region_name="eu-west-1")
        client.create_bucket(Bucket="portal-files", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        yield S3BlobStore(client, "portal-files", serialize_calls=True)


def test_round_trip_streamed(blobs: BlobStore) -> None:
    content = b"uid,plan\r\n" + b"".join(f"s{n},GOLD\r\n".encode() for n in range(50_000))
    assert blobs.put_stream(
        "uploads/j1/input.csv", io.BytesIO(content), max_bytes=10**7, content_type="text/csv"
    ) == len(content)
    assert blobs.size("uploads/j1/input.csv") == len(content)
    with blobs.open("uploads/j1/input.csv") as stream:
        assert sum(1 for _ in read_rows(stream, "csv")) == 50_000
    with blobs.open("uploads/j1/input.csv") as stream:
        assert stream.read() == content
        assert stream.read() == b""  # past the end: empty, not an error


def test_size_limit_stores_nothing(blobs: BlobStore) -> None:
    with pytest.raises(BlobTooLarge):
        blobs.put_stream("uploads/j2/input.csv", io.BytesIO(b"x" * 5000), max_bytes=1000, content_type="text/csv")
    assert blobs.size("uploads/j2/input.csv") is None


def test_missing_file_and_delete(blobs: BlobStore) -> None:
    with pytest.raises(RecordMissing):
        blobs.open("nope")
    blobs.put_stream("exports/j3/out.csv", io.BytesIO(b"a\n"), max_bytes=100, content_type="text/csv")
    blobs.delete("exports/j3/out.csv")
    assert blobs.size("exports/j3/out.csv") is None


def test_local_keys_cannot_escape_the_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="escapes"):
        LocalBlobStore(tmp_path / "files").open("../secret")
