"""Add CPython 3.12 bytecode to the Lambda zip, beside the sources (called by infra/bytecode-plugin.js).

    python3 infra/package_bytecode.py .serverless/subscriber-portal.zip
    python3 infra/package_bytecode.py --which      # prints the CPython 3.12 it would use

The package is unzipped into a temporary folder, every module (the app and its dependencies) is
compiled there by a CPython 3.12 (the Lambda runtime's version: bytecode is version-specific) and
the zip is rewritten with each `__pycache__/*.cpython-312.pyc` added. The sources stay, so
tracebacks keep their lines.

The `.pyc` are hash-based and unchecked: Lambda's zip extraction does not keep the source mtimes
that timestamp-based `.pyc` are validated against, so those would be recompiled at every cold
start (into a cache that /var/task, read-only, cannot hold). "checked-hash" would re-read and hash
every imported source at every start to guard against an edit that cannot happen: the package
is immutable once built, and its sources and bytecode come from this one step.

Which 3.12: $PYTHON312, else `python3.12` on PATH, else a pyenv installation; each is run to
check its version (a pyenv shim named python3.12 may exist and refuse to run).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

TARGET = (3, 12)
# Not compiled: phonenumbers' geocoding, carrier and time-zone tables, which the app never imports
# (it parses and validates numbers only). Their bytecode alone was 4.6 of the zip's 20.9 MB.
NOT_COMPILED = re.compile(r"(^|/)phonenumbers/(geodata|carrierdata|tzdata)/")
PYC_TAG = "cpython-312"
# Where Lambda extracts the package; recorded as the compiled files' path (the import system
# rewrites it to the real location on load anyway).
TASK_ROOT = "/var/task"


class NoPython312(SystemExit):
    pass


def is_target_python(candidate: str) -> bool:
    check = f"import sys; sys.exit(sys.implementation.name != 'cpython' or sys.version_info[:2] != {TARGET})"
    try:
        return subprocess.run([candidate, "-c", check], capture_output=True, timeout=60, check=False).returncode == 0
    except OSError:
        return False


def find_python312(environ: dict[str, str] | None = None) -> str:
    environ = dict(os.environ) if environ is None else environ
    explicit = environ.get("PYTHON312")
    if explicit:
        if is_target_python(explicit):
            return explicit
        raise NoPython312(f"PYTHON312={explicit} is not a working CPython 3.12")
    on_path = shutil.which("python3.12", path=environ.get("PATH"))
    pyenv_root = environ.get("PYENV_ROOT") or str(Path(environ.get("HOME", "~")).expanduser() / ".pyenv")
    candidates = [on_path, *sorted(glob.glob(f"{pyenv_root}/versions/3.12*/bin/python3.12"), reverse=True)]
    for candidate in candidates:
        if candidate and is_target_python(candidate):
            return candidate
    raise NoPython312(
        "No CPython 3.12 found to compile the Lambda package's bytecode (the runtime is python3.12 and "
        "bytecode only loads on the version that wrote it). Install one (e.g. `pyenv install 3.12`, or "
        "actions/setup-python with 3.12) and put python3.12 on PATH, or set PYTHON312=/path/to/python3.12."
    )


def compile_tree(python: str, root: Path) -> None:
    command = [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash"]
    command += ["-x", NOT_COMPILED.pattern, "-s", str(root), "-p", TASK_ROOT, str(root)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"compileall failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")


def add_bytecode(artifact: Path, python: str) -> int:
    """Rewrite `artifact` with 3.12 bytecode for every .py in it; returns how many .pyc were added."""
    with tempfile.TemporaryDirectory(prefix="lambda-bytecode-") as tmp:
        tree = Path(tmp) / "task"
        with zipfile.ZipFile(artifact) as source:
            entries = source.infolist()
            if any("__pycache__/" in info.filename for info in entries):
                raise SystemExit(f"{artifact} already holds bytecode: package it again first")
            source.extractall(tree)
        compile_tree(python, tree)
        rewritten = Path(tmp) / artifact.name
        added = 0
        with zipfile.ZipFile(artifact) as source, zipfile.ZipFile(rewritten, "w", zipfile.ZIP_DEFLATED) as target:
            for info in entries:
                target.writestr(info, source.read(info), compress_type=zipfile.ZIP_DEFLATED)
                if not info.filename.endswith(".py") or NOT_COMPILED.search(info.filename):
                    continue
                module = Path(info.filename)
                pyc = module.parent / "__pycache__" / f"{module.stem}.{PYC_TAG}.pyc"
                if not (tree / pyc).exists():
                    raise SystemExit(f"no bytecode was written for {info.filename}")
                # Same timestamp and permissions as its source: the zip stays reproducible.
                compiled = zipfile.ZipInfo(pyc.as_posix(), date_time=info.date_time)
                compiled.external_attr = 0o644 << 16
                target.writestr(compiled, (tree / pyc).read_bytes(), compress_type=zipfile.ZIP_DEFLATED)
                added += 1
        shutil.move(rewritten, artifact)
    return added


def main() -> None:
    if sys.argv[1:] == ["--which"]:  # for the Makefile: the 3.12 that `make bench` measures with
        print(find_python312())
        return
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: {sys.argv[0]} PACKAGE.zip | --which")
    artifact = Path(sys.argv[1])
    python = find_python312()
    added = add_bytecode(artifact, python)
    print(f"package_bytecode: {added} modules compiled by {python} into {artifact} ({artifact.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
