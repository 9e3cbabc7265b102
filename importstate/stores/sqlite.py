"""The embedded default store: one SQLite file in WAL mode.

Several threads and processes may share one file: each living thread has its
own connection (closed when the thread ends), writers take SQLite's write lock
up front (``BEGIN IMMEDIATE``) and wait up to ``timeout`` seconds for it, and
readers never wait for writers.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
import sqlite3
import threading
import weakref
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Final

import attrs

from importstate._files import create_private
from importstate._sqlite import busy, is_busy, retry_while_busy
from importstate._time import epoch_millis, from_epoch_millis
from importstate.errors import DatabaseBusy, SchemaVersionError
from importstate.history import HistoryEntry
from importstate.model import Operation
from importstate.stores._protocol import NewRecord, Pending, StagedRecord
from importstate.stores._rows import history_entry, history_row, pending_page, staged_records

__all__ = [
    "SCHEMA_VERSION",
    "SQLiteStore",
]

SCHEMA_VERSION: Final = 4

# operation is a key made of the row's operations.created (version 1 kept the
# 24-character id: a narrower row is fewer pages to write, read and clear), the
# record's type, and whether the run's selection left it out (version 3): see _Slot.
_STAGED: Final = """
CREATE TABLE IF NOT EXISTS staged (
    position  INTEGER PRIMARY KEY,
    operation INTEGER NOT NULL,
    id        TEXT NOT NULL,
    data      TEXT NOT NULL,
    data_type TEXT NOT NULL,
    errors    TEXT
)
"""
#: The code of each record type in a staged row's key (see _Slot).
_TYPE_CODES: Final = {"user": 0, "channel": 1, "message": 2}
#: The key's bit for a record the selection left out, and the key's slots per operation.
_LEFT_OUT: Final = 4
_SLOTS: Final = 8
_TYPE_KEYS: Final = "CASE data_type WHEN 'channel' THEN 1 WHEN 'message' THEN 2 ELSE 0 END"

_SCHEMA: Final = f"""
CREATE TABLE IF NOT EXISTS operations (
    created    INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    ts         INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    valid      INTEGER NOT NULL,
    doc        TEXT NOT NULL,
    checkpoint INTEGER,
    heartbeat  INTEGER,
    completed  INTEGER,
    error      INTEGER
);
CREATE INDEX IF NOT EXISTS operations_by_ts ON operations (ts, created);
-- A batch writes its counts to completed and error (and updated_at) instead of
-- rewriting doc: NULL means doc holds them (see _operation).
-- No index on updated_at: every batch moves it, and latest() reads a table of a
-- few rows per import ever made.
DROP INDEX IF EXISTS operations_by_update;
{_STAGED};
-- No index on operation: a new operation clears the staging, so its rows are the
-- current operation's, read in position order (the primary key). Version 1 had one.
DROP INDEX IF EXISTS staged_by_operation;
-- Version 4: each stored change of an operation's status, in the order written.
CREATE TABLE IF NOT EXISTS history (
    position  INTEGER PRIMARY KEY,
    operation TEXT NOT NULL,
    before    TEXT,
    after     TEXT NOT NULL,
    event     TEXT NOT NULL,
    at        INTEGER NOT NULL,
    actor     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_by_operation ON history (operation);
"""


_ENCODER: Final = json.JSONEncoder(separators=(",", ":"))


def _upgrade_from_1(conn: sqlite3.Connection) -> None:
    """Version 1 → 2: counts beside the document, staging keyed by ``operations.created``."""
    conn.execute("ALTER TABLE operations ADD COLUMN completed INTEGER")
    conn.execute("ALTER TABLE operations ADD COLUMN error INTEGER")
    conn.execute("ALTER TABLE staged RENAME TO staged_1")
    conn.execute("DROP INDEX IF EXISTS staged_by_operation")
    conn.execute(_STAGED)
    conn.execute(
        "INSERT INTO staged (position, operation, id, data, data_type, errors)"
        " SELECT s.position, o.created, s.id, s.data, s.data_type, s.errors"
        " FROM staged_1 AS s JOIN operations AS o ON o.id = s.operation",
    )
    conn.execute("DROP TABLE staged_1")


def _upgrade_from_2(conn: sqlite3.Connection) -> None:
    """Version 2 → 3: a staged row's key names its type too (see _Slot)."""
    conn.execute(f"UPDATE staged SET operation = operation * {_SLOTS} + {_TYPE_KEYS}")  # noqa: S608


class SQLiteStore:
    """Operations and staging in one SQLite file (WAL mode).

    Args:
        path: the database file; created with its schema on first use.
        durable: ``synchronous=FULL`` (a committed batch survives power loss)
            instead of the default ``NORMAL`` (it survives a process crash).
        timeout: seconds a writer waits for another process's write lock.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, durable: bool = False, timeout: float = 30.0,
    ) -> None:
        self.path = os.fspath(path)
        self._synchronous = "FULL" if durable else "NORMAL"
        self._timeout = timeout
        self._local = threading.local()
        # Weak: a thread's handle lives in its thread-local slot, which goes (and
        # closes the connection) when the thread ends; close() reaches the rest.
        self._handles: weakref.WeakSet[_Handle] = weakref.WeakSet()
        self._guard = threading.Lock()
        create_private(self.path)
        self._create_schema()

    def _connect(self) -> _Handle:
        conn = sqlite3.connect(
            self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False,
        )
        # Turning on WAL needs a moment of exclusive access to a new file.
        self._patiently(conn, "PRAGMA journal_mode=WAL")
        self._patiently(conn, f"PRAGMA synchronous={self._synchronous}")
        # Deleted rows (staged users' passwords) are overwritten, not left in free
        # pages; builds differ in the default (Debian's is on, upstream's off).
        conn.execute("PRAGMA secure_delete=ON")
        handle = _Handle(conn)
        with self._guard:
            self._handles.add(handle)
        return handle

    def _handle(self) -> _Handle:
        # A connection must not cross a fork: a child process opens its own.
        handle: _Handle | None = getattr(self._local, "handle", None)
        if handle is None or handle.pid != os.getpid():
            if handle is not None:
                handle.abandon()
            handle = self._local.handle = self._connect()
        return handle

    def _connection(self) -> sqlite3.Connection:
        """The calling thread's connection."""
        return self._handle().conn

    def _create_schema(self) -> None:
        # Opening an existing database must not wait for another process's write lock.
        with self.reading() as tx:
            if tx.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
                return
        with self.transaction() as tx:
            version = tx.conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                msg = (
                    f"{self.path}: schema version {version} is newer than this importstate "
                    f"supports ({SCHEMA_VERSION}); upgrade importstate"
                )
                raise SchemaVersionError(msg)
            if version == 1:
                _upgrade_from_1(tx.conn)
            if version in {1, 2}:
                _upgrade_from_2(tx.conn)
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    tx.conn.execute(statement)
            tx.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def transaction(self) -> AbstractContextManager[_SQLiteTransaction]:
        """A read-write transaction holding the database's write lock."""
        return _Begin(self, "BEGIN IMMEDIATE", writes=True)

    def reading(self) -> AbstractContextManager[_SQLiteTransaction]:
        """A read-only snapshot; does not wait for writers (WAL)."""
        return _Begin(self, "BEGIN", writes=False)

    def _patiently(self, conn: sqlite3.Connection, sql: str) -> None:
        """Execute ``sql``, waiting out a lock for at most ``timeout`` (:func:`patiently`)."""
        try:  # the first try here: it is every BEGIN and COMMIT of a run
            conn.execute(sql)
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            retry_while_busy(conn, sql, path=self.path, timeout=self._timeout, error=exc)

    def _busy(self) -> DatabaseBusy:
        return busy(self.path, self._timeout)

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database and empty it, if no reader is in the way.

        Until then the log keeps the pages a transaction replaced, deleted
        staged users (and their passwords) included. :meth:`close` does it;
        ``importstate serve`` also does it after each run. It waits at most
        a moment for readers, and a checkpoint they hold up is left to the
        next one.
        """
        conn = self._connection()
        conn.execute(f"PRAGMA busy_timeout={_CHECKPOINT_WAIT_MS}")
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
        finally:
            conn.execute(f"PRAGMA busy_timeout={int(self._timeout * 1000)}")

    def close(self) -> None:
        """Checkpoint, then close every connection this store opened (in any thread)."""
        with self._guard:
            handles = [handle for handle in self._handles if handle.pid == os.getpid()]
        if handles:
            with contextlib.suppress(sqlite3.Error):  # whoever opens the file next does it
                self.checkpoint()
        with self._guard:
            for handle in list(self._handles):
                if handle.pid == os.getpid():
                    handle.close()
                else:
                    handle.abandon()
            self._handles.clear()
        self._local = threading.local()


#: Milliseconds a checkpoint waits for readers before leaving the rest to the next one.
_CHECKPOINT_WAIT_MS: Final = 200


class _Handle:
    """One thread's connection, and the rows its last commit left (see :class:`_Begin`).

    The connection closes when the handle goes: when its thread ends (the
    thread-local slot holding it is dropped) or the store closes.
    """

    __slots__ = ("__weakref__", "_closer", "conn", "known", "pid")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.pid = os.getpid()
        self.known: tuple[int, dict[str, _Row]] | None = None
        self._closer = weakref.finalize(self, conn.close)

    def close(self) -> None:
        self._closer()

    def abandon(self) -> None:
        """Never close it: it belongs to the parent process (a fork copied it)."""
        self._closer.detach()


#: A stored row's ``(doc, completed, error, updated_at)`` → its Operation. Operations
#: are immutable, so one parse (or the write that produced the row) serves every
#: later read of it: a run re-reads the operation it just wrote each batch, a status
#: poll each request.
_Key = tuple[str, int | None, int | None, int]
_PARSED: Final[dict[_Key, Operation]] = {}
_PARSED_MAX: Final = 1024
#: The columns that make up an operation, in the order of ``_Key``.
_DOC: Final = "doc, completed, error, updated_at"


def _operation(key: _Key) -> Operation:
    operation = _PARSED.get(key)
    if operation is None:
        doc, completed, error, updated_at = key
        operation = Operation.from_wire(json.loads(doc))
        if completed is not None and error is not None:
            # A batch's counts and time, written beside the document (not into it).
            count = attrs.evolve(operation.count, completed=completed, error=error)
            operation = attrs.evolve(
                operation, count=count, updated_at=from_epoch_millis(updated_at),
            )
        _remember(key, operation)
    return operation


def _remember(key: _Key, operation: Operation) -> None:
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.clear()  # crude but safe: a dict cleared under a reader is just a miss
    _PARSED[key] = operation


def _counts_only(before: Operation, after: Operation) -> bool:
    """Whether ``after`` differs from ``before`` only in completed, error and updated_at.

    Identity, not equality: a run derives each batch's operation from the last
    one, so every other field is the very same object; anything else is
    written whole.
    """
    old, new = before.count, after.count
    return (
        new.completed is not None and new.error is not None
        and after.status is before.status and after.valid is before.valid
        and after.failure is before.failure and after.file is before.file
        and after.content_type is before.content_type and after.ts is before.ts
        and after.id is before.id and after.type is before.type
        and after.importer_key is before.importer_key and after.user is before.user
        and new.total is old.total and new.users is old.users
        and new.channels is old.channels and new.messages is old.messages
    )


_OPERATION_ORDER: Final = {
    "current": "ORDER BY ts DESC, created DESC",
    "latest": "ORDER BY updated_at DESC, ts DESC, created DESC",
}


class _Begin:
    """A transaction of the store on this thread's connection: begun on entry, committed on exit.

    A class rather than a generator: it is entered once per batch of a run.

    A writer starts from the operation rows its connection's last committed
    transaction left, when no other connection has committed since (SQLite's
    ``data_version`` says so): a run's batch commit then reads nothing
    before it writes. Any other writer, in this process or another, makes
    the next transaction read its rows again.
    """

    __slots__ = ("_begin", "_handle", "_store", "_tx", "_version", "_writes")

    def __init__(self, store: SQLiteStore, begin: str, *, writes: bool) -> None:
        self._store, self._begin, self._writes = store, begin, writes

    def __enter__(self) -> _SQLiteTransaction:
        store = self._store
        handle = self._handle = store._handle()  # noqa: SLF001 - the store's own helpers
        conn = handle.conn
        store._patiently(conn, self._begin)  # noqa: SLF001
        rows: dict[str, _Row] = {}
        if self._writes:
            self._version = conn.execute("PRAGMA data_version").fetchone()[0]
            known = handle.known
            if known is not None and known[0] == self._version:
                rows = known[1]
        self._tx = _SQLiteTransaction(conn, rows)
        return self._tx

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: object,
    ) -> None:
        conn = self._tx.conn
        if error is None:
            try:
                self._tx.flush()
                self._store._patiently(conn, "COMMIT")  # noqa: SLF001
            except BaseException as exc:
                self._roll_back(conn, exc)
                raise
            if self._writes:
                # Our own commit leaves data_version as it was: the rows stay good.
                self._handle.known = self._version, self._tx.rows
            return
        self._roll_back(conn, error)  # and the body's error goes on

    def _roll_back(self, conn: sqlite3.Connection, error: BaseException) -> None:
        if self._writes:
            self._handle.known = None  # its rows may hold undone writes
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if is_busy(error):
            raise self._store._busy() from error  # noqa: SLF001


class _SQLiteTransaction:
    """One transaction on one connection.

    Writes to an operation read in this transaction (``get``) are deferred
    and merged: a run's batch commit updates the document, the checkpoint and
    the heartbeat of one row in a single ``UPDATE``, issued before the next
    statement or the ``COMMIT``. Writes to other operations go out at once,
    so an unknown id still raises :class:`KeyError` where the call is made.
    """

    def __init__(self, conn: sqlite3.Connection, rows: dict[str, _Row]) -> None:
        self.conn = conn
        # What this transaction read or wrote of each operation it got: nobody else
        # writes those rows inside our transaction.
        self.rows = rows
        self._deferred: dict[str, dict[str, object]] = {}

    def _execute(self, sql: str, parameters: Sequence[object] = ()) -> sqlite3.Cursor:
        if self._deferred:
            self.flush()
        return self.conn.execute(sql, parameters)

    def flush(self) -> None:
        """Issue the deferred writes (before the next statement, and before ``COMMIT``)."""
        deferred, self._deferred = self._deferred, {}
        for operation_id, columns in deferred.items():
            names = tuple(columns)
            self.conn.execute(_update_statement(names), (*columns.values(), operation_id))

    def current(self) -> Operation | None:
        row = self._execute(
            f"SELECT {_DOC} FROM operations {_OPERATION_ORDER['current']} LIMIT 1",  # noqa: S608
        ).fetchone()
        return _operation(row) if row else None

    def get(self, operation_id: str) -> Operation | None:
        known = self.rows.get(operation_id)
        if known is not None:
            return known.operation
        row = self._execute(
            f"SELECT {_DOC}, ts, checkpoint, heartbeat, created FROM operations WHERE id = ?",  # noqa: S608
            (operation_id,),
        ).fetchone()
        if row is None:
            return None
        operation = _operation(row[:4])
        self.rows[operation_id] = _Row(operation, row[0], row[4], row[5], row[6], row[7])
        return operation

    def latest(self, limit: int) -> list[Operation]:
        rows = self._execute(
            f"SELECT {_DOC} FROM operations {_OPERATION_ORDER['latest']} LIMIT ?",  # noqa: S608
            (limit,),
        )
        return [_operation(row) for row in rows]

    def valid_operations(self) -> list[Operation]:
        rows = self._execute(
            f"SELECT {_DOC} FROM operations WHERE valid ORDER BY created",  # noqa: S608
        )
        return [_operation(row) for row in rows]

    def insert(self, operation: Operation) -> None:
        updated_at, valid, doc = self._columns(operation)
        self._execute(
            "INSERT INTO operations (id, ts, updated_at, valid, doc) VALUES (?, ?, ?, ?, ?)",
            (operation.id, epoch_millis(operation.ts), updated_at, valid, doc),
        )

    def update(self, operation: Operation) -> None:
        known = self.rows.get(operation.id)
        if known is None:
            updated_at, valid, doc = self._columns(operation)
            cursor = self._execute(
                "UPDATE operations SET updated_at = ?, valid = ?, doc = ?, ts = ?,"
                " completed = NULL, error = NULL WHERE id = ?",
                (updated_at, valid, doc, epoch_millis(operation.ts), operation.id),
            )
            if cursor.rowcount != 1:
                msg = f"no operation {operation.id!r}"
                raise KeyError(msg)
            return
        columns = self._deferred.setdefault(operation.id, {})
        if _counts_only(known.operation, operation):
            count, updated_at = operation.count, epoch_millis(operation.updated_at)
            columns.update(completed=count.completed, error=count.error, updated_at=updated_at)
            _remember((known.doc, count.completed, count.error, updated_at), operation)
        else:
            updated_at, valid, doc = self._columns(operation)
            columns.update(updated_at=updated_at, valid=valid, doc=doc, completed=None, error=None)
            ts = epoch_millis(operation.ts)
            if ts != known.ts:  # ts almost never changes: its index is spared a rewrite
                columns["ts"] = ts
            known.doc, known.ts = doc, ts
        known.operation = operation

    @staticmethod
    def _columns(operation: Operation) -> tuple[int, bool, str]:
        doc = _ENCODER.encode(operation.to_wire())
        updated_at = epoch_millis(operation.updated_at)
        _remember((doc, None, None, updated_at), operation)
        return updated_at, operation.valid, doc

    def stage(self, operation_id: str, records: Sequence[NewRecord]) -> None:
        slot = self._slot(operation_id)
        if slot is None:
            msg = f"no operation {operation_id!r}"
            raise KeyError(msg)
        keys = slot.of
        self.conn.executemany(
            "INSERT INTO staged (operation, id, data, data_type) VALUES (?, ?, ?, ?)",
            ((keys[record[2]], *record) for record in records),
        )

    def staged(self, operation_id: str, *, after: int | None, limit: int) -> list[StagedRecord]:
        slot = self._slot(operation_id)
        if slot is None:
            return []
        rows = self._execute(
            "SELECT position, id, data, data_type, errors FROM staged"
            " WHERE position > ? AND operation BETWEEN ? AND ? ORDER BY position LIMIT ?",
            (after if after is not None else -1, *slot.every, limit),
        )
        return staged_records(rows)

    def pending(
        self, operation_id: str, data_type: str, *, after: int | None, limit: int,
    ) -> list[Pending]:
        slot = self._slot(operation_id)
        if slot is None:
            return []
        # The primary key gives the order; rows of other keys are skipped, not decoded.
        # The page comes back as two texts, its positions and its data as one JSON
        # array, decoded by one call each: a call per row cost a fifth of a run.
        positions, data = self._execute(
            "SELECT group_concat(position), '[' || group_concat(data) || ']' FROM"
            " (SELECT position, data FROM staged"
            "  WHERE position > ? AND operation = ? ORDER BY position LIMIT ?)",
            (after if after is not None else -1, slot.of[data_type], limit),
        ).fetchone()
        return pending_page(positions, data)

    def deselect(self, operation_id: str, positions: Sequence[int]) -> None:
        slot = self._slot(operation_id) if positions else None
        if slot is None:
            return
        self.conn.executemany(
            f"UPDATE staged SET operation = operation | {_LEFT_OUT}"  # noqa: S608 - a constant
            " WHERE position = ? AND operation BETWEEN ? AND ?",
            [(position, *slot.every) for position in positions],
        )

    def record_errors(
        self, operation_id: str, errors: Sequence[tuple[int, Mapping[str, Any]]],
    ) -> None:
        slot = self._slot(operation_id) if errors else None
        if slot is None:
            return
        self.conn.executemany(
            "UPDATE staged SET errors = json_insert(coalesce(errors, '[]'), '$[#]', json(?))"
            " WHERE position = ? AND operation BETWEEN ? AND ?",
            [(json.dumps(error), position, *slot.every) for position, error in errors],
        )

    def remove_succeeded(self, operation_id: str) -> int:
        slot = self._slot(operation_id)
        if slot is None:
            return 0
        kept = self._execute(
            "SELECT 1 FROM staged WHERE errors IS NOT NULL OR operation NOT BETWEEN ? AND ?"
            " LIMIT 1", slot.every,
        ).fetchone()
        if kept is None:
            # Every row goes: a DELETE without WHERE drops the table's pages at once.
            return self._execute("DELETE FROM staged").rowcount
        cursor = self._execute(
            "DELETE FROM staged WHERE operation BETWEEN ? AND ? AND errors IS NULL", slot.every,
        )
        return cursor.rowcount

    def unstage_all(self) -> int:
        return self._execute("DELETE FROM staged").rowcount

    def delete(self, operation_id: str) -> bool:
        slot = self._slot(operation_id)
        if slot is None:
            return False
        # Staging carries no index on its operation, and an operation's rows sit
        # before every later operation's: when the first row is a later one's, this
        # operation has none, and no scan of the (current) staging is needed.
        first = self.conn.execute("SELECT operation FROM staged ORDER BY position LIMIT 1") \
            .fetchone()
        if first is not None and first[0] <= slot.every[1]:
            self.conn.execute("DELETE FROM staged WHERE operation BETWEEN ? AND ?", slot.every)
        self.conn.execute("DELETE FROM history WHERE operation = ?", (operation_id,))
        self.conn.execute("DELETE FROM operations WHERE id = ?", (operation_id,))
        del self.rows[operation_id]
        return True

    def append_history(self, entries: Sequence[HistoryEntry]) -> None:
        if self._deferred:
            self.flush()
        self.conn.executemany(
            "INSERT INTO history (operation, before, after, event, at, actor)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [history_row(entry) for entry in entries],
        )

    def history(self, operation_id: str) -> list[HistoryEntry]:
        rows = self._execute(
            "SELECT operation, before, after, event, at, actor FROM history"
            " WHERE operation = ? ORDER BY position", (operation_id,),
        ).fetchall()
        return [history_entry(row) for row in rows]

    def checkpoint(self, operation_id: str) -> int | None:
        return self._row(operation_id).checkpoint

    def heartbeat(self, operation_id: str) -> dt.datetime | None:
        millis = self._row(operation_id).heartbeat
        return from_epoch_millis(millis) if millis is not None else None

    def _slot(self, operation_id: str) -> _Slot | None:
        """The keys of the operation's staged rows (``None``: no such operation).

        Deferred writes go out first: the caller's next statement is on staging.
        """
        if self._deferred:
            self.flush()
        if self.get(operation_id) is None:
            return None
        return self.rows[operation_id].slot

    def _row(self, operation_id: str) -> _Row:
        if self.get(operation_id) is None:
            msg = f"no operation {operation_id!r}"
            raise KeyError(msg)
        return self.rows[operation_id]

    def set_checkpoint(
        self, operation_id: str, position: int | None, heartbeat: dt.datetime,
    ) -> None:
        row = self._row(operation_id)
        row.checkpoint, row.heartbeat = position, epoch_millis(heartbeat)
        columns = self._deferred.setdefault(operation_id, {})
        columns.update(checkpoint=position, heartbeat=row.heartbeat)


class _Slot:
    """The keys of one operation's staged rows (``staged.operation``, version 3).

    A row's key is its operation's ``created`` times 8, plus its type's code
    (user 0, channel 1, message 2), plus 4 once the run's selection left it
    out. A run reads one type's selected records with one equality on the
    key, as it read one operation's before; a filter on more columns would
    be compared on every row of the run's hot query, and an index would slow
    every staging. The operation's rows, listed, are one range of keys.

    Attributes:
        of: the key of the operation's selected records, by ``dataType``.
        every: the first and last key of its records, of every type, selected or not.
    """

    __slots__ = ("every", "of")

    def __init__(self, created: int) -> None:
        first = created * _SLOTS
        self.of = {data_type: first + code for data_type, code in _TYPE_CODES.items()}
        self.every = first, first + _SLOTS - 1


@attrs.define
class _Row:
    """An operation's row as this transaction last read or wrote it."""

    operation: Operation
    doc: str
    ts: int
    checkpoint: int | None
    heartbeat: int | None
    created: int
    slot: _Slot = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.slot = _Slot(self.created)


@functools.cache
def _update_statement(columns: tuple[str, ...]) -> str:
    assignments = ", ".join(f"{name} = ?" for name in columns)
    return f"UPDATE operations SET {assignments} WHERE id = ?"  # noqa: S608 - our own column names
