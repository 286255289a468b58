"""UTC time helpers: the API and the stores only ever see timezone-aware UTC datetimes."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, to the millisecond: MongoDB keeps milliseconds, so both stores round-trip it exactly."""
    return truncate_ms(datetime.now(UTC))


def truncate_ms(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def as_utc(value: datetime) -> datetime:
    """Aware datetimes are converted; naive ones (e.g. from MongoDB) are taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def sortable(value: datetime) -> str:
    """Fixed-width UTC ISO-8601 text, so string order equals time order in sort keys."""
    utc = as_utc(value)
    return f"{utc.year:04d}" + utc.strftime("-%m-%dT%H:%M:%S.%fZ")  # %Y leaves years before 1000 unpadded


def epoch_seconds(value: datetime) -> int:
    return int(as_utc(value).timestamp())


def time_ordered_id() -> str:
    """Nanosecond time then randomness: entries of one entity written in the same millisecond
    (the stored time's resolution) still list in the order they were made."""
    return f"{time.time_ns():016x}{secrets.token_hex(4)}"
