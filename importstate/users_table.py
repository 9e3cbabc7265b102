"""The built-in importer: users, channels and messages land in tables of an SQLite file.

The command line (and the REST server) use it with the same file as their
:class:`~importstate.SQLiteStore`. Usernames and first emails are unique,
compared case-insensitively (Unicode case folding); a user who collides fails
with :class:`~importstate.errors.DuplicateUser`. Channel names are unique the
same way (:class:`~importstate.errors.DuplicateChannel`); a channel's ``users``
(import ids) that name imported users become its rows in ``members``, others
are left out, as Rocket.Chat leaves out members it cannot find. A message must be
in an imported channel and by an imported user, each named by its first
``importIds`` entry (:class:`~importstate.errors.MissingReference`). A record
whose first ``importIds`` entry already has a row counts as imported, so a
batch that reaches the importer again (a resumed run) does not fail its own
records. A user's password is kept only as a salted scrypt hash (``password_hash``),
never in ``data``. A write that finds the file locked waits as the store's
writes do; still locked after ``timeout``, the batch raises
:class:`~importstate.errors.DatabaseBusy`, which fails the run, not its users.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, NamedTuple, TypeVar

from importstate._files import create_private
from importstate._passwords import hash_password
from importstate._sqlite import patiently
from importstate.errors import DuplicateChannel, DuplicateUser, MissingReference
from importstate.pending import PendingDownload, PendingKind
from importstate.records import DataType

__all__ = [
    "ImportedUser",
    "UsersTableImporter",
]

_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS users (
        import_id    TEXT PRIMARY KEY,
        username     TEXT,
        username_key TEXT UNIQUE,
        email        TEXT NOT NULL,
        email_key    TEXT NOT NULL UNIQUE,
        data         TEXT NOT NULL,
        imported_at  INTEGER NOT NULL,
        password_hash TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS channels (
        import_id    TEXT PRIMARY KEY,
        name         TEXT NOT NULL,
        name_key     TEXT NOT NULL UNIQUE,
        type         TEXT NOT NULL,
        data         TEXT NOT NULL,
        imported_at  INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS members (
        channel      TEXT NOT NULL,
        user         TEXT NOT NULL,
        PRIMARY KEY (channel, user)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS messages (
        import_id    TEXT PRIMARY KEY,
        channel      TEXT NOT NULL,
        author       TEXT NOT NULL,
        data         TEXT NOT NULL,
        imported_at  INTEGER NOT NULL
    )""",
    # Insertion order (the rowid) is the order downloads are fetched in.
    """CREATE TABLE IF NOT EXISTS pending_downloads (
        kind         TEXT NOT NULL,
        import_id    TEXT NOT NULL,
        url          TEXT NOT NULL,
        name         TEXT,
        type         TEXT,
        size         INTEGER,
        fetched_at   INTEGER,
        path         TEXT,
        error        TEXT,
        PRIMARY KEY (kind, import_id)
    )""",
)
#: The table each record type lands in.
_TABLES: Final = {
    DataType.USER: "users", DataType.CHANNEL: "channels", DataType.MESSAGE: "messages",
}
_Outcomes = list[BaseException | None]
_T = TypeVar("_T")


class ImportedUser(NamedTuple):
    """One row of the ``users`` table.

    Attributes:
        import_id: the user's first ``importIds`` entry (the row's key).
        username: as given, or ``None`` when the user had none.
        email: the first email, as given.
        data: the staged user document the row was made from, without its password.
        imported_at: epoch milliseconds of the import.
        password_hash: the password as ``scrypt$n$r$p$salt$digest``, or ``None``.
    """

    import_id: str
    username: str | None
    email: str
    data: dict[str, Any]
    imported_at: int
    password_hash: str | None = None


class UsersTableImporter:
    """A batch importer writing to the ``users``, ``channels`` and ``messages`` tables at ``path``.

    Each batch is one transaction. Safe to share between threads (calls are
    serialised); use one instance per process.

    Args:
        path: the SQLite file (usually the store's); the table is created on first use.
        timeout: seconds to wait for another writer's lock (the store's, as
            ``importstate``'s command line and server give it).
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        self.path = os.fspath(path)
        self._timeout = timeout
        create_private(self.path)
        self._conn = sqlite3.connect(
            self.path, timeout=timeout, isolation_level=None, check_same_thread=False,
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA secure_delete=ON")
        for table in _SCHEMA:
            self._conn.execute(table)
        _hash_clear_passwords(self._conn)
        self._lock = threading.Lock()
        self._hashers: ThreadPoolExecutor | None = None

    def import_batch(self, users: list[dict[str, Any]]) -> list[BaseException | None]:
        """Insert ``users`` in one transaction; per user, the error that failed it or ``None``.

        Raises:
            DatabaseBusy: another connection kept the file locked past ``timeout``.
        """
        hashes = self._hash_passwords(users)
        return self._in_transaction(lambda now: [
            self._import_one(user, hashed, now) for user, hashed in zip(users, hashes, strict=True)
        ])

    def import_channels(self, channels: list[dict[str, Any]]) -> _Outcomes:
        """Insert ``channels`` in one transaction; per channel, its error or ``None``.

        Raises:
            DatabaseBusy: as :meth:`import_batch`.
        """
        return self._in_transaction(lambda now: [self._import_channel(c, now) for c in channels])

    def import_messages(self, messages: list[dict[str, Any]]) -> _Outcomes:
        """Insert ``messages`` in one transaction; per message, its error or ``None``.

        Raises:
            DatabaseBusy: as :meth:`import_batch`.
        """
        return self._in_transaction(lambda now: [self._import_message(m, now) for m in messages])

    def _in_transaction(self, work: Callable[[int], _T]) -> _T:
        """``work(now)`` in one transaction of the file, its writes committed together."""
        now = time.time_ns() // 1_000_000
        with self._lock:
            patiently(self._conn, "BEGIN IMMEDIATE", path=self.path, timeout=self._timeout)
            try:
                outcomes = work(now)
                patiently(self._conn, "COMMIT", path=self.path, timeout=self._timeout)
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
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
        members = channel.get("users")
        if isinstance(members, Sequence) and not isinstance(members, str):
            execute(
                "INSERT OR IGNORE INTO members (channel, user)"
                " SELECT ?, import_id FROM users WHERE import_id IN"
                " (SELECT value FROM json_each(?))",
                (import_id, json.dumps([m for m in members if isinstance(m, str)])),
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
        attached = message.get("_importFile")
        if isinstance(attached, Mapping):
            self._record_pending(
                PendingKind.FILES, import_id, attached.get("downloadUrl"),
                name=attached.get("name"), content_type=attached.get("type"),
                size=attached.get("size"),
            )
        return None

    def _record_pending(  # noqa: PLR0913 - one argument per column
        self, kind: PendingKind, import_id: str, url: object, *, name: object = None,
        content_type: object = None, size: object = None,
    ) -> None:
        """Keep ``url`` as a download still to fetch, if it is a non-empty string."""
        if not isinstance(url, str) or not url:
            return
        self._conn.execute(
            "INSERT OR IGNORE INTO pending_downloads (kind, import_id, url, name, type, size)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (kind.value, import_id, url, name if isinstance(name, str) else None,
             content_type if isinstance(content_type, str) else None,
             size if isinstance(size, int) and not isinstance(size, bool) else None),
        )

    def _hash_passwords(self, users: list[dict[str, Any]]) -> list[str | ValueError | None]:
        """Each user's password hash, before the lock is taken: tens of milliseconds each.

        Spread over the CPUs (scrypt leaves the interpreter while it hashes).
        """
        if not any(isinstance(user, Mapping) and "password" in user for user in users):
            return [None] * len(users)
        with self._lock:
            if self._hashers is None:
                self._hashers = ThreadPoolExecutor(os.cpu_count() or 1, "importstate-hash")
            hashers = self._hashers
        return list(hashers.map(_password_hash, users))

    def _import_one(
        self, user: Mapping[str, Any], hashed: str | ValueError | None, now: int,
    ) -> BaseException | None:
        try:
            import_id, username, email = _identity(user)
        except ValueError as exc:
            return exc
        if isinstance(hashed, ValueError):
            return hashed
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
            " imported_at, password_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (import_id, username, username.casefold() if username is not None else None,
             email, email.casefold(), json.dumps(_without_password(user)), now, hashed),
        )
        self._record_pending(PendingKind.AVATARS, import_id, user.get("avatarUrl"))
        return None

    def count(self, data_type: DataType | str = DataType.USER) -> int:
        """How many users (or channels, messages) the tables hold."""
        table = _TABLES[DataType(data_type)]
        with self._lock:
            row = self._conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
        return int(row[0])

    def members(self, channel: str) -> list[str]:
        """The import ids of the channel's members (imported users), sorted."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT user FROM members WHERE channel = ? ORDER BY user", (channel,),
            ).fetchall()
        return [user for (user,) in rows]

    def get(self, import_id: str) -> ImportedUser | None:
        """The row of the user whose first ``importIds`` entry is ``import_id``."""
        with self._lock:
            row = self._conn.execute(
                "SELECT import_id, username, email, data, imported_at, password_hash FROM users"
                " WHERE import_id = ?", (import_id,),
            ).fetchone()
        if row is None:
            return None
        return ImportedUser(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5])

    def pending_downloads(self, kind: PendingKind | str) -> list[PendingDownload]:
        """The avatars or message files not yet fetched (failed ones too), in import order."""
        kind = PendingKind(kind)
        with self._lock:
            rows = self._conn.execute(
                "SELECT import_id, url, name, type, size, error FROM pending_downloads"
                " WHERE kind = ? AND fetched_at IS NULL ORDER BY rowid", (kind.value,),
            ).fetchall()
        return [PendingDownload(kind, *row) for row in rows]

    def downloaded(
        self, kind: PendingKind | str, import_id: str, *, path: str | None = None,
        error: str | None = None,
    ) -> None:
        """Record a download fetched to ``path`` (no longer pending), or failed with ``error``.

        A failed download stays pending, its last error kept.

        Raises:
            ValueError: neither or both of ``path`` and ``error`` are given.
        """
        if (path is None) == (error is None):
            msg = "give either the path a download was fetched to or its error"
            raise ValueError(msg)
        self._in_transaction(lambda now: self._conn.execute(
            "UPDATE pending_downloads SET fetched_at = ?, path = ?, error = ?"
            " WHERE kind = ? AND import_id = ?",
            (now if path is not None else None, path, error, PendingKind(kind).value, import_id),
        ))

    def fetched(self, kind: PendingKind | str) -> dict[str, str]:
        """Import id → path of each avatar or message file fetched so far."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT import_id, path FROM pending_downloads"
                " WHERE kind = ? AND fetched_at IS NOT NULL ORDER BY rowid",
                (PendingKind(kind).value,),
            ).fetchall()
        return dict(rows)

    def close(self) -> None:
        """Close the connection; the importer is not used afterwards."""
        with self._lock:
            self._conn.close()
            if self._hashers is not None:
                self._hashers.shutdown()


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


def _password_hash(user: Mapping[str, Any]) -> str | ValueError | None:
    """The user's password as a salted hash; ``None`` for none; an error for one not a string."""
    password = user.get("password") if isinstance(user, Mapping) else None
    if password is None:
        return None
    if not isinstance(password, str) or not password:
        return ValueError("password must be a non-empty string")
    return hash_password(password)


def _without_password(user: Mapping[str, Any]) -> Mapping[str, Any]:
    if "password" not in user:
        return user
    return {key: value for key, value in user.items() if key != "password"}


def _hash_clear_passwords(conn: sqlite3.Connection) -> None:
    """Upgrade a table written before passwords were hashed: hash them, drop the clear text."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(users)")}
    if "password_hash" in columns:
        return  # written with hashes from the start
    conn.execute("ALTER TABLE users ADD COLUMN password_hash TEXT")
    rows = conn.execute(
        "SELECT import_id, data FROM users WHERE json_extract(data, '$.password') IS NOT NULL",
    ).fetchall()
    if not rows:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for import_id, data in rows:
            user = json.loads(data)
            hashed = _password_hash(user)
            conn.execute(
                "UPDATE users SET data = ?, password_hash = ? WHERE import_id = ?",
                (json.dumps(_without_password(user)),
                 hashed if isinstance(hashed, str) else None, import_id),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
