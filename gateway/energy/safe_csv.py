"""Bounded, strict CSV reading for imports that someone else wrote (market prices, meter and pool exports).

Why not `csv.reader(open(path))`: that reads a 1 GB line into memory before we can object to it, accepts
a million columns, quietly takes the half line at the end of a truncated download as a record, and passes
`=cmd|' /C calc'!A0` through to the next spreadsheet that opens our export. Here every limit is enforced on
the raw bytes of one line *before* that line is decoded or split, and the whole input is read before the
caller builds anything, so an import either returns everything or raises and leaves nothing behind.

Every refusal names the 1-based line and, where there is one, the 1-based column and its header name.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import IO

__all__ = ["CsvLimits", "ImportRefused", "as_stream", "check_cell", "parse_decimal", "read_rows"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CsvLimits:
    """Ceilings far above any honest file of the kind we import (an ERCOT price line is ~60 bytes)."""

    max_bytes: int = 256 * 1024 * 1024
    max_line_bytes: int = 4096
    max_columns: int = 64
    max_field_chars: int = 256
    max_rows: int = 5_000_000


class ImportRefused(ValueError):
    """An input file refused as a whole; `line`/`column` are 1-based (None when they do not apply)."""

    def __init__(
        self,
        message: str,
        *,
        line: int | None = None,
        column: int | None = None,
        column_name: str | None = None,
    ) -> None:
        self.line, self.column, self.column_name, self.reason = line, column, column_name, message
        where = []
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column}" + (f" ({column_name})" if column_name else ""))
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


def as_stream(source: bytes | IO[bytes]) -> IO[bytes]:
    return io.BytesIO(source) if isinstance(source, bytes | bytearray) else source


# A cell a spreadsheet would execute: =, +, @, tab/CR prefixes, or "-" not starting a number.
_FORMULA = re.compile(r"^(?:[=+@\t\r]|-(?![0-9.]))")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def check_cell(text: str, *, line: int, column: int, column_name: str | None, limits: CsvLimits) -> None:
    if len(text) > limits.max_field_chars:
        raise ImportRefused(
            f"field of {len(text)} characters exceeds the limit of {limits.max_field_chars}",
            line=line,
            column=column,
            column_name=column_name,
        )
    if _FORMULA.match(text):
        raise ImportRefused(
            f"{text[:40]!r} looks like a spreadsheet formula (formula injection); refused",
            line=line,
            column=column,
            column_name=column_name,
        )
    if _CONTROL.search(text):
        raise ImportRefused("control character in field", line=line, column=column, column_name=column_name)


def read_rows(source: bytes | IO[bytes], limits: CsvLimits) -> Iterator[tuple[int, list[str]]]:
    """Yield `(line_number, fields)` for every line, the header included, enforcing `limits` line by line.

    Refused: a line over `max_line_bytes` (detected after reading at most that many bytes of it), more than
    `max_columns` fields, a field over `max_field_chars`, more than `max_bytes` in all or `max_rows` lines,
    a last line without its terminator (a download cut mid-record looks exactly like that), blank lines,
    text that is not UTF-8, unbalanced quotes, and cells that look like spreadsheet formulas."""
    stream = as_stream(source)
    total = 0
    line_no = 0
    names: list[str] = []
    while True:
        raw = stream.readline(limits.max_line_bytes + 1)
        if not raw:
            return
        line_no += 1
        total += len(raw)
        if total > limits.max_bytes:
            raise ImportRefused(f"input exceeds {limits.max_bytes} bytes", line=line_no)
        if line_no > limits.max_rows + 1:  # + the header
            raise ImportRefused(f"more than {limits.max_rows} rows", line=line_no)
        if not raw.endswith(b"\n"):
            if len(raw) > limits.max_line_bytes:
                raise ImportRefused(f"line longer than {limits.max_line_bytes} bytes; refused", line=line_no)
            raise ImportRefused("last line has no line terminator: the file looks truncated", line=line_no)
        body = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
        if line_no == 1 and body.startswith(b"\xef\xbb\xbf"):
            body = body[3:]  # a UTF-8 byte-order mark, as Excel writes it
        if not body.strip():
            raise ImportRefused("blank line", line=line_no)
        if body.count(b",") + 1 > limits.max_columns:
            raise ImportRefused(f"more than {limits.max_columns} columns", line=line_no)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as err:
            column = body[: err.start].count(b",") + 1
            raise ImportRefused("not UTF-8 text", line=line_no, column=column) from err
        try:
            fields = next(csv.reader([text], strict=True))
        except csv.Error as err:
            raise ImportRefused(f"malformed CSV ({err})", line=line_no) from err
        for i, field in enumerate(fields):
            name = names[i] if i < len(names) else None
            check_cell(field, line=line_no, column=i + 1, column_name=name, limits=limits)
        if line_no == 1:
            names = [f.strip() for f in fields]
        yield line_no, fields


_DECIMAL = re.compile(r"^-?[0-9]{1,12}(?:\.[0-9]{1,12})?$")


def parse_decimal(text: str, *, line: int, column: int, column_name: str) -> Decimal:
    """A plain decimal number as written (no exponent, no thousands separator, no currency sign)."""
    value = text.strip()
    if not _DECIMAL.match(value):
        what = "empty" if not value else repr(value[:40])
        raise ImportRefused(
            f"{what} is not a plain decimal number", line=line, column=column, column_name=column_name
        )
    return Decimal(value)
