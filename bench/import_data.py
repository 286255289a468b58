"""Generated legacy subscriber files for the import benchmarks (shared by bench/import_*.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

HEADER = "Id;MSISDN;IMSI;First Name;Last Name;Status;Tariff;Region\r\n"
STATUSES = ("A", "active", "S", "Inactive")
PLANS = ("GOLD", "SILVER", "BRONZE")
MAPPING: dict[str, Any] = {
    "columns": {
        "Id": "uid",
        "MSISDN": "msisdn",
        "IMSI": "imsi",
        "First Name": "first_name",
        "Last Name": "last_name",
        "Tariff": "plan",
    },
    "transforms": {"status": ["trim", "upper", {"map": {"A": "ACTIVE", "S": "SUSPENDED"}}]},
    "unmapped": "attributes",
}


def msisdn(n: int) -> str:
    """Valid UK mobile numbers (07912/07913 ranges), national or international format, unique per n < 2,000,000."""
    block, rest = divmod(n, 1_000_000)
    digits = f"79{12 + block:02d} {rest:06d}"
    return f"0{digits}" if n % 2 else f"+44 {digits}"


def lines(rows: int) -> Iterator[str]:
    yield HEADER
    for n in range(rows):
        yield (
            f"sub-{n:07d};{msisdn(n)};{234150000000000 + n};First{n % 97};Last {n % 89};"
            f" {STATUSES[n % 4]} ;{PLANS[n % 3]};r{n % 7}\r\n"
        )


def write(path: Path, rows: int) -> Path:
    with path.open("w", encoding="utf-8", newline="") as out:
        out.writelines(lines(rows))
    return path


def as_bytes(rows: int) -> bytes:
    return "".join(lines(rows)).encode()
