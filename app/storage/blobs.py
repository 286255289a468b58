"""File storage for job inputs and outputs: S3 in AWS, a local folder for local development.

Files are streamed in and out in chunks; nothing here holds a whole file in memory. In AWS, large
uploads and downloads bypass the Lambda (6 MB payload limit) through presigned URLs.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import IO, Any, Protocol

from app.config import Settings
from app.localfiles import open_private, private_dir
from app.storage.base import BlobTooLarge, RecordMissing

CHUNK_BYTES = 1024 * 1024


class BlobStore(Protocol):
    def put_stream(self, key: str, stream: IO[bytes], *, max_bytes: int, content_type: str) -> int:
        """Store the stream under `key`; BlobTooLarge (and nothing stored) past `max_bytes`."""
        ...

    def put_file(self, key: str, path: Path, *, content_type: str) -> None: ...

    def open(self, key: str) -> IO[bytes]:
        """A readable stream of the file; RecordMissing if there is none."""
        ...

    def size(self, key: str) -> int | None: ...

    def delete(self, key: str) -> None: ...

    def presigned_put(self, key: str, *, expires_seconds: int, content_type: str) -> str | None:
        """A URL a browser can PUT the file to, or None where the store has none (local)."""
        ...

    def presigned_get(self, key: str, *, expires_seconds: int, filename: str) -> str | None: ...


class _LimitedReader:
    """Reads through to `stream` and raises BlobTooLarge once more than `limit` bytes went by."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size if size > 0 else CHUNK_BYTES)
        self.count += len(data)
        if self.count > self._limit:
            raise BlobTooLarge(self._limit)
        return data


class _ChunkStream(io.RawIOBase):
    """A raw stream over an S3 body's chunks, read lazily, closed with the body."""

    def __init__(self, body: Any) -> None:
        self._body = body
        self._chunks = body.iter_chunks(CHUNK_BYTES)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._pending:
            self._pending = next(self._chunks, b"")
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def close(self) -> None:
        self._body.close()
        super().close()


def create_blob_store(settings: Settings) -> BlobStore:
    """S3 when UPLOADS_BUCKET is set, else a folder under DATA_DIR."""
    if settings.uploads_bucket:
        import boto3  # only deployments with a bucket pay for the client

        client = boto3.client("s3", region_name=settings.aws_region)
        return S3BlobStore(client, settings.uploads_bucket, serialize_calls=settings.is_local_like)
    return LocalBlobStore(settings.data_dir / "files")


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"blob key escapes the store: {key!r}")
        return path

    def put_stream(self, key: str, stream: IO[bytes], *, max_bytes: int, content_type: str) -> int:
        path = self._path(key)
        private_dir(path.parent)
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
        reader = _LimitedReader(stream, max_bytes)
        try:
            with os.fdopen(open_private(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "wb") as target:
                while chunk := reader.read(CHUNK_BYTES):
                    target.write(chunk)
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        return reader.count

    def put_file(self, key: str, path: Path, *, content_type: str) -> None:
        target = self._path(key)
        private_dir(target.parent)
        descriptor = open_private(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        with path.open("rb") as source, os.fdopen(descriptor, "wb") as copy:
            shutil.copyfileobj(source, copy)

    def open(self, key: str) -> IO[bytes]:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError:
            raise RecordMissing(f"no file {key!r}") from None

    def size(self, key: str) -> int | None:
        path = self._path(key)
        return path.stat().st_size if path.exists() else None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def presigned_put(self, key: str, *, expires_seconds: int, content_type: str) -> str | None:
        return None

    def presigned_get(self, key: str, *, expires_seconds: int, filename: str) -> str | None:
        return None


class S3BlobStore:
    def __init__(self, client: Any, bucket: str, *, serialize_calls: bool = False) -> None:
        self.client = client
        self.bucket = bucket
        # moto in-process (tests) is not thread-safe; real S3 needs no lock.
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if serialize_calls else contextlib.nullcontext()
        )

    def put_stream(self, key: str, stream: IO[bytes], *, max_bytes: int, content_type: str) -> int:
        reader = _LimitedReader(stream, max_bytes)
        with self._lock:
            # upload_fileobj sends multipart chunks as it reads and aborts the upload on an error.
            self.client.upload_fileobj(reader, self.bucket, key, ExtraArgs={"ContentType": content_type})
        return reader.count

    def put_file(self, key: str, path: Path, *, content_type: str) -> None:
        with self._lock:
            self.client.upload_file(str(path), self.bucket, key, ExtraArgs={"ContentType": content_type})

    def open(self, key: str) -> IO[bytes]:
        from botocore.exceptions import ClientError

        try:
            with self._lock:
                body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise RecordMissing(f"no file {key!r}") from None
            raise
        # A plain buffered stream over the body's chunks: text and JSON readers get the file
        # interface they expect (read, read1, readinto), and reading past the end is just b"".
        return io.BufferedReader(_ChunkStream(body), buffer_size=CHUNK_BYTES)

    def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            with self._lock:
                return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise

    def delete(self, key: str) -> None:
        with self._lock:
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def presigned_put(self, key: str, *, expires_seconds: int, content_type: str) -> str | None:
        url: str = self.client.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type},
            ExpiresIn=expires_seconds,
        )
        return url

    def presigned_get(self, key: str, *, expires_seconds: int, filename: str) -> str | None:
        url: str = self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ResponseContentDisposition": f'attachment; filename="{filename}"',
            },
            ExpiresIn=expires_seconds,
        )
        return url
