"""Parse + map + validate throughput of the subscriber importer, no store.

A generated 200,000-row legacy CSV (`;`, CRLF, national and international MSISDNs, mixed-case
statuses mapped through transforms) goes through exactly the importer's path: `read_rows`, the
job's `RowMapper`, `parse_subscriber`. Goal: >= 30,000 rows/s.

    python bench/import_parse.py [--rows 200000]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pydantic import ValidationError  # noqa: E402

from app.migration.mapping import MappingSpec, RowMapper  # noqa: E402
from app.migration.readers import read_rows  # noqa: E402
from app.subscribers.schemas import SubscriberIn, parse_subscriber  # noqa: E402
from bench.import_data import MAPPING, as_bytes  # noqa: E402


def run(rows: int) -> dict[str, float]:
    content = as_bytes(rows)
    mapper = RowMapper(MappingSpec.model_validate(MAPPING), frozenset(SubscriberIn.model_fields))
    valid = invalid = 0
    started = time.perf_counter()
    for row in read_rows(io.BytesIO(content), "csv", delimiter=None):
        mapped, problems = mapper.apply(row.values)
        if problems:
            invalid += 1
            continue
        try:
            parse_subscriber(mapped, phone_region="GB")
            valid += 1
        except ValidationError:
            invalid += 1
    elapsed = time.perf_counter() - started
    return {"rows": rows, "valid": valid, "invalid": invalid, "seconds": elapsed, "rows_per_s": rows / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    result = run(parser.parse_args().rows)
    print(
        f"parse+map+validate: {result['rows']:,} rows ({result['valid']:,} valid, {result['invalid']:,} invalid) "
        f"in {result['seconds']:.2f} s = {result['rows_per_s']:,.0f} rows/s (goal >= 30,000)"
    )


if __name__ == "__main__":
    main()
