"""Reading a file of users for ``importstate add-users``: a JSON array or JSON Lines.

The whole input is parsed before anything is staged, so a bad line anywhere
stages nothing.
"""

from __future__ import annotations

import json
from typing import Any


class UserFileError(ValueError):
    """The input does not parse; ``str()`` is ``FILE: line N: reason``.

    Attributes:
        source: the file name as given (``-`` for stdin).
        line: the 1-based line at fault.
        reason: what is wrong there.
    """

    def __init__(self, source: str, line: int, reason: str) -> None:
        super().__init__(f"{source}: line {line}: {reason}")
        self.source = source
        self.line = line
        self.reason = reason


def parse_users(text: str, source: str) -> list[Any]:
    """The entries of ``text``: a JSON array, or one JSON value per non-blank line.

    Input whose first non-blank character is ``[`` is read as one JSON array;
    anything else as JSON Lines. Entries are not checked here (``add_users``
    does that with the spec's messages).

    Raises:
        UserFileError: naming the first line that does not parse.
    """
    stripped = text.lstrip()
    if stripped.startswith("["):
        return _json_array(text, source)
    return _json_lines(text, source)


def _json_array(text: str, source: str) -> list[Any]:
    try:
        # A text starting with "[" that parses at all is an array.
        entries: list[Any] = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserFileError(source, exc.lineno, f"{exc.msg} (column {exc.colno})") from None
    return entries


def _json_lines(text: str, source: str) -> list[Any]:
    entries: list[Any] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError as exc:
            reason = f"{exc.msg} (column {exc.colno})"
            raise UserFileError(source, number, reason) from None
    return entries


def read_users(path: str, stdin_text: str | None = None) -> list[Any]:
    """Read and parse the users in ``path`` (``-``: ``stdin_text``).

    Raises:
        UserFileError: the text does not parse, or is not UTF-8.
        OSError: the file cannot be read.
    """
    if path == "-":
        return parse_users(stdin_text or "", "<stdin>")
    with open(path, "rb") as handle:  # noqa: PTH123 - a plain read of a user-given path
        raw = handle.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UserFileError(path, line, "not UTF-8 text") from None
    return parse_users(text, path)
