"""Files of local mode under DATA_DIR (the DynamoDB Local database, its state file, the signing
secret, job files): they hold password hashes and personal data, so they are owner-only.

The folder is 0700 (which alone keeps other users out of everything under it) and each file is
created 0600 from the start, never widened and narrowed afterwards. Writes go to a temporary file
beside the target and are renamed into place; the temporary file never outlives the call.
"""

from __future__ import annotations

import contextlib
import os
import stat
import uuid
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: Path) -> Path:
    """Create `path` and its missing parents owner-only, or tighten `path` if it exists wider (an
    older version made DATA_DIR 0755)."""
    for folder in reversed([path, *path.parents]):
        if not folder.exists():
            folder.mkdir(mode=PRIVATE_DIR, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(PRIVATE_DIR)
    return path


def open_private(path: Path, flags: int = os.O_WRONLY | os.O_CREAT | os.O_APPEND) -> int:
    """A file descriptor on `path`, created 0600 if missing."""
    return os.open(path, flags | os.O_CLOEXEC, PRIVATE_FILE)


def _temporary_beside(path: Path, data: bytes) -> Path:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    descriptor = open_private(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return temporary


def write_private(path: Path, data: bytes) -> None:
    """Replace `path` with `data`, atomically: a reader sees the old content or the new, never a part."""
    private_dir(path.parent)
    temporary = _temporary_beside(path, data)
    try:
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def create_private(path: Path, data: bytes) -> bool:
    """Write `path` only if it does not exist yet (two processes racing: exactly one wins, both then
    read the same content). Returns whether this call created it."""
    private_dir(path.parent)
    temporary = _temporary_beside(path, data)
    try:
        os.link(temporary, path)
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    return True
