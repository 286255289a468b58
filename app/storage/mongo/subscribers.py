"""Subscribers in MongoDB: one document per subscriber (`_id` = uid).

Unique indexes on `msisdn` and `imsi` make every insert or update that would take a used value
fail as a whole, so uniqueness needs no claim documents. Each write is one single-document
operation carrying its audit entry and its counter deltas in the outbox (see outbox.py), which
then copies the entry and moves the counters exactly once, without multi-document transactions.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from typing import Any

from pymongo.errors import BulkWriteError, DuplicateKeyError

from app.changefeed.catalog import DEFAULT_RETENTION_DAYS
from app.storage.base import (
    CounterDrift,
    CursorRejected,
    Page,
    ValueTaken,
    missing_or_stale,
)
from app.storage.counting import SubscriberCounts, reconcile, subscriber_counter_deltas
from app.storage.cursor import CursorCodec
from app.storage.importing import (
    ImportMode,
    ImportOutcome,
    ImportRow,
    Pair,
    PlannedWrite,
    aggregate_deltas,
    decide,
    dry_run_check,
    row_events,
    taken,
    written,
)
from app.storage.mongo import codec, outbox
from app.storage.mongo.counters import MongoCounterRepository
from app.storage.records import AuditEntry, SubscriberRecord, SubscriberStatus

COLLECTION = "subscribers"
# Above every character a uid may contain ([A-Za-z0-9_-]): `prefix <= uid < prefix + "~"` is a prefix match.
_ABOVE_UID_CHARS = "~"
# A written row's number and its counter change.
Counted = tuple[int, Pair]
# Status and plan before an import replaced the subscriber: its counter change, recomputable.
_PREVIOUS = "_import_prev"
_INDEX_FIELDS = {"_id": "uid", "msisdn": "msisdn", "imsi": "imsi"}


def to_subscriber(document: Mapping[str, Any]) -> SubscriberRecord:
    return codec.load(SubscriberRecord, document, "uid")


class MongoSubscriberRepository:
    def __init__(self, db: Any, cursors: CursorCodec) -> None:
        self.db = db
        self.collection = db[COLLECTION]
        self.counters = MongoCounterRepository(db)
        self.cursors = cursors

    # --- writes ------------------------------------------------------------------------------------

    def create(self, subscriber: SubscriberRecord, audit: AuditEntry) -> None:
        document = codec.document(subscriber, "uid")
        document[outbox.PENDING] = [outbox.pending(audit, subscriber_counter_deltas(None, subscriber))]
        try:
            self.collection.insert_one(document)
        except DuplicateKeyError as exc:
            raise self._taken(exc, subscriber, ("uid", "msisdn", "imsi")) from None
        outbox.flush(self.db, COLLECTION, subscriber.uid)

    def replace(self, current: SubscriberRecord, updated: SubscriberRecord, audit: AuditEntry) -> None:
        if updated.uid != current.uid or updated.version != current.version + 1:
            raise ValueError("the updated subscriber must keep the uid and have version = current.version + 1")
        changes = codec.dump(updated, exclude={"uid"})
        entry = outbox.pending(audit, subscriber_counter_deltas(current, updated))
        try:
            result = self.collection.update_one(
                {"_id": current.uid, "version": current.version, **outbox.LIVE},
                {"$set": changes, "$push": {outbox.PENDING: entry}},
            )
        except DuplicateKeyError as exc:
            moved = tuple(name for name in ("msisdn", "imsi") if getattr(updated, name) != getattr(current, name))
            raise self._taken(exc, updated, moved) from None
        if result.matched_count == 0:
            raise missing_or_stale("subscriber", current.uid, self.get(current.uid))
        outbox.flush(self.db, COLLECTION, current.uid)

    def delete(self, current: SubscriberRecord, audit: AuditEntry) -> None:
        entry = outbox.pending(audit, subscriber_counter_deltas(current, None))
        result = self.collection.update_one(
            {"_id": current.uid, "version": current.version, **outbox.LIVE},
            {"$set": {outbox.DELETED: True}, "$push": {outbox.PENDING: entry}},
        )
        if result.matched_count == 0:
            raise missing_or_stale("subscriber", current.uid, self.get(current.uid))
        outbox.finish_delete(self.db, COLLECTION, current.uid)

    def _taken(self, error: DuplicateKeyError, subscriber: SubscriberRecord, candidates: tuple[str, ...]) -> ValueTaken:
        """Which unique value collided: the server says so; mongomock doesn't, so then ask the index."""
        pattern = (error.details or {}).get("keyPattern") or {}
        name = next((_INDEX_FIELDS[key] for key in pattern if key in _INDEX_FIELDS), None)
        if name is None:
            name = next(
                (
                    candidate
                    for candidate in candidates
                    if self.collection.find_one(
                        {"_id" if candidate == "uid" else candidate: getattr(subscriber, candidate)}, {"_id": 1}
                    )
                ),
                candidates[0] if candidates else "uid",
            )
        if name == "uid":
            return ValueTaken(f"subscriber {subscriber.uid!r} already exists", attribute="uid")
        value = getattr(subscriber, name)
        return ValueTaken(f"{name} {value!r} is already in use by another subscriber", attribute=name)

    # --- bulk import -------------------------------------------------------------------------------

    def import_batch(
        self,
        rows: builtins.list[ImportRow],
        *,
        mode: ImportMode,
        job_id: str,
        dry_run: bool = False,
        between_writes: Callable[[], None] | None = None,
        event_retention_days: int = DEFAULT_RETENTION_DAYS,
    ) -> builtins.list[ImportOutcome]:
        """Creates go in one unordered `insert_many` (a duplicate key fails only its own row);
        replacements are single-document updates conditional on the version read.

        Without transactions, counters move after the writes, one update per counter and batch.
        Each update records which rows of the job it counted (`outbox.apply_import_deltas`), so a
        batch redone after a crash, whatever its size, adds only the rows not counted yet. A
        replaced subscriber keeps
        its previous status and plan (`_import_prev`, written with it), so a batch redone after a
        crash between writes and counters recomputes the same deltas from the stored documents
        and the missing counter updates are applied: counters end exact. Between the writes and
        the counter updates a reader may see counts that lag by one batch.
        """
        if not rows:
            return []
        found = {
            document["_id"]: document
            for document in self.collection.find({"_id": {"$in": [row.record.uid for row in rows]}, **outbox.LIVE})
        }
        existing = {uid: to_subscriber(document) for uid, document in found.items()}
        if dry_run:
            return self._dry_run(rows, existing, mode=mode, job_id=job_id)
        outcomes: builtins.list[ImportOutcome] = []
        creates: builtins.list[tuple[ImportRow, PlannedWrite]] = []
        replaces: builtins.list[tuple[ImportRow, PlannedWrite]] = []
        changed: builtins.list[Counted] = []
        for row in rows:
            decision = decide(row, existing.get(row.record.uid), mode=mode, job_id=job_id)
            if isinstance(decision, PlannedWrite):
                (creates if decision.before is None else replaces).append((row, decision))
                continue
            outcomes.append(decision)
            if decision.result != "failed":  # written by this job before a crash: its deltas are owed again
                changed.append((row.row, _redone_pair(found[row.record.uid])))
        beat = between_writes or _nothing
        try:
            outcomes.extend(self._insert(creates, job_id, changed, event_retention_days))
            if creates:
                beat()
            for row, write in replaces:
                outcomes.append(self._replace_row(row, write, job_id, changed, event_retention_days))
                beat()
        finally:
            # Also when a heartbeat stops the batch: what was written has its events copied now,
            # not at the next recovery (a crash leaves that to `recover`).
            written_uids = [write.after.uid for _, write in (*creates, *replaces)]
            if written_uids:
                outbox.flush_events(self.db, "subscribers", written_uids)
        per_counter: dict[tuple[str, str], dict[int, int]] = {}
        for row_number, pair in changed:
            for scope, deltas in aggregate_deltas([pair]).items():
                for name, delta in deltas.items():
                    per_counter.setdefault((scope, name), {})[row_number] = delta
        for (scope, name), row_deltas in sorted(per_counter.items()):
            outbox.apply_import_deltas(self.db, job_id, scope, name, row_deltas)
        return outcomes

    @staticmethod
    def _row_events(write: PlannedWrite, retention_days: int) -> dict[str, Any]:
        """The row's events as the document's pending outbox entry (nothing when the row changes nothing)."""
        events = row_events(write, retention_days=retention_days)
        return {outbox.PENDING: [outbox.pending_events(events)]} if events else {}

    def _insert(
        self,
        creates: builtins.list[tuple[ImportRow, PlannedWrite]],
        job_id: str,
        changed: builtins.list[Counted],
        retention_days: int,
    ) -> builtins.list[ImportOutcome]:
        if not creates:
            return []
        failed: set[int] = set()
        try:
            self.collection.insert_many(
                [
                    {**codec.document(write.after, "uid"), **self._row_events(write, retention_days)}
                    for _, write in creates
                ],
                ordered=False,
            )
        except BulkWriteError as exc:
            failed = {int(error["index"]) for error in exc.details.get("writeErrors", [])}
        outcomes: builtins.list[ImportOutcome] = []
        for index, (row, write) in enumerate(creates):
            if index in failed:
                outcomes.append(self._collision(row, job_id))
            else:
                outcomes.append(written(write))
                changed.append((row.row, (None, write.after)))
        return outcomes

    def _replace_row(
        self, row: ImportRow, write: PlannedWrite, job_id: str, changed: builtins.list[Counted], retention_days: int
    ) -> ImportOutcome:
        before = write.before
        assert before is not None
        changes = codec.dump(write.after, exclude={"uid"})
        changes[_PREVIOUS] = {"status": before.status.value, "plan": before.plan}
        pending = self._row_events(write, retention_days)
        events = {"$push": {outbox.PENDING: {"$each": pending[outbox.PENDING]}}} if pending else {}
        try:
            result = self.collection.update_one(
                {"_id": before.uid, "version": before.version, **outbox.LIVE}, {"$set": changes, **events}
            )
        except DuplicateKeyError:
            return self._collision(row, job_id)
        if result.matched_count == 0:
            return ImportOutcome(
                row.row, "failed", "uid", "changed_concurrently", "the subscriber changed while importing", before.uid
            )
        changed.append((row.row, (before, write.after)))
        return written(write)

    def _collision(self, row: ImportRow, job_id: str) -> ImportOutcome:
        """Which unique value of the row is taken, and by whom (looked up: mongomock names no key)."""
        record = row.record
        for field, query in (
            ("uid", {"_id": record.uid}),
            ("msisdn", {"msisdn": record.msisdn}),
            ("imsi", {"imsi": record.imsi}),
        ):
            document = self.collection.find_one({**query, "_id": {"$ne": record.uid}} if field != "uid" else query)
            if document is not None:
                return taken(row, field, to_subscriber(document), job_id)
        return ImportOutcome(
            row.row, "failed", "uid", "changed_concurrently", "changed while importing; retry", record.uid
        )

    def _dry_run(
        self,
        rows: builtins.list[ImportRow],
        existing: dict[str, SubscriberRecord],
        *,
        mode: ImportMode,
        job_id: str,
    ) -> builtins.list[ImportOutcome]:
        by_msisdn = {
            document["msisdn"]: to_subscriber(document)
            for document in self.collection.find(
                {"msisdn": {"$in": [row.record.msisdn for row in rows]}, **outbox.LIVE}
            )
        }
        by_imsi = {
            document["imsi"]: to_subscriber(document)
            for document in self.collection.find({"imsi": {"$in": [row.record.imsi for row in rows]}, **outbox.LIVE})
        }
        return [
            dry_run_check(
                row,
                existing.get(row.record.uid),
                by_msisdn.get(row.record.msisdn),
                by_imsi.get(row.record.imsi),
                mode=mode,
                job_id=job_id,
            )
            for row in rows
        ]

    # --- reads -------------------------------------------------------------------------------------

    def get(self, uid: str) -> SubscriberRecord | None:
        document = self.collection.find_one({"_id": uid, **outbox.LIVE})
        return to_subscriber(document) if document else None

    def get_by_msisdn(self, msisdn: str) -> SubscriberRecord | None:
        document = self.collection.find_one({"msisdn": msisdn, **outbox.LIVE})
        return to_subscriber(document) if document else None

    def get_by_imsi(self, imsi: str) -> SubscriberRecord | None:
        document = self.collection.find_one({"imsi": imsi, **outbox.LIVE})
        return to_subscriber(document) if document else None

    def find_by_email(self, email: str, *, limit: int, cursor: str | None = None) -> Page[SubscriberRecord]:
        return self._page({"email": email}, ("_id",), f"subscribers:email:{email}", limit, cursor)

    def find_by_uid_prefix(self, prefix: str, *, limit: int, cursor: str | None = None) -> Page[SubscriberRecord]:
        query = {"_id": {"$gte": prefix, "$lt": prefix + _ABOVE_UID_CHARS}}
        return self._page(query, ("_id",), f"subscribers:uid-prefix:{prefix}", limit, cursor)

    def list(
        self,
        *,
        status: SubscriberStatus | None = None,
        plan: str | None = None,
        limit: int,
        cursor: str | None = None,
    ) -> Page[SubscriberRecord]:
        scope = f"subscribers:list:{status.value if status else ''}:{plan or ''}"
        query: dict[str, Any] = {}
        if status is not None:
            query["status"] = status.value
        if plan is not None:
            query["plan"] = plan
        # Same order as DynamoDB's plan index (status, then uid) when only the plan is given.
        order = ("status", "_id") if plan is not None and status is None else ("_id",)
        return self._page(query, order, scope, limit, cursor)

    def _page(
        self, query: dict[str, Any], order: tuple[str, ...], scope: str, limit: int, cursor: str | None
    ) -> Page[SubscriberRecord]:
        """Keyset pagination on `order` (ending in the unique `_id`): no skip, so every page is O(limit)."""
        criteria: dict[str, Any] = {**query, **outbox.LIVE}
        if cursor:
            after = self.cursors.decode(scope, cursor).get("after")
            if not isinstance(after, list) or len(after) != len(order) or not all(isinstance(v, str) for v in after):
                raise CursorRejected()
            criteria = {"$and": [criteria, _after(order, after)]}
        found = self.collection.find(criteria).sort([(name, 1) for name in order]).limit(limit + 1)
        documents = list(found)
        next_cursor = None
        if len(documents) > limit:
            documents = documents[:limit]
            next_cursor = self.cursors.encode(scope, {"after": [documents[-1][name] for name in order]})
        return Page([to_subscriber(document) for document in documents], next_cursor)

    # --- maintenance -------------------------------------------------------------------------------

    def reconcile_counters(self, *, fix: bool) -> builtins.list[CounterDrift]:
        # Interrupted writes first: their deltas are owed to the counters and would be applied after a fix.
        outbox.recover(self.db, COLLECTION)
        counts = SubscriberCounts()
        groups = self.collection.aggregate(
            [
                {"$match": outbox.LIVE},
                {"$group": {"_id": {"status": "$status", "plan": "$plan"}, "n": {"$sum": 1}}},
            ]
        )
        for group in groups:
            counts.add(group["_id"]["status"], group["_id"]["plan"], int(group["n"]))
        return reconcile(self.counters, counts, fix=fix)


def _nothing() -> None:
    return None


def _redone_pair(document: Mapping[str, Any]) -> Pair:
    """The counter change of a row this job wrote before a crash, recomputed from its document."""
    after = to_subscriber(document)
    previous = document.get(_PREVIOUS)
    if after.version == 1 or not previous:
        return None, after
    before = after.model_copy(update={"status": SubscriberStatus(previous["status"]), "plan": previous["plan"]})
    return before, after


def _after(order: tuple[str, ...], values: list[str]) -> dict[str, Any]:
    """Documents sorting after `values` in `order`: (a > x) or (a = x and b > y) ..."""
    alternatives = []
    for position, name in enumerate(order):
        equal = {order[index]: values[index] for index in range(position)}
        alternatives.append({**equal, name: {"$gt": values[position]}})
    return alternatives[0] if len(alternatives) == 1 else {"$or": alternatives}
