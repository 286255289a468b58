"""Store-to-store copy (`portal migrate-store`): copy every record in batches, then prove the copy.

The copy reads the source phase by phase (`app.storage.transfer.PHASES`) and writes each batch to
the target, which upserts by identity. After every batch the read position is saved to a state
file (written atomically), so an interrupted copy resumes where it stopped; a batch written but
not yet recorded is written again, which changes nothing. Records the target refuses (their
msisdn belongs to another subscriber there, say) are appended to a `.refused.ndjson` file next to
the state and reported; they are never dropped silently.

Before a copy starts, `side_settings` builds and validates each side's settings and `plan` and
`begin` apply the rules that keep a copy from going wrong: never a store into itself, never a state
file of another copy, never into a target that already holds data unless merging was asked for.
Each refusal is a `CopyRefused` whose message says what to do; the CLI prints it.

Verification reads both stores in full: per kind, the number of records and a checksum over all
of them (the sum of every record's SHA-256, so order does not matter). Where a kind differs, it
looks the source's records up in the target to name the ones missing or different.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from app.config import Settings
from app.localfiles import open_private, write_private
from app.storage.transfer import KINDS, PHASES, Refused, StoreTransfer, TransferRecord

CHECKSUM_BITS = 128
# 99 = 3 x 33 subscribers, each with its 2 claims: full 100-action DynamoDB transactions.
BATCH_SIZE = 99
# Verification only reads, so it reads in larger pages than the copy writes.
VERIFY_PAGE = 1000
DIFFERENCES_SHOWN = 20
Progress = Callable[[str, int], None]  # (step, records just handled)
Backend = Literal["dynamodb", "mongo"]
_CREDENTIALS = re.compile(r"://[^@/]*@")
_SIDE_FIELDS = {
    "dynamodb": ("dynamodb_table", "dynamodb_endpoint_url", "aws_region"),
    "mongo": ("mongodb_uri", "mongodb_database"),
}


class CopyRefused(Exception):
    """A copy that may not run as asked; the message says why and what to do instead."""


@dataclass
class CopyState:
    source: str
    target: str
    phase: int = 0
    position: str | None = None
    written: dict[str, int] = field(default_factory=dict)
    copy_done: bool = False

    @classmethod
    def load(cls, path: Path) -> CopyState | None:
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text(encoding="utf-8")))

    def save(self, path: Path) -> None:
        write_private(path, json.dumps(asdict(self), indent=2).encode())


@dataclass(frozen=True)
class Side:
    """One store of a copy as the operator names it (`--source-...` / `--target-...`); a value left
    None is the base settings' own."""

    name: Literal["source", "target"]
    backend: Backend
    dynamodb_table: str | None = None
    dynamodb_endpoint_url: str | None = None
    aws_region: str | None = None
    mongodb_uri: str | None = None
    mongodb_database: str | None = None


def side_settings(base: Settings, side: Side) -> Settings:
    """`base` with the side's store, validated as settings are validated (a table name the settings
    refuse is refused here, with the validator's reason and the option's name)."""
    changes: dict[str, Any] = {"storage_backend": side.backend}
    for name in _SIDE_FIELDS[side.backend]:
        if value := getattr(side, name):
            changes[name] = value
    if side.backend == "mongo" and base.mongodb_uri is None and "mongodb_uri" not in changes:
        raise CopyRefused(f"--{side.name}-mongodb-uri (or {side.name.upper()}_MONGODB_URI) is required for mongo")
    try:
        return Settings.model_validate({**dict(base), **changes})
    except ValidationError as exc:
        # Only the side's own fields can fail (the base settings were valid): name them as options.
        problems = [f"--{side.name}-{'-'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}" for e in exc.errors()]
        raise CopyRefused("; ".join(problems)) from None


def store_label(settings: Settings) -> str:
    """Names a store without its credentials (state files and reports)."""
    if settings.backend == "mongo":
        assert settings.mongodb_uri is not None
        uri = _CREDENTIALS.sub("://", settings.mongodb_uri.get_secret_value())
        return f"mongo {uri} database {settings.mongodb_database}"
    where = settings.dynamodb_endpoint_url or (
        f"local engine of {settings.data_dir.resolve()}" if settings.uses_local_engine else "AWS"
    )
    return f"dynamodb {settings.aws_region} table {settings.dynamodb_table} ({where})"


@dataclass(frozen=True)
class CopyPlan:
    source: Settings
    target: Settings
    source_label: str
    target_label: str
    state_path: Path
    saved: CopyState | None  # None: no copy of this source into this target was started (or a restart)
    restart: bool


def plan(source: Settings, target: Settings, *, state_path: Path | None, restart: bool) -> CopyPlan:
    """The copy from `source` to `target` and its state file (by default one per pair of stores,
    under the source's DATA_DIR), with the state saved by an earlier run unless `restart`."""
    source_label, target_label = store_label(source), store_label(target)
    if source_label == target_label:
        raise CopyRefused(f"source and target are the same store ({source_label})")
    copy_id = hashlib.sha256(f"{source_label}\n{target_label}".encode()).hexdigest()[:16]
    path = state_path or source.data_dir / "migrate-store" / f"{copy_id}.json"
    try:
        saved = None if restart else CopyState.load(path)
    except (ValueError, TypeError):
        raise CopyRefused(f"--state: {path} is not a migrate-store state file") from None
    if saved is not None and (saved.source, saved.target) != (source_label, target_label):
        raise CopyRefused(f"--state: {path} belongs to another copy ({saved.source} -> {saved.target})")
    return CopyPlan(source, target, source_label, target_label, path, saved, restart)


def begin(plan: CopyPlan, source: StoreTransfer, target: StoreTransfer, *, allow_nonempty_target: bool) -> CopyState:
    """The state of a copy starting from the beginning. A target that already holds data is refused
    unless merging into it was asked for, or a restart redoes an earlier copy of this source."""
    if not plan.restart and not allow_nonempty_target and source is not target and target.read(0, None, 1)[0]:
        raise CopyRefused(
            "the target already holds data; pass --allow-nonempty-target to merge into it "
            "(records are upserted by key), or --restart to redo an earlier copy of this source"
        )
    refused_path(plan.state_path).unlink(missing_ok=True)
    return CopyState(plan.source_label, plan.target_label)


def refused_path(state_path: Path) -> Path:
    return state_path.with_suffix(".refused.ndjson")


def read_all(transfer: StoreTransfer, phase: int, batch_size: int) -> Iterator[list[TransferRecord]]:
    position: str | None = None
    while True:
        records, position = transfer.read(phase, position, batch_size)
        if records:
            yield records
        if position is None:
            return


def copy(
    source: StoreTransfer,
    target: StoreTransfer,
    state: CopyState,
    state_path: Path,
    *,
    batch_size: int,
    progress: Progress,
) -> None:
    """Copy from where `state` stands to the end, saving the state after every batch."""
    while not state.copy_done:
        records, position = source.read(state.phase, state.position, batch_size)
        refused = target.write(records) if records else []
        if refused:
            with os.fdopen(open_private(refused_path(state_path)), "a", encoding="utf-8") as report:
                for item in refused:
                    report.write(json.dumps({"kind": item.kind, "key": list(item.key), "reason": item.reason}) + "\n")
        for record in records:
            state.written[record.kind] = state.written.get(record.kind, 0) + 1
        state.position = position
        if position is None:
            state.phase += 1
            state.copy_done = state.phase == len(PHASES)
        state.save(state_path)
        progress("copy", len(records))


def read_refused(state_path: Path) -> list[Refused]:
    """Every refused record once (a batch written again after a resume reports its refusals again)."""
    path = refused_path(state_path)
    if not path.exists():
        return []
    unique: dict[tuple[str, tuple[str, ...]], Refused] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        key = (entry["kind"], tuple(entry["key"]))
        unique[key] = Refused(entry["kind"], tuple(entry["key"]), entry["reason"])
    return list(unique.values())


@dataclass
class KindCheck:
    kind: str
    source_count: int = 0
    target_count: int = 0
    source_checksum: int = 0
    target_checksum: int = 0

    @property
    def ok(self) -> bool:
        return self.source_count == self.target_count and self.source_checksum == self.target_checksum


@dataclass
class Verification:
    checks: list[KindCheck]
    differences: list[str]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)


def _tally(transfer: StoreTransfer, batch_size: int, progress: Progress, step: str) -> dict[str, tuple[int, int]]:
    counts = dict.fromkeys(KINDS, 0)
    sums = dict.fromkeys(KINDS, 0)
    for phase in range(len(PHASES)):
        for records in read_all(transfer, phase, batch_size):
            for record in records:
                counts[record.kind] += 1
                sums[record.kind] = (sums[record.kind] + int.from_bytes(record.digest()[:16])) % (1 << CHECKSUM_BITS)
            progress(step, len(records))
    return {kind: (counts[kind], sums[kind]) for kind in KINDS}


def _locate(source: StoreTransfer, target: StoreTransfer, check: KindCheck, batch_size: int) -> list[str]:
    """Names the source records of a differing kind that the target lacks or holds otherwise."""
    phase = next(n for n, kinds in enumerate(PHASES) if check.kind in kinds)
    present, shown = 0, list[str]()
    for records in read_all(source, phase, batch_size):
        wanted = [record for record in records if record.kind == check.kind]
        stored = target.fetch(check.kind, [record.key for record in wanted]) if wanted else {}
        for record in wanted:
            copy_of = stored.get(record.key)
            present += copy_of is not None
            if (copy_of is None or copy_of.digest() != record.digest()) and len(shown) < DIFFERENCES_SHOWN:
                what = "missing from the target" if copy_of is None else "differs in the target"
                shown.append(f"{check.kind} {'/'.join(record.key)}: {what}")
    if check.target_count > present:
        shown.append(f"{check.kind}: {check.target_count - present} record(s) only in the target")
    return shown


def verify(
    source: StoreTransfer, target: StoreTransfer, *, progress: Progress, batch_size: int = VERIFY_PAGE
) -> Verification:
    in_source = _tally(source, batch_size, progress, "verify source")
    in_target = _tally(target, batch_size, progress, "verify target")
    checks = [
        KindCheck(
            kind,
            source_count=in_source[kind][0],
            target_count=in_target[kind][0],
            source_checksum=in_source[kind][1],
            target_checksum=in_target[kind][1],
        )
        for kind in KINDS
    ]
    differences = []
    for check in checks:
        if not check.ok:
            differences += _locate(source, target, check, batch_size)
    return Verification(checks, differences)
