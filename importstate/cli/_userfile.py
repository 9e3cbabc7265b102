"""Reading a file of users for ``importstate add-users`` while it is parsed: JSON array or Lines.

The file is read in chunks of at most :data:`CHUNK_USERS` users (or about
:data:`CHUNK_CHARS` characters of JSON), so memory holds one chunk however
large the file is; ``ImportService.add_users_from`` stages the chunks in one
transaction, so a bad line anywhere stages nothing. The reader remembers
the line of every user of the chunk in hand, so that a user the service
refuses is named by its line.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import re
import sys
from collections.abc import Collection, Iterator
from typing import IO, Any, Final

from importstate import _json_array
from importstate._json_array import NOT_UTF8, JsonArray, skip_whitespace
from importstate.errors import InvalidRoles, MissingUserData

#: Users staged per chunk: small enough to keep memory flat, large enough to
#: keep the per-chunk cost of staging out of the profile.
CHUNK_USERS: Final = 1000
#: A chunk also ends once its users' JSON passes this many characters.
CHUNK_CHARS: Final = 4 * 1024 * 1024
#: The body of ``POST import.addUsers`` rather than a list of users.
_REST_BODY: Final = re.compile(r'\A\s*\{\s*"users"\s*:')
_SHAPE: Final = "expected a JSON array of users or JSON Lines"


class UserFileError(ValueError):
    """The input does not parse, or a user in it is refused; ``str()`` is ``FILE: line N: reason``.

    Attributes:
        source: the file name as given (``<stdin>`` for ``-``).
        line: the 1-based line at fault.
        reason: what is wrong there.
    """

    def __init__(self, source: str, line: int, reason: str) -> None:
        super().__init__(f"{source}: line {line}: {reason}")
        self.source = source
        self.line = line
        self.reason = reason


class UserReader:
    """The users of one file, read chunk by chunk by :meth:`chunks`.

    Input whose first non-blank character is ``[`` is one JSON array;
    anything else is JSON Lines (one JSON value per non-blank line). A byte
    order mark is skipped. Entries are not checked here (the service does
    that); :meth:`refusal` names the line of one it refused.

    Attributes:
        source: the name errors give the file.
        count: the users read so far.
    """

    def __init__(self, handle: IO[bytes], source: str) -> None:
        self.source = source
        self.count = 0
        self._text = io.TextIOWrapper(
            handle, encoding="utf-8-sig", errors="surrogateescape", newline="\n",
        )
        self._decoder = json.JSONDecoder()
        # The chunk in hand: its users, the line each starts on, and the index
        # of its first user in the whole file.
        self._users: list[Any] = []
        self._lines: list[int] = []
        self._first = 0
        self._chars = 0

    def chunks(self) -> Iterator[list[Any]]:
        """The users, in lists of at most :data:`CHUNK_USERS`.

        Raises:
            UserFileError: the first line that does not parse or is not UTF-8.
        """
        head = self._text.read(_json_array.BLOCK)
        if head.startswith("[", skip_whitespace(head, 0)):
            values = JsonArray(self._text, head, self._fault).values()
        else:
            values = self._lines_of(head)
        for line, size, value in values:
            self._users.append(value)
            self._lines.append(line)
            self._chars += size
            self.count += 1
            if len(self._users) >= CHUNK_USERS or self._chars >= CHUNK_CHARS:
                yield self._users
                self._next_chunk()
        if self._users:
            yield self._users

    def _next_chunk(self) -> None:
        self._first += len(self._users)
        self._users, self._lines, self._chars = [], [], 0

    def _lines_of(self, head: str) -> Iterator[tuple[int, int, Any]]:
        first = True
        for number, line in enumerate(_split_lines(head, self._text), start=1):
            if not line.isascii():
                self._check_utf8(line, number)
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                if first:
                    self._check_shape(head, line, number)
                reason = f"{exc.msg} (column {exc.colno})"
                raise UserFileError(self.source, number, reason) from None
            if first and _is_rest_body(value):
                raise self._rest_body(number)
            first = False
            yield number, len(line), value

    def _fault(self, line: int, reason: str) -> UserFileError:
        return UserFileError(self.source, line, reason)

    def _check_utf8(self, text: str, line: int) -> None:
        bad = NOT_UTF8.search(text)
        if bad is not None:
            line += text.count("\n", 0, bad.start())
            raise UserFileError(self.source, line, "not UTF-8 text")

    def _check_shape(self, head: str, line: str, number: int) -> None:
        """Name the shape of a file whose first line starts a JSON document spread over lines."""
        if _REST_BODY.match(head):
            raise self._rest_body(number)
        start = head.find(line)
        if not line.lstrip().startswith("{") or start < 0:
            return
        try:
            _, end = self._decoder.raw_decode(head, start + len(line) - len(line.lstrip()))
        except json.JSONDecodeError:
            return
        last = number + head.count("\n", start, end)
        if last == number:
            return
        reason = (f"{_SHAPE} (one user object per line); got one JSON object over lines"
                  f" {number}-{last}: put each user on a line of its own, or the users in an array")
        raise UserFileError(self.source, number, reason)

    def _rest_body(self, line: int) -> UserFileError:
        reason = f'{_SHAPE}; got an object with "users" — pass the list itself'
        return UserFileError(self.source, line, reason)

    def line_of(self, index: int) -> int | None:
        """The line the ``index``-th user of the file starts on, if it is in the chunk in hand."""
        local = index - self._first
        return self._lines[local] if 0 <= local < len(self._lines) else None

    def refusal(
        self, error: MissingUserData | InvalidRoles, known_roles: Collection[str],
    ) -> UserFileError | None:
        """The service's refusal of a user of this file, as ``FILE: line N: what is wrong``.

        ``None`` when the user is not in the chunk in hand.
        """
        line = self.line_of(error.index)
        if line is None:
            return None
        user = self._users[error.index - self._first]
        if isinstance(error, MissingUserData):
            return UserFileError(self.source, line, missing_data(user))
        return UserFileError(self.source, line, invalid_roles(user, error.role, known_roles))


def _split_lines(head: str, rest: IO[str]) -> Iterator[str]:
    """The lines of ``head`` followed by those of ``rest``, ``head``'s last one completed."""
    *whole, partial = head.split("\n")
    for line in whole:
        yield line + "\n"
    completed = partial + rest.readline()
    if completed:
        yield completed
    yield from rest


def _is_rest_body(value: object) -> bool:
    return (isinstance(value, dict) and isinstance(value.get("users"), list)
            and "emails" not in value)


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def missing_data(user: object) -> str:
    """What is wrong with a user the service refused as ``Users are missing required data.``."""
    if not isinstance(user, dict):
        return f"expected a user object, got {_json_type(user)}"
    for field in ("emails", "importIds"):
        if field not in user:
            return f'user is missing "{field}"'
        value = user[field]
        if not isinstance(value, list):
            return f'user\'s "{field}" must be a list of strings, got {_json_type(value)}'
        if not any(isinstance(item, str) and item for item in value):
            return f'user has no non-empty string in "{field}"'
    return MissingUserData.message


def invalid_roles(user: object, role: object, known: Collection[str]) -> str:
    """What is wrong with a user the service refused for its roles."""
    roles = user.get("roles") if isinstance(user, dict) else None
    if not isinstance(roles, list):
        return f'user\'s "roles" must be a list of role names, got {_json_type(roles)}'
    return f"role {json.dumps(role)} is not one of {', '.join(sorted(known))}"


@contextlib.contextmanager
def open_users(path: str) -> Iterator[UserReader]:
    """A reader of the users in ``path`` (``-``: standard input).

    Raises:
        OSError: the file cannot be opened.
    """
    if path == "-":
        yield UserReader(sys.stdin.buffer, "<stdin>")
        return
    with open(path, "rb") as handle:  # noqa: PTH123 - a plain read of a user-given path
        yield UserReader(handle, path)


def parse_users(text: str | bytes, source: str) -> list[Any]:
    """Every entry of ``text``, read as :class:`UserReader` reads a file.

    Raises:
        UserFileError: naming the first line that does not parse.
    """
    raw = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    return list(itertools.chain.from_iterable(UserReader(io.BytesIO(raw), source).chunks()))
