"""Streaming readers for import files: CSV, JSON array and NDJSON, in constant memory.

Each reader takes a binary stream (a local file, an upload, an S3 body) and yields `SourceRow`s
one at a time; nothing holds the whole file. A file that is not what it claims to be raises
`FileFormatError` with a reason a person can act on; `check_file` runs that check over the whole
file (and counts its rows) before a job writes anything.

What one row may cost is bounded before it is parsed: a CSV record or NDJSON line is read with a
length limit, JSON nesting depth is measured on the raw bytes (`app.jsondepth`), a JSON array's
rows are measured as ijson reads them. A file over a limit fails as a whole (`FileFormatError`),
found by `check_file`, so nothing of a crafted file is written.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, Literal

from app.csvsafe import restore
from app.jsondepth import DepthGauge, deeper_than

FileKind = Literal["csv", "json", "ndjson"]
DELIMITERS = (",", ";", "\t")
MAX_FIELD_BYTES = 64 * 1024  # one CSV value (characters)
MAX_COLUMNS = 200  # CSV columns; keys of a JSON row
MAX_DEPTH = 8  # nesting of a JSON row: {"a": 1} is 1, {"attributes": {"x": 1}} is 2
MAX_ROW_BYTES = 256 * 1024  # a CSV record (characters), an NDJSON line, a JSON array element (bytes)
JSON_CHUNK_BYTES = 64 * 1024
_BOM = codecs.BOM_UTF8.decode()


class FileFormatError(ValueError):
    """The file as a whole can't be read as the format it claims; no row of it is imported."""

    def __init__(self, reason: str, *, row: int | None = None) -> None:
        super().__init__(f"row {row}: {reason}" if row else reason)
        self.reason = reason
        self.row = row


@dataclass(frozen=True)
class SourceRow:
    number: int  # 1-based data row (a CSV header is not counted); stable across passes, so it can resume
    values: dict[str, Any]
    problem: str | None = None  # a row-level structural problem (e.g. more values than columns)


@dataclass(frozen=True)
class FileSummary:
    kind: FileKind
    rows: int
    columns: list[str] | None  # CSV only
    delimiter: str | None


def kind_from_name(name: str) -> FileKind | None:
    lowered = name.lower()
    for suffix, kind in (
        (".csv", "csv"),
        (".tsv", "csv"),
        (".ndjson", "ndjson"),
        (".jsonl", "ndjson"),
        (".json", "json"),
    ):
        if lowered.endswith(suffix):
            return kind  # type: ignore[return-value]
    return None


def kind_from_content(stream: IO[bytes]) -> FileKind:
    """The format a file's first character other than white space (after a byte-order mark) shows:
    `[` a JSON array, `{` NDJSON (one object a line), anything else CSV. The stream is left at its start."""
    head = b""
    while chunk := stream.read(JSON_CHUNK_BYTES):
        head = (head + chunk).removeprefix(codecs.BOM_UTF8).lstrip()
        if head and head != codecs.BOM_UTF8[: len(head)]:
            break
    stream.seek(0)
    return {b"[": "json", b"{": "ndjson"}.get(head[:1], "csv")  # type: ignore[return-value]


def read_rows(
    stream: IO[bytes], kind: FileKind, *, delimiter: str | None = None, start_after: int = 0
) -> Iterator[SourceRow]:
    """Rows of the file; `start_after` skips rows already processed (resume after a checkpoint)."""
    rows = {"csv": _csv_rows, "json": _json_rows, "ndjson": _ndjson_rows}[kind]
    for row in rows(stream, delimiter) if kind == "csv" else rows(stream):  # type: ignore[operator]
        if row.number > start_after:
            yield row


def check_file(stream: IO[bytes], kind: FileKind, *, delimiter: str | None = None) -> FileSummary:
    """Reads the whole file once, structure only, and counts its rows; raises FileFormatError."""
    count = 0
    columns: list[str] | None = None
    detected: str | None = None
    if kind == "csv":
        text = _text(stream)
        columns, detected, lines = _csv_reader(text, delimiter)
        for count, _ in enumerate(_csv_records(lines, columns), start=1):  # noqa: B007 - counting
            pass
        return FileSummary(kind, count, columns, detected)
    for count, _ in enumerate(read_rows(stream, kind), start=1):  # noqa: B007 - counting
        pass
    return FileSummary(kind, count, None, None)


# --- CSV ---------------------------------------------------------------------------------------------


def _text(stream: IO[bytes]) -> io.TextIOWrapper:
    # utf-8-sig drops a byte-order mark; newline="" lets the csv module handle CRLF and quoted newlines.
    return io.TextIOWrapper(stream, encoding="utf-8-sig", errors="strict", newline="")


def _csv_reader(text: io.TextIOWrapper, delimiter: str | None) -> tuple[list[str], str, _RecordLines]:
    try:
        first_line = text.readline(MAX_ROW_BYTES + 1)
    except UnicodeDecodeError:
        raise FileFormatError("the file is not UTF-8 text") from None
    if len(first_line) > MAX_ROW_BYTES:
        raise FileFormatError(f"the header row is longer than {MAX_ROW_BYTES} characters")
    if not first_line:  # no bytes at all (a byte-order mark at most): a file with no rows
        return [], delimiter or ",", _RecordLines(text, delimiter or ",")
    if not first_line.strip():
        raise FileFormatError("the first line is blank; a header row is required")
    if "\0" in first_line:
        raise FileFormatError("the file is binary, not CSV text")
    if first_line.lstrip().startswith(("{", "[")):
        raise FileFormatError("this looks like JSON, not CSV")
    chosen = delimiter or max(DELIMITERS, key=first_line.count)
    if delimiter is None and first_line.count(chosen) == 0 and not _looks_like_single_column(first_line):
        raise FileFormatError("no delimiter found in the header row (tried ',', ';' and tab)")
    csv.field_size_limit(MAX_FIELD_BYTES)
    try:
        header = next(csv.reader([first_line], delimiter=chosen, strict=True))
    except csv.Error as exc:
        raise FileFormatError(f"the header row is malformed CSV: {exc}") from None
    columns = [name.strip().lstrip(_BOM) for name in header]
    while columns and columns[-1] == "":  # a trailing delimiter on the header line
        columns.pop()
    if not columns or any(not name for name in columns):
        raise FileFormatError("the header row has an empty column name")
    if len(columns) > MAX_COLUMNS:
        raise FileFormatError(f"the header row has {len(columns)} columns; at most {MAX_COLUMNS}")
    duplicates = sorted({name for name in columns if [c.lower() for c in columns].count(name.lower()) > 1})
    if duplicates:
        raise FileFormatError(f"duplicate column names in the header row: {', '.join(duplicates)}")
    return columns, chosen, _RecordLines(text, chosen)


def _looks_like_single_column(line: str) -> bool:
    return line.strip().replace("_", "").isalnum()


class _RecordRefused(Exception):
    """A record the csv module must not see; `_csv_records` names its row."""


class _RecordLines:
    """The file's lines for the csv module, at most MAX_ROW_BYTES characters per record, however
    many lines a quoted value spans: a record is refused before the csv module builds it."""

    def __init__(self, text: io.TextIOWrapper, delimiter: str) -> None:
        self._text = text
        self._used = 0
        self.records = csv.reader(self, delimiter=delimiter, strict=True)

    def __iter__(self) -> _RecordLines:
        return self

    def __next__(self) -> str:
        line = self._text.readline(MAX_ROW_BYTES - self._used + 1)
        if not line:
            raise StopIteration
        self._used += len(line)
        if self._used > MAX_ROW_BYTES:
            raise _RecordRefused(f"longer than {MAX_ROW_BYTES} characters")
        if "\0" in line:
            raise _RecordRefused("a NUL character: the file is binary, not CSV text")
        return line

    def __call__(self) -> Iterator[list[str]]:
        """The records, one at a time; each gets the whole budget."""
        for record in self.records:
            self._used = 0
            yield record


def _csv_records(lines: _RecordLines, columns: list[str]) -> Iterator[SourceRow]:
    number = 0
    try:
        for record in lines():
            if not record or all(not value.strip() for value in record):
                continue  # blank line (or only delimiters): not a row
            number += 1
            values = dict(zip(columns, map(restore, record), strict=False))  # an export's cells read back
            extra = record[len(columns) :]
            if any(value.strip() for value in extra):
                # A row error, not a file error: the rest of the file is fine.
                problem = f"{len(record)} values for {len(columns)} columns"
                yield SourceRow(number, values, problem)
            else:  # trailing empty values (a trailing delimiter) are harmless
                yield SourceRow(number, values)
    except UnicodeDecodeError:
        raise FileFormatError("the file is not UTF-8 text", row=number + 1) from None
    except csv.Error as exc:
        raise FileFormatError(f"malformed CSV: {exc}", row=number + 1) from None
    except _RecordRefused as exc:
        raise FileFormatError(str(exc), row=number + 1) from None


def _csv_rows(stream: IO[bytes], delimiter: str | None) -> Iterator[SourceRow]:
    text = _text(stream)
    columns, _, lines = _csv_reader(text, delimiter)
    yield from _csv_records(lines, columns)


# --- JSON --------------------------------------------------------------------------------------------


def _json_rows(stream: IO[bytes]) -> Iterator[SourceRow]:
    # Imported here: only JSON import files need it (~2 ms the cold start of any other request skips).
    import ijson

    head = stream.read(4096)
    if not head.removeprefix(codecs.BOM_UTF8):
        return  # no bytes at all: a file with no rows
    start = head.removeprefix(codecs.BOM_UTF8).lstrip()
    if not start.startswith(b"["):
        raise FileFormatError("a JSON import must be an array of objects: [{...}, {...}]")
    whole = _MeasuredArray(start, stream)
    number = 0
    try:
        # use_float: numbers become float/int rather than Decimal, as in the API.
        items = ijson.items(whole, "item", use_float=True, buf_size=JSON_CHUNK_BYTES)
        for number, item in enumerate(items, start=1):
            whole.row_done(number)
            if not isinstance(item, dict):
                raise FileFormatError("each element of the array must be an object", row=number)
            _check_keys(item, number)
            yield SourceRow(number, item)
    except ijson.JSONError as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FileFormatError(f"malformed JSON after row {number}: {first_line}") from None
    except UnicodeDecodeError:
        raise FileFormatError("the file is not UTF-8 text", row=number + 1) from None


def _check_keys(item: dict[str, Any], number: int) -> None:
    if len(item) > MAX_COLUMNS:
        raise FileFormatError(f"the object has {len(item)} keys; at most {MAX_COLUMNS}", row=number)


class _MeasuredArray:
    """`head` followed by the rest of `stream`, for ijson: lets a reader look at the start of a
    stream that can't seek (an S3 body) and still parse it from the beginning. Measures what ijson
    is about to parse: nesting depth, and the bytes since the last row was complete (ijson keeps
    a row it has not finished in memory), so a crafted row is refused before it is built."""

    def __init__(self, head: bytes, stream: IO[bytes]) -> None:
        self._head = head
        self._stream = stream
        self._depth = DepthGauge()
        self._read = 0
        self._row_done_at = 0
        self._rows = 0

    def row_done(self, number: int) -> None:
        self._rows, self._row_done_at = number, self._read

    def read(self, size: int = -1) -> bytes:
        data = self._next(size)
        self._read += len(data)
        # +1: the array itself. The end of the last row is known only to the chunk, hence its slack.
        if self._depth.feed(data) > MAX_DEPTH + 1:
            raise FileFormatError(f"a row is nested deeper than {MAX_DEPTH} levels (after row {self._rows})")
        if self._read - self._row_done_at > MAX_ROW_BYTES + JSON_CHUNK_BYTES:
            raise FileFormatError(f"a row is larger than {MAX_ROW_BYTES} bytes (after row {self._rows})")
        return data

    def _next(self, size: int) -> bytes:
        if self._head:
            if size < 0:
                data, self._head = self._head + self._stream.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            return data
        return self._stream.read(size)


def _ndjson_rows(stream: IO[bytes]) -> Iterator[SourceRow]:
    number = 0
    line_number = 0
    while raw := stream.readline(MAX_ROW_BYTES + 1):
        line_number += 1
        if len(raw) > MAX_ROW_BYTES:
            raise FileFormatError(f"line {line_number} is longer than {MAX_ROW_BYTES} bytes", row=number + 1)
        line = raw.strip()
        if line_number == 1 and line.startswith(codecs.BOM_UTF8):
            line = line[len(codecs.BOM_UTF8) :]
        if not line:
            continue
        number += 1
        try:
            # Decoded here: json.loads would take UTF-16 bytes too, whose 0x22 bytes are not all quotes.
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise FileFormatError("the file is not UTF-8 text", row=number) from None
        if deeper_than(line, MAX_DEPTH):
            raise FileFormatError(f"line {line_number} is nested deeper than {MAX_DEPTH} levels", row=number)
        try:
            item = json.loads(text)
        except ValueError as exc:
            if number == 1 and line.startswith(b"["):
                raise FileFormatError("this looks like a JSON array, not NDJSON (one object per line)") from None
            raise FileFormatError(f"line {line_number} is not valid JSON: {exc}", row=number) from None
        if isinstance(item, list) and number == 1:
            raise FileFormatError("this looks like a JSON array, not NDJSON (one object per line)")
        if not isinstance(item, dict):
            raise FileFormatError(f"line {line_number} is not a JSON object", row=number)
        _check_keys(item, number)
        yield SourceRow(number, item)
