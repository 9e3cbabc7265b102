"""Text members read line by line under the limits: CSV rows and JSON arrays, streamed.

Every line is checked for its length before it is decoded, and decoded as
UTF-8 strictly (a byte order mark is skipped), so a fault is named by its
line; nothing holds more than a line (a JSON element) and a block of text.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from typing import IO, Any, Final

from importstate._json_array import BLOCK, JsonArray, skip_whitespace
from importstate.errors import FileFormatError

#: Bytes read ahead from a member: a block keeps ``readline`` in C.
_BUFFER: Final = 1024 * 1024


def buffered(handle: IO[bytes]) -> IO[bytes]:
    """``handle`` behind a large buffer, so that its lines are found in C."""
    return io.BufferedReader(handle, _BUFFER)  # type: ignore[type-var]


def lines(handle: IO[bytes], member: str, max_line: int) -> Iterator[str]:
    """The decoded lines of ``handle``, each with its line ending.

    Raises:
        FileFormatError: a line longer than ``max_line`` bytes, or not UTF-8.
    """
    readline = handle.readline
    raw = readline(max_line + 1)
    raw = raw.removeprefix(codecs.BOM_UTF8)
    number = 1
    while raw:
        if len(raw) > max_line and not raw.endswith(b"\n"):
            reason = f"a line longer than {max_line:,} bytes (the limit)"
            raise FileFormatError(member, number, reason)
        try:
            text = raw.decode()
        except UnicodeDecodeError as exc:
            reason = f"not UTF-8 text (byte {exc.start + 1} of the line)"
            raise FileFormatError(member, number, reason) from None
        yield text
        raw = readline(max_line + 1)
        number += 1


def _allow_fields(max_line: int) -> None:
    # The csv module refuses fields over 128 KiB by default, a limit of its own
    # process-wide; a field may be as long as the line limit allows.
    if csv.field_size_limit() < max_line:
        csv.field_size_limit(max_line)


def csv_rows(handle: IO[bytes], member: str, max_line: int) -> Iterator[tuple[int, list[str]]]:
    """``(line, fields)`` of each row of a CSV member that is not blank.

    A quoted field may span lines; a row is named by the line it starts on.

    Raises:
        FileFormatError: as :func:`lines`, or a row that does not parse as CSV.
    """
    _allow_fields(max_line)
    reader = csv.reader(lines(handle, member, max_line), strict=True)
    end = 0
    try:
        for row in reader:
            start, end = end + 1, reader.line_num
            if row:
                yield start, row
    except csv.Error as exc:
        raise FileFormatError(member, end + 1, f"not CSV: {exc}") from None


def json_elements(handle: IO[bytes], member: str, max_element: int) -> Iterator[tuple[int, Any]]:
    """``(line, value)`` of each element of the JSON array a member holds.

    Raises:
        FileFormatError: text that is not a JSON array, not UTF-8, or an
            element longer than ``max_element`` characters.
    """
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", errors="surrogateescape")
    head = text.read(BLOCK)
    if not head.startswith("[", skip_whitespace(head, 0)):
        raise FileFormatError(member, 1, "expected a JSON array")

    def fail(line: int, reason: str) -> FileFormatError:
        return FileFormatError(member, line, reason)

    for line, _, value in JsonArray(text, head, fail, max_element=max_element).values():
        yield line, value


def expect_columns(member: str, line: int, row: list[str], count: int) -> None:
    """Refuse a row that does not have ``count`` columns.

    Raises:
        FileFormatError: ``users.csv: line 12: expected 3 columns, found 2``.
    """
    if len(row) != count:
        raise FileFormatError(member, line, f"expected {count} columns, found {len(row)}")
