"""The built-in importer: users, channels and messages land in tables of an SQLite file.

The command line (and the REST server) use it with the same file as their
:class:`~importstate.SQLiteStore`. Usernames and first emails are unique,
compared case-insensitively (Unicode case folding); a user who collides fails
with :class:`~importstate.errors.DuplicateUser`. Channel names are unique the
same way (:class:`~importstate.errors.DuplicateChannel`). A message must be
in an imported channel and by an imported user, each named by its first
``importIds`` entry (:class:`~importstate.errors.MissingReference`). A record
whose first ``importIds`` entry already has a row counts as imported, so a
batch that reaches the importer again (a resumed run) does not fail its own
records.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, NamedTuple

from importstate.errors import DuplicateChannel, DuplicateUser, MissingReference
from importstate.records import DataType

__all__ = [
    "ImportedUser",
    "UsersTableImporter",
]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS users (
    import_id    TEXT PRIMARY KEY,
    username     TEXT,
    username_key TEXT UNIQUE,
    email        TEXT NOT NULL,
    email_key    TEXT NOT NULL UNIQUE,
    data         TEXT NOT NULL,
    imported_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS channels (
    import_id    TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    name_key     TEXT NOT NULL UNIQUE,
    type         TEXT NOT NULL,
    data         TEXT NOT NULL,
    imported_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    import_id    TEXT PRIMARY KEY,
    channel      TEXT NOT NULL,
    author       TEXT NOT NULL,
    data         TEXT NOT NULL,
    imported_at  INTEGER NOT NULL
)
"""
#: The table each record type lands in.
_TABLES: Final = {
    DataType.USER: "users", DataType.CHANNEL: "channels", DataType.MESSAGE: "messages",
}


class ImportedUser(NamedTuple):
    """One row of the ``users`` table.

    Attributes:
        import_id: the user's first ``importIds`` entry (the row's key).
        username: as given, or ``None`` when the user had none.
        email: the first email, as given.
        data: the staged user document the row was made from.
        imported_at: epoch milliseconds of the import.
    """

    import_id: str
    username: str | None
    email: str
    data: dict[str, Any]
    imported_at: int


class UsersTableImporter:
    """A batch importer writing to the ``users``, ``channels`` and ``messages`` tables at ``path``.

    Each batch is one transaction. Safe to share between threads (calls are
    serialised); use one instance per process.

    Args:
        path: the SQLite file (usually the store's); the table is created on first use.
        timeout: seconds to wait for another writer's lock.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        self.path = os.fspath(path)
        self._conn = sqlite3.connect(
            self.path, timeout=timeout, isolation_level=None, check_same_thread=False,
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def import_batch(self, users: list[dict[str, Any]]) -> list[BaseException | None]:
        """Insert ``users`` in one transaction; per user, the error that failed it or ``None``."""
        return self._in_transaction(users, self._import_one)

    def import_channels(self, channels: list[dict[str, Any]]) -> list[BaseException | None]:
        """Insert ``channels`` in one transaction; per channel, its error or ``None``."""
        return self._in_transaction(channels, self._import_channel)

    def import_messages(self, messages: list[dict[str, Any]]) -> list[BaseException | None]:
        """Insert ``messages`` in one transaction; per message, its error or ``None``."""
        return self._in_transaction(messages, self._import_message)

    def _in_transaction(
        self,
        records: list[dict[str, Any]],
        one: Callable[[Mapping[str, Any], int], BaseException | None],
    ) -> list[BaseException | None]:
        now = time.time_ns() // 1_000_000
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                outcomes = [one(record, now) for record in records]
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        return outcomes

    def _import_channel(self, channel: Mapping[str, Any], now: int) -> BaseException | None:
        try:
            import_id = _first(channel, "importIds")
        except ValueError as exc:
            return exc
        name = str(channel.get("name", ""))
        execute = self._conn.execute
        if execute("SELECT 1 FROM channels WHERE import_id = ?", (import_id,)).fetchone():
            return None
        taken = execute(
            "SELECT import_id FROM channels WHERE name_key = ?", (name.casefold(),),
        ).fetchone()
        if taken:
            return DuplicateChannel(name, taken[0])
        execute(
            "INSERT INTO channels (import_id, name, name_key, type, data, imported_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (import_id, name, name.casefold(), str(channel.get("t", "c")), json.dumps(channel),
             now),
        )
        return None

    def _import_message(self, message: Mapping[str, Any], now: int) -> BaseException | None:
        try:
            import_id = _first(message, "importIds")
        except ValueError as exc:
            return exc
        execute = self._conn.execute
        if execute("SELECT 1 FROM messages WHERE import_id = ?", (import_id,)).fetchone():
            return None
        room, author = message.get("rid"), (message.get("u") or {}).get("_id")
        for field, refers_to, kind in (("rid", room, DataType.CHANNEL),
                                       ("u._id", author, DataType.USER)):
            found = execute(
                f"SELECT 1 FROM {_TABLES[kind]} WHERE import_id = ?",  # noqa: S608 - our tables
                (refers_to,),
            ).fetchone()
            if not found:
                return MissingReference(field, str(refers_to), kind)
        execute(
            "INSERT INTO messages (import_id, channel, author, data, imported_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (import_id, room, author, json.dumps(message), now),
        )
        return None

    def _import_one(self, user: Mapping[str, Any], now: int) -> BaseException | None:
        try:
            import_id, username, email = _identity(user)
        except ValueError as exc:
            return exc
        execute = self._conn.execute
        if execute("SELECT 1 FROM users WHERE import_id = ?", (import_id,)).fetchone():
            return None
        if username is not None:
            taken = execute(
                "SELECT import_id FROM users WHERE username_key = ?", (username.casefold(),),
            ).fetchone()
            if taken:
                return DuplicateUser("username", username, taken[0])
        taken = execute(
            "SELECT import_id FROM users WHERE email_key = ?", (email.casefold(),),
        ).fetchone()
        if taken:
            return DuplicateUser("email", email, taken[0])
        execute(
            "INSERT INTO users (import_id, username, username_key, email, email_key, data,"
            " imported_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (import_id, username, username.casefold() if username is not None else None,
             email, email.casefold(), json.dumps(user), now),
        )
        return None

    def count(self, data_type: DataType | str = DataType.USER) -> int:
        """How many users (or channels, messages) the tables hold."""
        table = _TABLES[DataType(data_type)]
        with self._lock:
            row = self._conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
        return int(row[0])

    def get(self, import_id: str) -> ImportedUser | None:
        """The row of the user whose first ``importIds`` entry is ``import_id``."""
        with self._lock:
            row = self._conn.execute(
                "SELECT import_id, username, email, data, imported_at FROM users"
                " WHERE import_id = ?", (import_id,),
            ).fetchone()
        if row is None:
            return None
        return ImportedUser(row[0], row[1], row[2], json.loads(row[3]), row[4])

    def close(self) -> None:
        """Close the connection; the importer is not used afterwards."""
        with self._lock:
            self._conn.close()


def _identity(user: Mapping[str, Any]) -> tuple[str, str | None, str]:
    """The user's first import id, username (or ``None``) and first email.

    Raises:
        ValueError: one of them is missing or not a string.
    """
    import_id = _first(user, "importIds")
    email = _first(user, "emails")
    username = user.get("username")
    if username is not None and (not isinstance(username, str) or not username):
        msg = "username must be a non-empty string"
        raise ValueError(msg)
    return import_id, username, email


def _first(user: Mapping[str, Any], key: str) -> str:
    values = user.get(key)
    if not isinstance(values, Sequence) or isinstance(values, str) or not values:
        msg = f"{key} must be a non-empty list"
        raise ValueError(msg)
    first = values[0]
    if not isinstance(first, str) or not first:
        msg = f"the first entry of {key} must be a non-empty string"
        raise ValueError(msg)
    return first
