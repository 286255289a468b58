"""Subscriber counters shared by both backends: how writes move them, and how to reconcile them."""

from __future__ import annotations

from collections import Counter

from app.storage.base import SUBSCRIBER_PLAN_SCOPE, SUBSCRIBER_STATUS_SCOPE, CounterDrift, CounterRepository
from app.storage.records import SubscriberRecord


def subscriber_counter_deltas(
    before: SubscriberRecord | None, after: SubscriberRecord | None
) -> dict[str, dict[str, int]]:
    """How a create (before=None), update or delete (after=None) moves each counter; zeros left out."""
    deltas: dict[str, Counter[str]] = {SUBSCRIBER_STATUS_SCOPE: Counter(), SUBSCRIBER_PLAN_SCOPE: Counter()}
    for record, sign in ((before, -1), (after, 1)):
        if record is not None:
            deltas[SUBSCRIBER_STATUS_SCOPE][record.status.value] += sign
            deltas[SUBSCRIBER_PLAN_SCOPE][record.plan] += sign
    return {scope: {key: delta for key, delta in keys.items() if delta} for scope, keys in deltas.items()}


class SubscriberCounts:
    """Counts recomputed from the data by a maintenance scan."""

    def __init__(self) -> None:
        self.by_scope: dict[str, Counter[str]] = {SUBSCRIBER_STATUS_SCOPE: Counter(), SUBSCRIBER_PLAN_SCOPE: Counter()}

    def add(self, status: str, plan: str, count: int = 1) -> None:
        self.by_scope[SUBSCRIBER_STATUS_SCOPE][status] += count
        self.by_scope[SUBSCRIBER_PLAN_SCOPE][plan] += count


def reconcile(counters: CounterRepository, counts: SubscriberCounts, *, fix: bool) -> list[CounterDrift]:
    """Compare stored counters with recomputed counts (a missing counter counts as 0); fix if asked."""
    drift: list[CounterDrift] = []
    for scope, actual in counts.by_scope.items():
        stored = counters.get(scope)
        scope_drift = [
            CounterDrift(scope, name, stored.get(name, 0), actual.get(name, 0))
            for name in sorted(set(stored) | set(actual))
            if stored.get(name, 0) != actual.get(name, 0)
        ]
        if fix and scope_drift:
            counters.replace(scope, {name: count for name, count in actual.items() if count})
        drift.extend(scope_drift)
    return drift
