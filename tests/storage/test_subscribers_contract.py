"""Contract tests of the subscriber repository: every method, on every backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from app.storage.base import (
    CounterDrift,
    CursorRejected,
    Page,
    RecordMissing,
    StaleVersion,
    Store,
    ValueTaken,
)
from app.storage.cursor import CursorCodec
from app.storage.records import SubscriberRecord, SubscriberStatus
from tests.conftest import BACKENDS, dynamo_store, mongo_store
from tests.subscribers.support import (
    assert_consistent,
    audit_for,
    counts,
    imsi,
    msisdn,
    raw_snapshot,
    record,
    subscriber_count,
)
from tests.support import TEST_SECRET, race

STATUS, PLAN = "subscribers.status", "subscribers.plan"


def _create(store: Store, subscriber: SubscriberRecord) -> SubscriberRecord:
    store.subscribers.create(subscriber, audit_for(subscriber))
    return subscriber


def _successor(current: SubscriberRecord, **changes: object) -> SubscriberRecord:
    return current.model_copy(update={**changes, "version": current.version + 1})


def _all_pages(fetch: Callable[[str | None], Page[SubscriberRecord]]) -> list[str]:
    uids: list[str] = []
    cursor: str | None = None
    for _ in range(100):
        page = fetch(cursor)
        uids.extend(subscriber.uid for subscriber in page.items)
        cursor = page.next_cursor
        if cursor is None:
            return uids
    raise AssertionError("pagination did not end")


# --- create and get ---------------------------------------------------------------------------------


def test_create_then_get_by_uid_msisdn_and_imsi(store: Store) -> None:
    subscriber = _create(store, record(1))
    assert store.subscribers.get("sub-0001") == subscriber
    assert store.subscribers.get_by_msisdn(msisdn(1)) == subscriber
    assert store.subscribers.get_by_imsi(imsi(1)) == subscriber
    assert store.subscribers.get("sub-0002") is None
    assert store.subscribers.get_by_msisdn(msisdn(2)) is None
    assert store.subscribers.get_by_imsi(imsi(2)) is None


def test_optional_fields_and_empty_attributes_round_trip(store: Store) -> None:
    subscriber = _create(store, record(1, iccid=None, email=None, attributes={}))
    assert store.subscribers.get("sub-0001") == subscriber


def test_attribute_values_keep_their_types(store: Store) -> None:
    attributes = {"s": "text", "t": True, "f": False, "i": -42, "big": 2**53 - 1, "x": 0.1, "e": ""}
    _create(store, record(1, attributes=attributes))
    stored = store.subscribers.get("sub-0001")
    assert stored is not None
    assert stored.attributes == attributes
    assert {name: type(value) for name, value in stored.attributes.items()} == {
        name: type(value) for name, value in attributes.items()
    }


@pytest.mark.parametrize(
    ("clash", "field"),
    [
        ({"msisdn": msisdn(9), "imsi": imsi(9)}, "uid"),
        ({"uid": "other"}, "msisdn"),
        ({"uid": "other", "msisdn": msisdn(9)}, "imsi"),
    ],
)
def test_create_refuses_a_taken_uid_msisdn_or_imsi_and_writes_nothing(
    store: Store, clash: dict[str, str], field: str
) -> None:
    _create(store, record(1))
    before = raw_snapshot(store)
    with pytest.raises(ValueTaken) as raised:
        store.subscribers.create(record(1, **clash), audit_for(record(1, **clash)))
    assert raised.value.attribute == field
    assert raw_snapshot(store) == before


def test_create_counts_by_status_and_plan(store: Store) -> None:
    _create(store, record(1))
    _create(store, record(2, status="SUSPENDED"))
    _create(store, record(3, plan="SILVER"))
    assert counts(store, STATUS) == {"ACTIVE": 2, "SUSPENDED": 1}
    assert counts(store, PLAN) == {"GOLD": 2, "SILVER": 1}


def test_each_write_appends_its_audit_entry_and_history_survives_delete(store: Store) -> None:
    current = _create(store, record(1))
    updated = _successor(current, status=SubscriberStatus.SUSPENDED)
    store.subscribers.replace(current, updated, audit_for(updated, "subscriber.update"))
    store.subscribers.delete(updated, audit_for(updated, "subscriber.delete"))
    history = store.audit.list_for_entity("subscriber", "sub-0001", limit=10)
    assert [entry.action for entry in history.items] == ["subscriber.delete", "subscriber.update", "subscriber.create"]


# --- replace ----------------------------------------------------------------------------------------


def test_replace_writes_the_new_version_and_moves_counters(store: Store) -> None:
    current = _create(store, record(1))
    updated = _successor(current, status=SubscriberStatus.SUSPENDED, plan="SILVER", email=None, attributes={})
    store.subscribers.replace(current, updated, audit_for(updated))
    assert store.subscribers.get("sub-0001") == updated
    assert counts(store, STATUS) == {"SUSPENDED": 1}
    assert counts(store, PLAN) == {"SILVER": 1}
    assert_consistent(store)


def test_replace_moves_msisdn_and_imsi_claims_in_one_step(store: Store) -> None:
    current = _create(store, record(1))
    updated = _successor(current, msisdn=msisdn(7), imsi=imsi(7))
    store.subscribers.replace(current, updated, audit_for(updated))
    assert store.subscribers.get_by_msisdn(msisdn(7)) == updated
    assert store.subscribers.get_by_imsi(imsi(7)) == updated
    assert store.subscribers.get_by_msisdn(msisdn(1)) is None
    # The released values are free for someone else.
    _create(store, record(2, msisdn=msisdn(1), imsi=imsi(1)))
    assert_consistent(store)


@pytest.mark.parametrize("field", ["msisdn", "imsi"])
def test_replace_to_a_taken_value_is_a_conflict_and_changes_nothing(store: Store, field: str) -> None:
    _create(store, record(1))
    current = _create(store, record(2))
    before = raw_snapshot(store)
    updated = _successor(current, **{field: getattr(record(1), field)}, status=SubscriberStatus.INACTIVE)
    with pytest.raises(ValueTaken) as raised:
        store.subscribers.replace(current, updated, audit_for(updated))
    assert raised.value.attribute == field
    assert raw_snapshot(store) == before


def test_replace_with_a_stale_version_fails_and_changes_nothing(store: Store) -> None:
    current = _create(store, record(1))
    store.subscribers.replace(current, _successor(current, first_name="Ann"), audit_for(current))
    before = raw_snapshot(store)
    with pytest.raises(StaleVersion):
        store.subscribers.replace(current, _successor(current, msisdn=msisdn(5)), audit_for(current))
    assert raw_snapshot(store) == before


def test_replace_of_a_missing_subscriber_is_not_found(store: Store) -> None:
    ghost = record(1)
    with pytest.raises(RecordMissing):
        store.subscribers.replace(ghost, _successor(ghost, first_name="Ann"), audit_for(ghost))


def test_replace_requires_the_next_version(store: Store) -> None:
    current = _create(store, record(1))
    with pytest.raises(ValueError, match="version"):
        store.subscribers.replace(current, current.model_copy(update={"first_name": "X"}), audit_for(current))


# --- delete -----------------------------------------------------------------------------------------


def test_delete_frees_msisdn_and_imsi_and_decrements_counters(store: Store) -> None:
    current = _create(store, record(1))
    _create(store, record(2))
    store.subscribers.delete(current, audit_for(current, "subscriber.delete"))
    assert store.subscribers.get("sub-0001") is None
    assert store.subscribers.get_by_msisdn(msisdn(1)) is None
    assert counts(store, STATUS) == {"ACTIVE": 1}
    _create(store, record(3, msisdn=msisdn(1), imsi=imsi(1)))
    assert_consistent(store)


def test_delete_with_a_stale_version_or_twice_fails(store: Store) -> None:
    current = _create(store, record(1))
    updated = _successor(current, first_name="Ann")
    store.subscribers.replace(current, updated, audit_for(updated))
    with pytest.raises(StaleVersion):
        store.subscribers.delete(current, audit_for(current))
    store.subscribers.delete(updated, audit_for(updated))
    with pytest.raises(RecordMissing):
        store.subscribers.delete(updated, audit_for(updated))
    assert_consistent(store)


# --- lists and search -------------------------------------------------------------------------------


def _populate(store: Store) -> list[SubscriberRecord]:
    """23 subscribers spread over every shard: statuses and plans cycle."""
    statuses = list(SubscriberStatus)
    plans = ["GOLD", "SILVER", "BRONZE"]
    return [
        _create(store, record(n, status=statuses[n % 4], plan=plans[n % 3], email=f"shared{n % 2}@example.com"))
        for n in range(23)
    ]


@pytest.fixture
def population(store: Store) -> list[SubscriberRecord]:
    return _populate(store)


@pytest.fixture(scope="module", params=[*BACKENDS, "mongo-real"])
def populated(request: pytest.FixtureRequest) -> Iterator[tuple[Store, list[SubscriberRecord]]]:
    """One populated store per backend for the read-only tests (moto copies the whole table on
    every transaction, so populating it once per test would dominate the suite's run time)."""
    cursors = CursorCodec(TEST_SECRET.encode())
    stores = (
        dynamo_store(cursors) if request.param == "dynamodb" else mongo_store(cursors, real=request.param != "mongo")
    )
    store = next(stores)
    yield store, _populate(store)
    next(stores, None)  # runs the generator's clean-up


@pytest.mark.parametrize("limit", [1, 3, 7, 23, 200])
def test_list_all_pages_through_every_subscriber_in_uid_order(
    populated: tuple[Store, list[SubscriberRecord]], limit: int
) -> None:
    store, population = populated
    uids = _all_pages(lambda cursor: store.subscribers.list(limit=limit, cursor=cursor))
    assert uids == sorted(s.uid for s in population)


def test_a_page_that_ends_exactly_has_no_cursor(populated: tuple[Store, list[SubscriberRecord]]) -> None:
    store, population = populated
    page = store.subscribers.list(limit=23)
    assert len(page.items) == 23
    assert page.next_cursor is None
    assert store.subscribers.list(limit=5).items == sorted(population, key=lambda s: s.uid)[:5]


def test_list_by_status(populated: tuple[Store, list[SubscriberRecord]]) -> None:
    store, population = populated
    uids = _all_pages(lambda cursor: store.subscribers.list(status=SubscriberStatus.SUSPENDED, limit=2, cursor=cursor))
    assert uids == sorted(s.uid for s in population if s.status is SubscriberStatus.SUSPENDED)


def test_list_by_plan_is_ordered_by_status_then_uid(populated: tuple[Store, list[SubscriberRecord]]) -> None:
    store, population = populated
    uids = _all_pages(lambda cursor: store.subscribers.list(plan="SILVER", limit=2, cursor=cursor))
    expected = sorted((s for s in population if s.plan == "SILVER"), key=lambda s: (s.status.value, s.uid))
    assert uids == [s.uid for s in expected]


def test_list_by_status_and_plan(populated: tuple[Store, list[SubscriberRecord]]) -> None:
    store, population = populated
    uids = _all_pages(
        lambda cursor: store.subscribers.list(status=SubscriberStatus.ACTIVE, plan="GOLD", limit=1, cursor=cursor)
    )
    assert uids == sorted(s.uid for s in population if s.status is SubscriberStatus.ACTIVE and s.plan == "GOLD")
    assert store.subscribers.list(plan="PLATINUM", limit=10) == Page([])


def test_list_follows_changes_of_status(store: Store) -> None:
    current = _create(store, record(1))
    updated = _successor(current, status=SubscriberStatus.TERMINATED)
    store.subscribers.replace(current, updated, audit_for(updated))
    assert store.subscribers.list(status=SubscriberStatus.ACTIVE, limit=10).items == []
    assert store.subscribers.list(status=SubscriberStatus.TERMINATED, limit=10).items == [updated]
    assert store.subscribers.list(plan="GOLD", status=SubscriberStatus.TERMINATED, limit=10).items == [updated]


def test_find_by_email_returns_every_subscriber_with_that_address(
    populated: tuple[Store, list[SubscriberRecord]],
) -> None:
    store, population = populated
    uids = _all_pages(lambda cursor: store.subscribers.find_by_email("shared1@example.com", limit=4, cursor=cursor))
    assert uids == sorted(s.uid for s in population if s.email == "shared1@example.com")
    assert store.subscribers.find_by_email("nobody@example.com", limit=4).items == []


@pytest.mark.parametrize(
    ("prefix", "expected"), [("sub-001", 10), ("sub-002", 3), ("sub-00", 23), ("sub-0007", 1), ("x", 0)]
)
def test_find_by_uid_prefix(populated: tuple[Store, list[SubscriberRecord]], prefix: str, expected: int) -> None:
    store, population = populated
    uids = _all_pages(lambda cursor: store.subscribers.find_by_uid_prefix(prefix, limit=3, cursor=cursor))
    assert uids == sorted(s.uid for s in population if s.uid.startswith(prefix))
    assert len(uids) == expected


def test_deleted_subscribers_leave_every_list_and_search(store: Store) -> None:
    current = _create(store, record(1))
    store.subscribers.delete(current, audit_for(current))
    assert store.subscribers.list(limit=5).items == []
    assert store.subscribers.list(status=SubscriberStatus.ACTIVE, plan="GOLD", limit=5).items == []
    assert store.subscribers.find_by_email(current.email or "", limit=5).items == []
    assert store.subscribers.find_by_uid_prefix("sub", limit=5).items == []


def test_cursors_are_bound_to_their_query(populated: tuple[Store, list[SubscriberRecord]]) -> None:
    store, _ = populated
    by_status = store.subscribers.list(status=SubscriberStatus.ACTIVE, limit=1).next_cursor
    assert by_status
    with pytest.raises(CursorRejected):
        store.subscribers.list(status=SubscriberStatus.SUSPENDED, limit=1, cursor=by_status)
    with pytest.raises(CursorRejected):
        store.subscribers.list(limit=1, cursor=by_status)
    prefix_cursor = store.subscribers.find_by_uid_prefix("sub-0", limit=1).next_cursor
    assert prefix_cursor
    with pytest.raises(CursorRejected):
        store.subscribers.find_by_uid_prefix("sub-00", limit=1, cursor=prefix_cursor)
    with pytest.raises(CursorRejected):
        store.subscribers.list(limit=1, cursor=prefix_cursor[:-3] + "abc")


# --- counters ---------------------------------------------------------------------------------------


def test_counters_stay_exact_through_a_mix_of_writes(store: Store, population: list[SubscriberRecord]) -> None:
    for subscriber in population[:8]:
        updated = _successor(subscriber, status=SubscriberStatus.TERMINATED, plan="LEGACY")
        store.subscribers.replace(subscriber, updated, audit_for(updated))
    for subscriber in population[8:12]:
        store.subscribers.delete(subscriber, audit_for(subscriber))
    assert subscriber_count(store) == 19
    assert counts(store, PLAN)["LEGACY"] == 8
    assert_consistent(store)


def test_reconcile_reports_drift_and_fixes_it_when_asked(store: Store, population: list[SubscriberRecord]) -> None:
    store.counters.increment(STATUS, {"ACTIVE": 3, "GHOST": 2})
    store.counters.increment(PLAN, {"GOLD": -1})
    expected_active = sum(1 for s in population if s.status is SubscriberStatus.ACTIVE)
    expected_gold = sum(1 for s in population if s.plan == "GOLD")
    drift = store.subscribers.reconcile_counters(fix=False)
    assert sorted(drift, key=lambda d: (d.scope, d.key)) == [
        CounterDrift(PLAN, "GOLD", expected_gold - 1, expected_gold),
        CounterDrift(STATUS, "ACTIVE", expected_active + 3, expected_active),
        CounterDrift(STATUS, "GHOST", 2, 0),
    ]
    assert store.subscribers.reconcile_counters(fix=False) == drift  # reporting changed nothing
    assert store.subscribers.reconcile_counters(fix=True) == drift
    assert store.subscribers.reconcile_counters(fix=False) == []
    assert counts(store, STATUS)["ACTIVE"] == expected_active


# --- concurrency ------------------------------------------------------------------------------------


def test_concurrent_msisdn_changes_to_one_value_leave_exactly_one_owner(store: Store) -> None:
    subscribers = [_create(store, record(n)) for n in range(10)]
    target = msisdn(999)

    def change(index: int) -> None:
        current = subscribers[index]
        updated = _successor(current, msisdn=target)
        store.subscribers.replace(current, updated, audit_for(updated))

    outcomes = race(10, change, refusals=(ValueTaken,))
    assert sum(outcome is None for outcome in outcomes) == 1
    assert all(isinstance(outcome, ValueTaken) and outcome.attribute == "msisdn" for outcome in outcomes if outcome)
    owner = store.subscribers.get_by_msisdn(target)
    assert owner is not None
    assert owner.uid == subscribers[outcomes.index(None)].uid
    assert_consistent(store)


def test_concurrent_updates_of_one_version_have_one_winner(store: Store) -> None:
    current = _create(store, record(1))

    def update(index: int) -> None:
        updated = _successor(current, plan=f"PLAN{index}")
        store.subscribers.replace(current, updated, audit_for(updated))

    outcomes = race(8, update, refusals=(StaleVersion,))
    assert sum(outcome is None for outcome in outcomes) == 1
    assert all(isinstance(outcome, StaleVersion) for outcome in outcomes if outcome)
    assert counts(store, PLAN) == {f"PLAN{outcomes.index(None)}": 1}
    assert_consistent(store)
