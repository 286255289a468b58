"""Peak memory (RSS) of the streaming import path over a 1,000,000-row file.

Each measurement runs in a fresh subprocess and reports its `ru_maxrss`:
- `parse`: read + map + validate every row (the importer's path, no store);
- `dry-run-keys`: the same plus the dry run's in-file duplicate detector (FileKeys) over every
  row's uid, msisdn and imsi, i.e. a dry run's memory without the store reads.
The file is generated on disk first (~100 MB). Goal: < 200 MB.

    python bench/import_rss.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def measure(path: str, mode: str) -> None:
    from pydantic import ValidationError

    from app.migration.filekeys import FileKeys
    from app.migration.mapping import MappingSpec, RowMapper
    from app.migration.readers import read_rows
    from app.subscribers.schemas import SubscriberIn, parse_subscriber
    from bench.import_data import MAPPING

    mapper = RowMapper(MappingSpec.model_validate(MAPPING), frozenset(SubscriberIn.model_fields))
    keys = FileKeys() if mode == "dry-run-keys" else None
    valid = duplicates = 0
    started = time.perf_counter()
    with open(path, "rb") as stream:
        for row in read_rows(stream, "csv", delimiter=None):
            mapped, problems = mapper.apply(row.values)
            if problems:
                continue
            try:
                record = parse_subscriber(mapped, phone_region="GB")
            except ValidationError:
                continue
            valid += 1
            if keys is not None:
                values = (("uid", record.uid or ""), ("msisdn", record.msisdn), ("imsi", record.imsi))
                if any(keys.first_row(name, value) for name, value in values):
                    duplicates += 1
                    continue
                for name, value in values:
                    keys.add(name, value, row.number)
    elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"mode": mode, "valid": valid, "duplicates": duplicates, "seconds": elapsed, "peak_mb": peak_mb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--measure", nargs=2, metavar=("PATH", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(*args.measure)
        return
    from bench.import_data import write

    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder) / "big.csv", args.rows)
        size_mb = path.stat().st_size / 1024**2
        print(f"{args.rows:,} rows, {size_mb:.0f} MB file")
        for mode in ("parse", "dry-run-keys"):
            out = subprocess.run(
                [sys.executable, __file__, "--measure", str(path), mode], capture_output=True, text=True, check=True
            )
            result = json.loads(out.stdout)
            print(
                f"{mode}: peak RSS {result['peak_mb']:.0f} MB (goal < 200 MB), {result['valid']:,} valid rows, "
                f"{result['duplicates']} flagged duplicates, {result['seconds']:.1f} s"
            )


if __name__ == "__main__":
    main()
