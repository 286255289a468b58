"""Streaming readers: the formats operators really send, and files that are not what they claim."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from app.migration.readers import FileFormatError, check_file, kind_from_name, read_rows

DATA = Path(__file__).parent / "data"


def rows(content: bytes, kind: str, **kwargs: object) -> list[tuple[int, dict[str, object], str | None]]:
    return [(row.number, row.values, row.problem) for row in read_rows(io.BytesIO(content), kind, **kwargs)]  # type: ignore[arg-type]


def test_messy_real_world_csv() -> None:
    content = (DATA / "messy.csv").read_bytes()
    assert content.startswith(b"\xef\xbb\xbf") and b"\r\n" in content  # noqa: PT018 - what the fixture holds
    parsed = rows(content, "csv")
    assert [number for number, _, _ in parsed] == [1, 2, 3, 4]  # blank and delimiter-only lines skipped
    first = parsed[0][1]
    assert list(first) == ["UID", "MSISDN", "IMSI", "First Name", "Last Name", "Status", "Tariff", "Region"]
    assert first["MSISDN"] == "07700 900123"
    assert parsed[1][1]["Last Name"] == "O'Neil; Jr"  # quoted delimiter
    assert parsed[2][1]["First Name"] == "Cy\r\nMulti"  # quoted newline
    assert all(problem is None for _, _, problem in parsed)  # trailing delimiters are harmless
    summary = check_file(io.BytesIO(content), "csv")
    assert (summary.rows, summary.delimiter) == (4, ";")


@pytest.mark.parametrize(("delimiter", "text"), [(",", "a,b\n1,2\n"), (";", "a;b\n1;2\n"), ("\t", "a\tb\n1\t2\n")])
def test_delimiter_is_detected(delimiter: str, text: str) -> None:
    assert rows(text.encode(), "csv") == [(1, {"a": "1", "b": "2"}, None)]
    assert check_file(io.BytesIO(text.encode()), "csv").delimiter == delimiter


def test_given_delimiter_wins() -> None:
    assert rows(b"a;b,c\n1;2,3\n", "csv", delimiter=",") == [(1, {"a;b": "1;2", "c": "3"}, None)]


def test_lf_and_crlf_are_the_same() -> None:
    assert rows(b"a,b\n1,2\n", "csv") == rows(b"a,b\r\n1,2\r\n", "csv")


def test_extra_values_are_a_row_problem_not_a_file_error() -> None:
    parsed = rows(b"a,b\n1,2,3\n4,5\n", "csv")
    assert parsed[0][2] == "3 values for 2 columns"
    assert parsed[1] == (2, {"a": "4", "b": "5"}, None)


def test_resume_skips_processed_rows() -> None:
    content = b"a\n" + b"".join(f"{n}\n".encode() for n in range(1, 11))
    assert [number for number, _, _ in rows(content, "csv", start_after=7)] == [8, 9, 10]


def test_json_array_and_ndjson() -> None:
    assert rows(b'\xef\xbb\xbf [{"a": 1, "n": {"x": true}}, {"b": 2.5}]', "json") == [
        (1, {"a": 1, "n": {"x": True}}, None),
        (2, {"b": 2.5}, None),
    ]
    assert rows(b'{"a": 1}\n\n{"b": "x"}\r\n', "ndjson") == [(1, {"a": 1}, None), (2, {"b": "x"}, None)]


def test_json_reader_streams_from_a_non_seekable_body() -> None:
    class Body:  # like botocore's StreamingBody: read() only
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def read(self, size: int = -1) -> bytes:
            return self._data.read(size)

    data = b"[" + b",".join(b'{"n": %d}' % n for n in range(5000)) + b"]"
    assert sum(1 for _ in read_rows(Body(data), "json")) == 5000  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["csv", "json", "ndjson"])
def test_a_file_with_no_bytes_has_no_rows(kind: str) -> None:
    """An empty file (a byte-order mark at most) is valid and empty; a blank first line is not."""
    for content in (b"", b"\xef\xbb\xbf"):
        assert check_file(io.BytesIO(content), kind).rows == 0  # type: ignore[arg-type]
        assert list(read_rows(io.BytesIO(content), kind)) == []  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("content", "kind", "reason"),
    [
        (b"\n\na,b\n", "csv", "header row is required"),
        (b"a,,b\n1,2,3\n", "csv", "empty column name"),
        (b"Name,name\n1,2\n", "csv", "duplicate column names"),
        (b'a,b\n"unterminated,2\n', "csv", "malformed CSV"),
        (b"a,b\n1,2\n\xff\xfe\n", "csv", "not UTF-8"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "csv", "not UTF-8"),
        (b"a\x00b,c\n1,2\n", "csv", "binary"),
        (b'[{"a": 1}]', "csv", "looks like JSON"),
        (b'{"a": 1}', "json", "array of objects"),
        (b"[1, 2]", "json", "must be an object"),
        (b'[{"a": 1}, {"b": ', "json", "malformed JSON"),
        (b"a,b\n1,2\n", "json", "array of objects"),
        (b'[{"a": 1}]\n', "ndjson", "looks like a JSON array"),
        (b'{"a": 1}\nnot json\n', "ndjson", "line 2 is not valid JSON"),
        (b'{"a": 1}\n"text"\n', "ndjson", "line 2 is not a JSON object"),
    ],
)
def test_file_that_is_not_what_it_claims(content: bytes, kind: str, reason: str) -> None:
    with pytest.raises(FileFormatError, match=reason):
        check_file(io.BytesIO(content), kind)  # type: ignore[arg-type]


def test_kind_from_name() -> None:
    assert kind_from_name("legacy.CSV") == "csv"
    assert kind_from_name("export.tsv") == "csv"
    assert kind_from_name("a.jsonl") == "ndjson"
    assert kind_from_name("a.ndjson") == "ndjson"
    assert kind_from_name("a.json") == "json"
    assert kind_from_name("a.xlsx") is None
