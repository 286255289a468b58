"""Bulk subscriber writes shared by both backends: what each row of an import batch should do.

A row is decided against the subscriber stored under its uid before anything is written:
- stored with `import_job_id` = this job and `import_row` = this row: written by this very job
  before a crash (its checkpoint was lost), so it counts again as created/updated, unwritten;
- stored by this job from another row: the uid appears twice in the file (`duplicate_in_file`);
- otherwise the mode decides (create: `exists`; update: `not_found` when missing).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from app.changefeed.catalog import DEFAULT_RETENTION_DAYS, events_for
from app.storage.counting import subscriber_counter_deltas
from app.storage.records import SUBSCRIBER_BOOKKEEPING, DomainEvent, SubscriberRecord

ImportMode = Literal["create", "upsert", "update"]
ImportResult = Literal["created", "updated", "failed"]


# A subscriber's own choices about messages: an update from a file without these columns keeps
# them (a legacy system that never knew of an opt-out must not undo one).
PREFERENCE_FIELDS = frozenset({"notifications_opt_out", "notification_channel"})


@dataclass(frozen=True)
class ImportRow:
    """One valid row: `record` as a new subscriber (version 1, import_job_id/import_row set);
    `preferences_given`: which of PREFERENCE_FIELDS the row holds a value for."""

    row: int
    record: SubscriberRecord
    preferences_given: frozenset[str] = PREFERENCE_FIELDS


@dataclass(frozen=True)
class ImportOutcome:
    row: int
    result: ImportResult
    field: str = ""
    code: str = ""
    message: str = ""
    value: str | None = None


@dataclass(frozen=True)
class PlannedWrite:
    row: int
    before: SubscriberRecord | None
    after: SubscriberRecord


def decide(
    item: ImportRow, existing: SubscriberRecord | None, *, mode: ImportMode, job_id: str
) -> ImportOutcome | PlannedWrite:
    record = item.record
    if existing is not None and existing.import_job_id == job_id:
        if existing.import_row == item.row:
            return ImportOutcome(item.row, "created" if existing.version == 1 else "updated")
        return duplicate(item, "uid", record.uid, existing)
    if existing is not None and mode == "create":
        return ImportOutcome(item.row, "failed", "uid", "exists", "a subscriber with this uid exists", record.uid)
    if existing is None and mode == "update":
        return ImportOutcome(item.row, "failed", "uid", "not_found", "no subscriber with this uid", record.uid)
    if existing is None:
        return PlannedWrite(item.row, None, record)
    kept = {name: getattr(existing, name) for name in PREFERENCE_FIELDS - item.preferences_given}
    successor = record.model_copy(
        update={
            **kept,
            "version": existing.version + 1,
            "created_at": existing.created_at,
            "created_by": existing.created_by,
        }
    )
    return PlannedWrite(item.row, existing, successor)


def duplicate(item: ImportRow, field: str, value: str, owner: SubscriberRecord) -> ImportOutcome:
    return ImportOutcome(
        item.row,
        "failed",
        field,
        "duplicate_in_file",
        f"{field} also in row {owner.import_row} of this file",
        value,
    )


def taken(item: ImportRow, field: str, owner: SubscriberRecord | None, job_id: str) -> ImportOutcome:
    """A msisdn/imsi/uid in use by `owner` (None when it vanished meanwhile: a concurrent change)."""
    value = str(getattr(item.record, field))
    if owner is not None and owner.import_job_id == job_id and owner.import_row != item.row:
        return duplicate(item, field, value, owner)
    if owner is None:
        return ImportOutcome(item.row, "failed", field, "changed_concurrently", "changed while importing; retry", value)
    return ImportOutcome(item.row, "failed", field, "exists", f"{field} is in use by another subscriber", value)


def row_events(write: PlannedWrite, *, retention_days: int = DEFAULT_RETENTION_DAYS) -> list[DomainEvent]:
    """What the row's write publishes: the events of the same change made through the API, one
    set per row (an event item costs less than the row's own items; docs/events.md)."""
    before, after = write.before, write.after
    return events_for(
        action="subscriber.create" if before is None else "subscriber.update",
        entity_type="subscriber",
        entity_id=after.uid,
        actor=after.updated_by,
        at=after.updated_at,
        request_id=None,
        retention_days=retention_days,
        before=before.model_dump(mode="json", exclude=set(SUBSCRIBER_BOOKKEEPING)) if before else None,
        after=after.model_dump(mode="json", exclude=set(SUBSCRIBER_BOOKKEEPING)),
    )


def written(write: PlannedWrite) -> ImportOutcome:
    return ImportOutcome(write.row, "created" if write.before is None else "updated")


Pair = tuple[SubscriberRecord | None, SubscriberRecord | None]


def aggregate_deltas(pairs: Iterable[Pair]) -> dict[str, dict[str, int]]:
    """The counter deltas of many writes added up per scope and key (zeros left out)."""
    total: dict[str, Counter[str]] = {}
    for before, after in pairs:
        for scope, deltas in subscriber_counter_deltas(before, after).items():
            total.setdefault(scope, Counter()).update(deltas)
    return {scope: {name: n for name, n in keys.items() if n} for scope, keys in total.items()}


def dry_run_check(
    item: ImportRow,
    existing: SubscriberRecord | None,
    msisdn_owner: SubscriberRecord | None,
    imsi_owner: SubscriberRecord | None,
    *,
    mode: ImportMode,
    job_id: str,
) -> ImportOutcome:
    """What the row would do, from reads only (a dry run writes nothing)."""
    decision = decide(item, existing, mode=mode, job_id=job_id)
    if isinstance(decision, ImportOutcome):
        return decision
    for field, owner in (("msisdn", msisdn_owner), ("imsi", imsi_owner)):
        if owner is not None and owner.uid != item.record.uid:
            return taken(item, field, owner, job_id)
    return written(decision)
