"""Splitting a source file into records, exactly as read, for the raw tables.

Readers decide only *structure*: where a record starts and ends, its line
number, its raw text, and (for CSV) its fields. Whether a record is valid is
decided by the engine from the rules in :mod:`engagement.model`, so every
engine rejects the same records for the same reasons.

``source_row`` is the 1-based physical line where the record starts (the
header is line 1) for CSV and NDJSON, and the 1-based element index for a
JSON array file. Blank lines (nothing but ASCII spaces, tabs and CRs) are skipped but still
counted; any other character makes a line a record, judged like every other.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engagement.exceptions import SourceError
from engagement.json_documents import array_elements, judge
from engagement.model import CLICKSTREAM, CSV_HEADER

if TYPE_CHECKING:
    from engagement.sources import SourceFile

T = TypeVar("T")
R = TypeVar("R")
BOM = "\ufeff"
BLANK = " \t\r\n"  # what a blank line may hold: other whitespace (\x0c, U+00A0 …) is content
JSON_KEYS = tuple(f.source for f in CLICKSTREAM.fields)
CSV_FIELDS = len(CSV_HEADER)
CSV_SCHEMA = pa.schema(
    [(name, pa.string()) for name in CSV_HEADER]
    + [("parse_error", pa.string()), ("raw_text", pa.string()), ("source_row", pa.int64())]
)
JSON_SCHEMA = pa.schema([("payload", pa.large_string()), ("parse_error", pa.string()), ("source_row", pa.int64())])


def _split_lines(text: str) -> list[str]:
    """Physical lines with their endings kept; only LF and CRLF end a line (not U+2028 etc.)."""
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def _decode_lines(data: bytes) -> tuple[list[str], set[int]]:
    """Decode UTF-8 into lines; lines that are not UTF-8 are decoded with replacement and reported."""
    try:
        return _split_lines(data.decode("utf-8")), set()
    except UnicodeDecodeError:
        pass
    lines, bad = [], set()
    raw_lines = data.split(b"\n")
    for i, raw in enumerate(raw_lines):
        if i == len(raw_lines) - 1 and not raw:
            break
        ending = "\n" if i < len(raw_lines) - 1 else ""
        try:
            lines.append(raw.decode("utf-8") + ending)
        except UnicodeDecodeError:
            lines.append(raw.decode("utf-8", errors="replace") + ending)
            bad.add(i + 1)
    return lines, bad


def _strip_eol(text: str) -> str:
    return text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")


def _header_order(row: list[str]) -> list[int] | None:
    """Positions of the expected columns in this header, or None when it does not match."""
    names = [c.strip().lower().lstrip(BOM) for c in row]
    if sorted(names) != sorted(CSV_HEADER):
        return None
    return [names.index(c) for c in CSV_HEADER]


def read_csv_records(data: bytes) -> pa.Table:
    """Split customer CSV bytes (RFC 4180, LF or CRLF) into records.

    Fields are kept untrimmed. ``parse_error`` is set when a record does not
    give exactly 5 fields, is not UTF-8, or the file's header does not name the
    expected columns (then every line, header included, is such a record, so
    nothing is lost).
    """
    # A valid record of any size loads: the csv module stops at 131,072 characters a field by
    # default, and past it misreads every following line.
    csv.field_size_limit(sys.maxsize)
    lines, bad_lines = _decode_lines(data)
    if lines and lines[0].startswith(BOM):
        lines[0] = lines[0][len(BOM) :]
    cols: list[list[str | None]] = [[] for _ in range(CSV_FIELDS)]
    errors: list[str | None] = []
    raws: list[str] = []
    rows: list[int] = []
    order: list[int] | None = None
    header_error: str | None = None
    header_seen = False

    reader = csv.reader(iter(lines))
    consumed = 0
    while True:
        start = consumed + 1
        try:
            row = next(reader)
            problem = None
        except StopIteration:
            break
        except csv.Error as exc:  # e.g. a NUL byte; keep the rest of that line as the record
            row, problem = [], f"not valid CSV ({exc})"
        consumed = reader.line_num
        raw = "".join(lines[start - 1 : consumed])
        if problem is None and (not row or (len(row) == 1 and not raw.strip(BLANK))):
            continue  # a blank line
        if not header_seen:
            header_seen = True
            order = _header_order(row)
            if order is not None:
                continue
            header_error = (
                f"file header is {_strip_eol(raw)[:200]!r}, expected {','.join(CSV_HEADER)!r}"
            )
        if any(n in bad_lines for n in range(start, consumed + 1)):
            problem = "not valid UTF-8"
        elif header_error:
            problem = header_error
        elif problem is None and len(row) != CSV_FIELDS:
            problem = f"expected {CSV_FIELDS} fields, found {len(row)}"
        fields = (
            [row[i] for i in order] if problem is None and order is not None
            else [row[i] if i < len(row) else None for i in range(CSV_FIELDS)]
        )
        for col, value in zip(cols, fields):
            col.append(value)
        errors.append(problem)
        raws.append(_strip_eol(raw))
        rows.append(start)
    return pa.table(
        [*(pa.array(c, pa.string()) for c in cols), pa.array(errors, pa.string()),
         pa.array(raws, pa.string()), pa.array(rows, pa.int64())],
        schema=CSV_SCHEMA,
    )


def read_json_records(data: bytes) -> pa.Table:
    """Split clickstream bytes into JSON documents: NDJSON lines, or the elements of one top-level array.

    A document's text is kept exactly as read (an array element too). Lines that are not
    UTF-8 get a ``parse_error``, and so do the documents :func:`engagement.json_documents.judge`
    finds are no strict JSON object; the engines judge the rest (a non-object is their
    ``malformed_row``).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return _json_lines_slow(data)
    text = text.removeprefix(BOM)
    elements = array_elements(text) if text.lstrip(BLANK).startswith("[") else None
    if elements is not None:
        payloads = pa.array(elements, pa.large_string())
        return pa.table(
            [payloads, judge(payloads, pa.nulls(len(payloads), pa.string()), JSON_KEYS),
             pa.array(np.arange(1, len(payloads) + 1, dtype=np.int64))],
            schema=JSON_SCHEMA,
        )
    # NDJSON, vectorised: split on LF, drop a CR before it, skip blank lines.
    lines = pc.list_flatten(pc.split_pattern(pa.array([text], pa.large_string()), "\n"))
    lines = pc.utf8_rtrim(lines, characters="\r")  # CRLF; much faster than a regex
    numbers = pa.array(np.arange(1, len(lines) + 1, dtype=np.int64))
    keep = pc.not_equal(pc.utf8_trim(lines, characters=BLANK), "")
    lines, numbers = pc.filter(lines, keep), pc.filter(numbers, keep)
    return pa.table([lines, judge(lines, pa.nulls(len(lines), pa.string()), JSON_KEYS), numbers],
                    schema=JSON_SCHEMA)


def _json_lines_slow(data: bytes) -> pa.Table:
    lines, bad = _decode_lines(data)
    payloads, errors, rows = [], [], []
    for number, line in enumerate(lines, start=1):
        line = _strip_eol(line)
        if number == 1:
            line = line.removeprefix(BOM)
        if not line.strip(BLANK):
            continue
        payloads.append(line)
        errors.append("not valid UTF-8" if number in bad else None)
        rows.append(number)
    documents = pa.array(payloads, pa.large_string())
    return pa.table([documents, judge(documents, pa.array(errors, pa.string()), JSON_KEYS),
                     pa.array(rows, pa.int64())], schema=JSON_SCHEMA)


def read_file(file: SourceFile, reader: Callable[[bytes], pa.Table]) -> pa.Table | SourceError:
    """``file``'s records, or the one-line error of a file that cannot be read at all (a broken
    gzip, a file gone or unreadable): that file is left out, and the others still load."""
    try:
        return reader(file.read_bytes())
    except SourceError as exc:
        return exc


def iter_batches(table: pa.Table, rows: int = 500_000) -> Iterator[pa.Table]:
    """Slices of a table, so very large files are inserted piecewise."""
    for offset in range(0, max(table.num_rows, 1), rows):
        yield table.slice(offset, rows)


def read_ahead(items: Sequence[T], read: Callable[[T], R]) -> Iterator[tuple[T, R]]:
    """``(item, read(item))`` in order, reading the next item in a thread while the caller works on this one.

    Reading a file (gunzip, decode, split) runs mostly outside the GIL, as does loading it into
    DuckDB, so the two overlap on a second core. Two results are held at once, three when the
    caller keeps its result while asking for the next.
    """
    if not items:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead") as pool:
        pending = pool.submit(read, items[0])
        for i, item in enumerate(items):
            result = pending.result()
            if i + 1 < len(items):
                pending = pool.submit(read, items[i + 1])
            yield item, result
            del result
