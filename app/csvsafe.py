"""CSV cells a spreadsheet will not run (OWASP CSV injection). Every CSV the product writes goes
through `writer`; `tests/migration/test_csv_injection.py` fails for any other csv writer in app/.

A cell starting with `=`, `+`, `-`, `@`, tab or carriage return is a formula to Excel, LibreOffice
and Google Sheets (`=HYPERLINK(...)`, `+cmd|' /C calc'!A0`), so it is written with a leading `'`,
which spreadsheets show as text. That includes E.164 numbers (`+447911123456` is written
`'+447911123456`): a phone number is not worth an exception to the rule. The CSV readers of the
imports drop that quote again (`restore`), so an export imports back unchanged.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import IO, Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"


def _quoted(text: str) -> bool:
    """Starts like a formula, or like a neutralised one (so that `restore` is an exact inverse)."""
    return text.lstrip(QUOTE).startswith(FORMULA_STARTS)


def neutralise(value: object) -> str:
    """The cell for `value` (None is an empty cell), quoted if a spreadsheet would run it."""
    text = "" if value is None else str(value)
    return QUOTE + text if _quoted(text) else text


def restore(cell: str) -> str:
    """A cell as read from CSV without the quote `neutralise` added; any other quote is data."""
    return cell[1:] if cell.startswith(QUOTE) and _quoted(cell[1:]) else cell


class SafeWriter:
    """`csv.writer` whose rows are neutralised cell by cell."""

    def __init__(self, out: IO[str], **options: Any) -> None:
        self._writer = csv.writer(out, **options)

    def writerow(self, values: Iterable[object]) -> None:
        self._writer.writerow([neutralise(value) for value in values])


def writer(out: IO[str], **options: Any) -> SafeWriter:
    return SafeWriter(out, **options)
