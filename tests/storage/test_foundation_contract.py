"""Contract tests for the shared repositories (audit, counters, throttle, readiness) on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.storage.base import AuditQuery, CursorRejected, Store
from app.storage.dynamodb.audit import AUDIT_DAYS_PER_PAGE
from app.storage.records import AuditEntry
from app.timeutil import utcnow


def _entry(n: int, entity_id: str = "u1", **overrides: object) -> AuditEntry:
    values: dict[str, object] = {
        "id": f"a{n:04d}",
        "at": utcnow() + timedelta(seconds=n),
        "actor": "alice",
        "action": "subscriber.update",
        "entity_type": "subscriber",
        "entity_id": entity_id,
        "request_id": f"req-{n}",
        "before": {"status": "ACTIVE", "n": n},
        "after": {"status": "SUSPENDED", "nested": {"x": 1.5}},
    }
    values.update(overrides)
    return AuditEntry.model_validate(values)


@pytest.mark.needs_mongodb_server("briskdb keeps no expireAfterSeconds on a TTL index")
def test_readiness_reports_every_check_ok(store: Store) -> None:
    readiness = store.readiness()
    assert readiness.ok, readiness.checks
    assert readiness.backend == store.backend
    assert len(readiness.checks) >= 2


def test_audit_round_trips_and_lists_newest_first_with_cursor(store: Store) -> None:
    entries = [_entry(n) for n in range(7)]
    for entry in entries:
        store.audit.append(entry)
    store.audit.append(_entry(99, entity_id="other"))

    first = store.audit.list_for_entity("subscriber", "u1", limit=3)
    assert [e.id for e in first.items] == ["a0006", "a0005", "a0004"]
    assert first.items[0] == entries[6]
    assert first.next_cursor
    second = store.audit.list_for_entity("subscriber", "u1", limit=3, cursor=first.next_cursor)
    third = store.audit.list_for_entity("subscriber", "u1", limit=3, cursor=second.next_cursor)
    assert [e.id for e in second.items + third.items] == ["a0003", "a0002", "a0001", "a0000"]
    assert third.next_cursor is None


def test_audit_page_that_ends_exactly_has_no_cursor(store: Store) -> None:
    for n in range(3):
        store.audit.append(_entry(n))
    page = store.audit.list_for_entity("subscriber", "u1", limit=3)
    assert len(page.items) == 3
    assert page.next_cursor is None


def _flip_signature(cursor: str) -> str:
    """Change a middle character of the signature (the last base64 character may carry only padding bits)."""
    payload, signature = cursor.split(".")
    middle = len(signature) // 2
    changed = "A" if signature[middle] != "A" else "B"
    return f"{payload}.{signature[:middle]}{changed}{signature[middle + 1 :]}"


@pytest.mark.parametrize("mangle", [_flip_signature, lambda c: "x" + c, lambda c: "garbage", lambda c: "a.b.c"])
def test_tampered_cursor_is_rejected(store: Store, mangle: object) -> None:
    for n in range(3):
        store.audit.append(_entry(n))
    cursor = store.audit.list_for_entity("subscriber", "u1", limit=1).next_cursor
    assert cursor
    with pytest.raises(CursorRejected):
        store.audit.list_for_entity("subscriber", "u1", limit=1, cursor=mangle(cursor))  # type: ignore[operator]


def test_cursor_of_another_query_is_rejected(store: Store) -> None:
    for n in range(3):
        store.audit.append(_entry(n))
        store.audit.append(_entry(n + 10, entity_id="u2"))
    cursor = store.audit.list_for_entity("subscriber", "u1", limit=1).next_cursor
    with pytest.raises(CursorRejected):
        store.audit.list_for_entity("subscriber", "u2", limit=1, cursor=cursor)


def test_counters_increment_get_and_replace(store: Store) -> None:
    assert store.counters.get("subscribers.status") == {}
    store.counters.increment("subscribers.status", {"ACTIVE": 2, "SUSPENDED": 1})
    store.counters.increment("subscribers.status", {"ACTIVE": -1, "TERMINATED": 0})
    store.counters.increment("subscribers.plan", {"GOLD": 5})
    assert store.counters.get("subscribers.status") == {"ACTIVE": 1, "SUSPENDED": 1}
    store.counters.replace("subscribers.status", {"ACTIVE": 10, "INACTIVE": 3})
    assert store.counters.get("subscribers.status") == {"ACTIVE": 10, "INACTIVE": 3}
    assert store.counters.get("subscribers.plan") == {"GOLD": 5}


def test_throttle_counts_per_key_and_window(store: Store) -> None:
    now = utcnow().replace(second=10)
    assert [store.throttle.hit("login:1.2.3.4", 60, now=now) for _ in range(3)] == [1, 2, 3]
    assert store.throttle.hit("login:5.6.7.8", 60, now=now) == 1
    assert store.throttle.hit("login:1.2.3.4", 60, now=now + timedelta(seconds=60)) == 1


def _seed_search(store: Store) -> list[AuditEntry]:
    base = utcnow().replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=3)
    entries = []
    for n in range(12):
        entries.append(
            _entry(
                n,
                entity_id=f"u{n % 3}",
                at=base + timedelta(hours=6 * n),  # spread over three days and more
                actor="alice" if n % 2 else "bob",
                entity_type="subscriber" if n % 4 else "user",
            )
        )
    for entry in entries:
        store.audit.append(entry)
    return entries


def _walk(store: Store, query: AuditQuery, limit: int) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        page = store.audit.search(query, limit=limit, cursor=cursor)
        ids.extend(entry.id for entry in page.items)
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


@pytest.mark.parametrize("limit", [1, 2, 5, 50])
@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"actor": "alice"},
        {"entity_type": "subscriber"},
        {"entity_type": "subscriber", "entity_id": "u1"},
        {"entity_type": "subscriber", "entity_id": "u1", "actor": "alice"},
        {"actor": "bob", "entity_type": "user"},
    ],
)
def test_audit_search_filters_and_pages_newest_first(store: Store, filters: dict[str, str], limit: int) -> None:
    entries = _seed_search(store)
    since, until = entries[1].at, entries[10].at
    expected = [
        entry.id
        for entry in sorted(entries, key=lambda e: e.at, reverse=True)
        if since <= entry.at <= until and all(getattr(entry, key) == value for key, value in filters.items())
    ]
    assert expected  # every filter combination selects something
    assert _walk(store, AuditQuery(since=since, until=until, **filters), limit) == expected


@pytest.mark.parametrize("older", [False, True])
def test_a_full_audit_page_has_a_cursor_only_if_more_entries_follow(store: Store, older: bool) -> None:
    """The day walk must not hand out a cursor to an empty last page when the older days are empty."""
    now = utcnow()
    latest = [_entry(n, entity_id="u1", at=now - timedelta(minutes=n + 1)) for n in range(2)]
    earlier = [_entry(9, entity_id="u1", at=now - timedelta(days=4))] if older else []
    for entry in latest + earlier:
        store.audit.append(entry)
    query = AuditQuery(since=now - timedelta(days=7), until=now)
    page = store.audit.search(query, limit=2)
    assert [entry.id for entry in page.items] == [entry.id for entry in latest]
    if not older:
        assert page.next_cursor is None
        return
    assert page.next_cursor is not None
    rest = store.audit.search(query, limit=2, cursor=page.next_cursor)
    assert ([entry.id for entry in rest.items], rest.next_cursor) == ([earlier[0].id], None)


def test_an_audit_window_of_any_length_is_searched_in_pages_of_bounded_work(
    store: Store, dynamo_queries: list[dict[str, Any]] | None
) -> None:
    """Ten years are some 3,650 day partitions on DynamoDB: a page reads a bounded number of them and
    its cursor goes on from there, so a long window costs more pages, never one unbounded request."""
    now = utcnow()
    recent, old = _entry(1, at=now - timedelta(minutes=1)), _entry(2, at=now - timedelta(days=3650))
    for entry in (recent, old):
        store.audit.append(entry)
    query = AuditQuery(since=now - timedelta(days=3660), until=now)
    ids, cursor, pages = [], None, 0
    while True:
        before = len(dynamo_queries or [])
        page = store.audit.search(query, limit=5, cursor=cursor)
        if dynamo_queries is not None:
            assert len(dynamo_queries) - before <= AUDIT_DAYS_PER_PAGE
        ids.extend(entry.id for entry in page.items)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert ids == [recent.id, old.id]
    days = (query.until.date() - query.since.date()).days + 1
    assert pages == (1 if dynamo_queries is None else -(-days // AUDIT_DAYS_PER_PAGE))


def test_an_audit_window_at_the_first_day_of_the_calendar_is_searched(store: Store) -> None:
    first_day = datetime(1, 1, 1, tzinfo=UTC)
    query = AuditQuery(since=first_day, until=first_day + timedelta(days=1))
    assert store.audit.search(query, limit=5).items == []


def test_audit_search_cursor_is_bound_to_its_filters(store: Store) -> None:
    entries = _seed_search(store)
    query = AuditQuery(since=entries[0].at, until=entries[-1].at)
    cursor = store.audit.search(query, limit=1).next_cursor
    assert cursor
    with pytest.raises(CursorRejected):
        store.audit.search(AuditQuery(since=entries[0].at, until=entries[-1].at, actor="bob"), limit=1, cursor=cursor)
