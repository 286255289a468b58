"""Subscribers in the single table: one item per subscriber, one claim item per msisdn and imsi.

Every write is one TransactWriteItems holding the subscriber item, the claim puts/deletes, the
audit entry and the counter ADDs, so uniqueness, history and counts can't disagree.

Lists read sharded GSI partitions: every subscriber lands in one of `SHARDS` partitions per key
(by a stable hash of its uid), so no partition key takes every write of a bulk import. A page
queries each shard in sort-key order and merges them; because every shard is sorted by the same
key, the last key returned is each shard's position, and that one value is the cursor.
"""

from __future__ import annotations

import builtins
import logging
import math
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.changefeed.catalog import DEFAULT_RETENTION_DAYS
from app.storage.base import (
    ConditionFailed,
    CounterDrift,
    CursorRejected,
    Page,
    StorageError,
    ValueTaken,
    missing_or_stale,
)
from app.storage.counting import SubscriberCounts, reconcile, subscriber_counter_deltas
from app.storage.dynamodb.audit import audit_puts
from app.storage.dynamodb.codec import dump, load
from app.storage.dynamodb.counters import DynamoCounterRepository, counter_updates
from app.storage.dynamodb.events import event_puts
from app.storage.dynamodb.schema import GSI1, GSI2, GSI3, GSI4, index_keys
from app.storage.dynamodb.table import (
    TRANSACTION_BYTES,
    TRANSACTION_LIMIT,
    DynamoTable,
    Item,
    deserialize,
    item_size,
    key,
    serialize,
    serialize_values,
)
from app.storage.importing import (
    ImportMode,
    ImportOutcome,
    ImportRow,
    PlannedWrite,
    aggregate_deltas,
    decide,
    dry_run_check,
    row_events,
    taken,
    written,
)
from app.storage.records import AuditEntry, SubscriberRecord, SubscriberStatus

logger = logging.getLogger("app.storage.dynamodb")
# Fixed: changing it needs every subscriber's index keys rewritten. 8 shards give each status
# (and each plan) ~8,000 index writes/s before per-partition throttling, above what one table's
# 40,000 WCU allow for transactional subscriber writes anyway.
SHARDS = 8
SUBSCRIBER_SK = "SUBSCRIBER"
CLAIM_SK = "CLAIM"
# uids are [A-Za-z0-9_-]: every uid sorts between these two characters, which lets a key range
# express "after the cursor and still within the prefix" in one key condition.
_BELOW_UID_CHARS, _ABOVE_UID_CHARS = "!", "~"


def shard_of(uid: str) -> int:
    """Stable across processes (unlike `hash`), so a subscriber's index keys never move."""
    return zlib.crc32(uid.encode()) % SHARDS


def subscriber_key(uid: str) -> tuple[str, str]:
    return f"SUB#{uid}", SUBSCRIBER_SK


def msisdn_claim_key(msisdn: str) -> tuple[str, str]:
    return f"MSISDN#{msisdn}", CLAIM_SK


def imsi_claim_key(imsi: str) -> tuple[str, str]:
    return f"IMSI#{imsi}", CLAIM_SK


def subscriber_item(subscriber: SubscriberRecord) -> dict[str, Any]:
    uid, shard, status = subscriber.uid, shard_of(subscriber.uid), subscriber.status.value
    pk, sk = subscriber_key(uid)
    return {
        "PK": pk,
        "SK": sk,
        "type": "subscriber",
        "GSI1PK": f"SUBS#{shard}",
        "GSI1SK": uid,
        "GSI2PK": f"SUBSTATUS#{status}#{shard}",
        "GSI2SK": uid,
        "GSI3PK": f"SUBPLAN#{subscriber.plan}#{shard}",
        "GSI3SK": f"{status}#{uid}",
        "GSI4PK": f"SUBEMAIL#{subscriber.email}" if subscriber.email else None,
        "GSI4SK": uid if subscriber.email else None,
        **dump(subscriber),
    }


def _claim_put(claim_key: tuple[str, str], uid: str) -> dict[str, Any]:
    pk, sk = claim_key
    return {
        "Put": {
            "Item": serialize({"PK": pk, "SK": sk, "type": "claim", "uid": uid}),
            "ConditionExpression": "attribute_not_exists(PK)",
        }
    }


def _claim_release(claim_key: tuple[str, str], uid: str) -> dict[str, Any]:
    """Only the owner releases a claim; a failed check means the claims are inconsistent."""
    return {
        "Delete": {
            "Key": key(*claim_key),
            "ConditionExpression": "#uid = :uid",
            "ExpressionAttributeNames": {"#uid": "uid"},
            "ExpressionAttributeValues": serialize_values({":uid": uid}),
        }
    }


def _version_condition(version: int) -> dict[str, Any]:
    return {
        "ConditionExpression": "#v = :v",
        "ExpressionAttributeNames": {"#v": "version"},
        "ExpressionAttributeValues": serialize_values({":v": version}),
    }


def _counter_actions(before: SubscriberRecord | None, after: SubscriberRecord | None) -> list[dict[str, Any]]:
    return [
        action
        for scope, deltas in subscriber_counter_deltas(before, after).items()
        for action in counter_updates(scope, deltas)
    ]


@dataclass
class _Transaction:
    """Transaction actions, each with what its failed condition means to the caller."""

    actions: list[dict[str, Any]] = field(default_factory=list)
    meanings: list[str] = field(default_factory=list)

    def add(self, action: dict[str, Any], meaning: str = "") -> None:
        self.actions.append(action)
        self.meanings.append(meaning)

    def first_failure(self, codes: list[str]) -> str:
        for code, meaning in zip(codes, self.meanings, strict=False):
            if code == "ConditionalCheckFailed":
                return meaning
        return ""


@dataclass
class _Shard:
    partition: str
    buffer: deque[Item] = field(default_factory=deque)
    start_key: dict[str, Any] | None = None
    exhausted: bool = False


class DynamoSubscriberRepository:
    def __init__(self, table: DynamoTable) -> None:
        self.table = table
        self.counters = DynamoCounterRepository(table)

    # --- writes ------------------------------------------------------------------------------------

    def create(self, subscriber: SubscriberRecord, audit: AuditEntry) -> None:
        transaction = _audited(_writes(None, subscriber), audit, None, subscriber)

        def cancelled(codes: list[str]) -> StorageError:
            return _taken(transaction.first_failure(codes) or "uid", subscriber)

        self.table.transact(transaction.actions, on_cancel=cancelled)

    def replace(self, current: SubscriberRecord, updated: SubscriberRecord, audit: AuditEntry) -> None:
        _check_successor(current, updated)
        transaction = _audited(_writes(current, updated), audit, current, updated)
        self.table.transact(
            transaction.actions, on_cancel=lambda codes: self._write_failed(transaction, codes, updated)
        )

    def delete(self, current: SubscriberRecord, audit: AuditEntry) -> None:
        removal = [
            ({"Delete": {"Key": key(*subscriber_key(current.uid)), **_version_condition(current.version)}}, "version"),
            (_claim_release(msisdn_claim_key(current.msisdn), current.uid), "release"),
            (_claim_release(imsi_claim_key(current.imsi), current.uid), "release"),
        ]
        transaction = _audited(removal, audit, current, None)
        self.table.transact(
            transaction.actions, on_cancel=lambda codes: self._write_failed(transaction, codes, current)
        )

    def _write_failed(self, transaction: _Transaction, codes: list[str], subscriber: SubscriberRecord) -> StorageError:
        failure = transaction.first_failure(codes)
        if failure == "version" or not failure:
            return missing_or_stale("subscriber", subscriber.uid, self.get(subscriber.uid))
        if failure == "release":
            # Claims only change together with their subscriber, so this is a bug or a manual edit.
            logger.error("subscriber claims do not match the subscriber", extra={"uid": subscriber.uid})
            return ConditionFailed(
                f"the msisdn/imsi claims of subscriber {subscriber.uid!r} do not match it; nothing changed"
            )
        return _taken(failure, subscriber)

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
        """Rows go in transactions of up to 100 actions (subscriber + claims per row, plus one ADD per
        counter key the group moves, with the group's deltas added up). A cancelled transaction wrote
        nothing: its CancellationReasons name the failing actions, whose rows become row errors, and
        the rest of the group is sent again."""
        existing = self._get_subscribers(row.record.uid for row in rows)
        if dry_run:
            return self._dry_run(rows, existing, mode=mode, job_id=job_id)
        outcomes: builtins.list[ImportOutcome] = []
        group = _Group()
        for row in rows:
            decision = decide(row, existing.get(row.record.uid), mode=mode, job_id=job_id)
            if isinstance(decision, ImportOutcome):
                outcomes.append(decision)
                continue
            entry = _Entry.of(row, decision, event_retention_days)
            if not group.fits(entry):
                outcomes.extend(self._write_group(group.entries, job_id, between_writes))
                group = _Group()
            group.add(entry)
        if group.entries:
            outcomes.extend(self._write_group(group.entries, job_id, between_writes))
        return outcomes

    def _get_subscribers(self, uids: Iterable[str]) -> dict[str, SubscriberRecord]:
        items = self.table.get_many(subscriber_key(uid) for uid in uids)
        return {item["uid"]: load(SubscriberRecord, item) for item in items}

    def _claim_owners(self, claim_keys: Iterable[tuple[str, str]]) -> dict[str, SubscriberRecord]:
        """Owner of each claim, keyed by the claim's PK."""
        claims = {item["PK"]: item["uid"] for item in self.table.get_many(claim_keys)}
        owners = self._get_subscribers(set(claims.values()))
        return {pk: owners[uid] for pk, uid in claims.items() if uid in owners}

    def _dry_run(
        self,
        rows: builtins.list[ImportRow],
        existing: dict[str, SubscriberRecord],
        *,
        mode: ImportMode,
        job_id: str,
    ) -> builtins.list[ImportOutcome]:
        claim_keys = [msisdn_claim_key(row.record.msisdn) for row in rows]
        claim_keys += [imsi_claim_key(row.record.imsi) for row in rows]
        owners = self._claim_owners(claim_keys)
        return [
            dry_run_check(
                row,
                existing.get(row.record.uid),
                owners.get(msisdn_claim_key(row.record.msisdn)[0]),
                owners.get(imsi_claim_key(row.record.imsi)[0]),
                mode=mode,
                job_id=job_id,
            )
            for row in rows
        ]

    def _write_group(
        self, group: builtins.list[_Entry], job_id: str, between_writes: Callable[[], None] | None
    ) -> builtins.list[ImportOutcome]:
        outcomes: builtins.list[ImportOutcome] = []
        pending = list(group)
        while pending:
            transaction = _Transaction()
            owners: builtins.list[int] = []  # index into `pending` of each action's row
            for index, entry in enumerate(pending):
                for action, meaning in entry.actions:
                    transaction.add(action, meaning)
                    owners.append(index)
            deltas = aggregate_deltas((entry.write.before, entry.write.after) for entry in pending)
            for scope, changes in deltas.items():
                for action in counter_updates(scope, changes):
                    transaction.add(action)
            try:
                self.table.transact(transaction.actions, on_cancel=_Cancelled)
            except _Cancelled as cancelled:
                if between_writes is not None:
                    between_writes()
                failed = {
                    owners[position]: transaction.meanings[position]
                    for position, code in enumerate(cancelled.codes[: len(owners)])
                    if code == "ConditionalCheckFailed"
                }
                if not failed:
                    raise StorageError(f"import transaction cancelled: {cancelled.codes}") from None
                for index, meaning in sorted(failed.items()):
                    outcomes.append(self._refused(pending[index].row, meaning, job_id))
                pending = [entry for index, entry in enumerate(pending) if index not in failed]
                continue
            outcomes.extend(written(entry.write) for entry in pending)
            pending = []
            if between_writes is not None:
                between_writes()
        return outcomes

    def _refused(self, row: ImportRow, meaning: str, job_id: str) -> ImportOutcome:
        record = row.record
        if meaning in ("msisdn", "imsi"):
            claim = msisdn_claim_key(record.msisdn) if meaning == "msisdn" else imsi_claim_key(record.imsi)
            return taken(row, meaning, self._get_claimed(claim), job_id)
        if meaning == "uid":
            return taken(row, "uid", self.get(record.uid), job_id)
        if meaning == "release":
            logger.error("subscriber claims do not match the subscriber", extra={"uid": record.uid})
        return ImportOutcome(
            row.row, "failed", "uid", "changed_concurrently", "the subscriber changed while importing", record.uid
        )

    # --- reads -------------------------------------------------------------------------------------

    def get(self, uid: str) -> SubscriberRecord | None:
        item = self.table.get(*subscriber_key(uid))
        return load(SubscriberRecord, item) if item else None

    def _get_claimed(self, claim_key: tuple[str, str]) -> SubscriberRecord | None:
        claim = self.table.get(*claim_key)
        return self.get(claim["uid"]) if claim else None

    def get_by_msisdn(self, msisdn: str) -> SubscriberRecord | None:
        return self._get_claimed(msisdn_claim_key(msisdn))

    def get_by_imsi(self, imsi: str) -> SubscriberRecord | None:
        return self._get_claimed(imsi_claim_key(imsi))

    def find_by_email(self, email: str, *, limit: int, cursor: str | None = None) -> Page[SubscriberRecord]:
        return self._merged_page(
            scope=f"subscribers:email:{email}",
            index=GSI4,
            partitions=[f"SUBEMAIL#{email}"],
            prefix=None,
            limit=limit,
            cursor=cursor,
        )

    def find_by_uid_prefix(self, prefix: str, *, limit: int, cursor: str | None = None) -> Page[SubscriberRecord]:
        return self._merged_page(
            scope=f"subscribers:uid-prefix:{prefix}",
            index=GSI1,
            partitions=[f"SUBS#{shard}" for shard in range(SHARDS)],
            prefix=prefix,
            limit=limit,
            cursor=cursor,
        )

    def list(
        self,
        *,
        status: SubscriberStatus | None = None,
        plan: str | None = None,
        limit: int,
        cursor: str | None = None,
    ) -> Page[SubscriberRecord]:
        scope = f"subscribers:list:{status.value if status else ''}:{plan or ''}"
        shards = range(SHARDS)
        if plan is not None:
            # Sorted by status#uid: with a status too, that status's key range is ordered by uid.
            return self._merged_page(
                scope=scope,
                index=GSI3,
                partitions=[f"SUBPLAN#{plan}#{shard}" for shard in shards],
                prefix=f"{status.value}#" if status else None,
                limit=limit,
                cursor=cursor,
            )
        if status is not None:
            partitions = [f"SUBSTATUS#{status.value}#{shard}" for shard in shards]
            return self._merged_page(
                scope=scope, index=GSI2, partitions=partitions, prefix=None, limit=limit, cursor=cursor
            )
        partitions = [f"SUBS#{shard}" for shard in shards]
        return self._merged_page(
            scope=scope, index=GSI1, partitions=partitions, prefix=None, limit=limit, cursor=cursor
        )

    def _merged_page(
        self,
        *,
        scope: str,
        index: str,
        partitions: Sequence[str],
        prefix: str | None,
        limit: int,
        cursor: str | None,
    ) -> Page[SubscriberRecord]:
        """Up to `limit` items in sort-key order across `partitions` (each sorted by that key).

        Each shard is read a few items at a time and topped up only when the merge needs its next
        item, so a page costs about `limit` items read, not `limit` per shard.
        """
        after = self._cursor_position(scope, cursor, prefix)
        range_key = index_keys(index)[1]
        chunk = max(4, math.ceil(1.5 * (limit + 1) / len(partitions)) + 1)
        shards = [_Shard(partition) for partition in partitions]
        merged: builtins.list[Item] = []
        while len(merged) <= limit:
            for shard in shards:
                while not shard.buffer and not shard.exhausted:
                    self._read_more(shard, index, prefix, after, chunk)
            ready = [shard for shard in shards if shard.buffer]
            if not ready:
                break
            merged.append(min(ready, key=lambda shard: shard.buffer[0][range_key]).buffer.popleft())
        page = merged[:limit]
        next_cursor = None
        if len(merged) > limit:
            next_cursor = self.table.cursors.encode(scope, {"after": page[-1][range_key]})
        return Page([load(SubscriberRecord, item) for item in page], next_cursor)

    def _cursor_position(self, scope: str, cursor: str | None, prefix: str | None) -> str | None:
        if not cursor:
            return None
        after = self.table.cursors.decode(scope, cursor).get("after")
        if not isinstance(after, str) or (prefix and not after.startswith(prefix)):
            raise CursorRejected()
        return after

    def _read_more(self, shard: _Shard, index: str, prefix: str | None, after: str | None, chunk: int) -> None:
        hash_key, range_key = index_keys(index)
        values: dict[str, Any] = {":pk": shard.partition}
        condition = "#pk = :pk"
        if prefix is not None and after is not None:
            condition += " AND #sk BETWEEN :low AND :high"
            values.update({":low": after + _BELOW_UID_CHARS, ":high": prefix + _ABOVE_UID_CHARS})
        elif prefix is not None:
            condition += " AND begins_with(#sk, :prefix)"
            values[":prefix"] = prefix
        elif after is not None:
            condition += " AND #sk > :after"
            values[":after"] = after
        names = {"#pk": hash_key} | ({"#sk": range_key} if len(values) > 1 else {})
        kwargs: dict[str, Any] = {
            "TableName": self.table.name,
            "IndexName": index,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": serialize_values(values),
            "Limit": chunk,
        }
        if shard.start_key:
            kwargs["ExclusiveStartKey"] = shard.start_key
        response = self.table.call("query", **kwargs)
        shard.buffer.extend(deserialize(raw) for raw in response.get("Items", []))
        shard.start_key = response.get("LastEvaluatedKey")
        shard.exhausted = shard.start_key is None

    # --- maintenance -------------------------------------------------------------------------------

    def _all_subscriber_items(self) -> Iterator[Item]:
        for shard in range(SHARDS):
            yield from self.table.query_all(partition=f"SUBS#{shard}", index=GSI1)

    def reconcile_counters(self, *, fix: bool) -> builtins.list[CounterDrift]:
        counts = SubscriberCounts()
        for item in self._all_subscriber_items():
            counts.add(item["status"], item["plan"])
        return reconcile(self.counters, counts, fix=fix)


class _Cancelled(StorageError):
    def __init__(self, codes: list[str]) -> None:
        super().__init__(f"transaction cancelled: {codes}")
        self.codes = codes


def _writes(before: SubscriberRecord | None, after: SubscriberRecord) -> list[tuple[dict[str, Any], str]]:
    """The put of `after` (new, or replacing `before`) and the claims it takes or gives back, each
    with what its failed condition means."""
    if before is None:
        put = {"Put": {"Item": serialize(subscriber_item(after)), "ConditionExpression": "attribute_not_exists(PK)"}}
        return [
            (put, "uid"),
            (_claim_put(msisdn_claim_key(after.msisdn), after.uid), "msisdn"),
            (_claim_put(imsi_claim_key(after.imsi), after.uid), "imsi"),
        ]
    actions = [({"Put": {"Item": serialize(subscriber_item(after)), **_version_condition(before.version)}}, "version")]
    if after.msisdn != before.msisdn:
        actions.append((_claim_release(msisdn_claim_key(before.msisdn), before.uid), "release"))
        actions.append((_claim_put(msisdn_claim_key(after.msisdn), after.uid), "msisdn"))
    if after.imsi != before.imsi:
        actions.append((_claim_release(imsi_claim_key(before.imsi), before.uid), "release"))
        actions.append((_claim_put(imsi_claim_key(after.imsi), after.uid), "imsi"))
    return actions


def _audited(
    writes: list[tuple[dict[str, Any], str]],
    audit: AuditEntry,
    before: SubscriberRecord | None,
    after: SubscriberRecord | None,
) -> _Transaction:
    """The writes of one subscriber change with its audit entry and counter changes: one transaction."""
    transaction = _Transaction()
    for action, meaning in writes:
        transaction.add(action, meaning)
    for action in audit_puts(audit):
        transaction.add(action)
    for action in _counter_actions(before, after):
        transaction.add(action)
    return transaction


def action_size(action: Mapping[str, Any]) -> int:
    """The item bytes a transaction action counts for: its item, or its key and values."""
    body = next(iter(action.values()))
    return item_size(body.get("Item") or body["Key"]) + item_size(body.get("ExpressionAttributeValues") or {})


# A counter ADD is a short key and two small values, well under this.
_COUNTER_ACTION_BYTES = 256


@dataclass
class _Entry:
    """One imported row with its actions, built and measured once."""

    row: ImportRow
    write: PlannedWrite
    actions: list[tuple[dict[str, Any], str]]
    size: int
    deltas: list[tuple[tuple[str, str], int]]

    @classmethod
    def of(cls, row: ImportRow, write: PlannedWrite, event_retention_days: int) -> _Entry:
        events = event_puts(row_events(write, retention_days=event_retention_days))
        actions = [*_writes(write.before, write.after), *((put, "") for put in events)]
        moved = subscriber_counter_deltas(write.before, write.after)
        return cls(
            row,
            write,
            actions,
            sum(action_size(action) for action, _ in actions),
            [((scope, name), delta) for scope, changes in moved.items() for name, delta in changes.items()],
        )


@dataclass
class _Group:
    """Rows of one import transaction. Counts its actions (the rows' plus one ADD per counter key
    whose summed delta is not zero) and its bytes as rows are added, so a row costs its own
    actions only, whatever the group's size."""

    entries: list[_Entry] = field(default_factory=list)
    actions: int = 0
    size: int = 0
    totals: Counter[tuple[str, str]] = field(default_factory=Counter)
    counter_keys: int = 0

    def _keys_after(self, entry: _Entry) -> int:
        return self.counter_keys + sum(
            (self.totals[name] + delta != 0) - (self.totals[name] != 0) for name, delta in entry.deltas
        )

    def fits(self, entry: _Entry) -> bool:
        if not self.entries:
            return True  # a row always fits an empty transaction (at most 5 actions + 4 counters)
        keys = self._keys_after(entry)
        actions = self.actions + len(entry.actions) + keys
        size = self.size + entry.size + keys * _COUNTER_ACTION_BYTES
        return actions <= TRANSACTION_LIMIT and size <= TRANSACTION_BYTES

    def add(self, entry: _Entry) -> None:
        self.counter_keys = self._keys_after(entry)
        for name, delta in entry.deltas:
            self.totals[name] += delta
        self.entries.append(entry)
        self.actions += len(entry.actions)
        self.size += entry.size


def _check_successor(current: SubscriberRecord, updated: SubscriberRecord) -> None:
    if updated.uid != current.uid or updated.version != current.version + 1:
        raise ValueError("the updated subscriber must keep the uid and have version = current.version + 1")


def _taken(field_name: str, subscriber: SubscriberRecord) -> ValueTaken:
    if field_name == "uid":
        return ValueTaken(f"subscriber {subscriber.uid!r} already exists", attribute="uid")
    value = getattr(subscriber, field_name)
    return ValueTaken(f"{field_name} {value!r} is already in use by another subscriber", attribute=field_name)
