"""The embedded default store: one SQLite file in WAL mode.

Several threads and processes may share one file: each thread has its own
connection, writers take SQLite's write lock up front (``BEGIN IMMEDIATE``)
and wait up to ``timeout`` seconds for it, and readers never wait for writers.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Final

import attrs

from importstate._time import epoch_millis, from_epoch_millis
from importstate.errors import DatabaseBusy, SchemaVersionError
from importstate.model import Operation
from importstate.stores._protocol import NewRecord, Pending, StagedRecord
from importstate.stores._rows import pending_records, staged_records

SCHEMA_VERSION: Final = 2

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS operations (
    created    INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    ts         INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    valid      INTEGER NOT NULL,
    doc        TEXT NOT NULL,
    checkpoint INTEGER,
    heartbeat  INTEGER
);
CREATE INDEX IF NOT EXISTS operations_by_ts ON operations (ts, created);
-- No index on updated_at: every batch moves it, and latest() reads a table of a
-- few rows per import ever made.
DROP INDEX IF EXISTS operations_by_update;
CREATE TABLE IF NOT EXISTS staged (
    position  INTEGER PRIMARY KEY,
    operation TEXT NOT NULL,
    id        TEXT NOT NULL,
    data      TEXT NOT NULL,
    data_type TEXT NOT NULL,
    errors    TEXT
);
-- No index on operation: a new operation clears the staging, so its rows are the
-- current operation's, read in position order (the primary key). Version 1 had one.
DROP INDEX IF EXISTS staged_by_operation;
"""


_ENCODER: Final = json.JSONEncoder(separators=(",", ":"))


#: SQLite's primary result codes for "another connection holds the lock".
_BUSY_CODES: Final = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
#: Longest pause between two attempts while the database is locked, in seconds.
_MAX_PAUSE: Final = 0.05


def _is_busy(error: BaseException) -> bool:
    return (
        isinstance(error, sqlite3.OperationalError)
        and error.sqlite_errorcode & 0xFF in _BUSY_CODES
    )


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
        self._connections: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        self._create_schema()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False,
        )
        # Turning on WAL needs a moment of exclusive access to a new file.
        self._patiently(conn, "PRAGMA journal_mode=WAL")
        self._patiently(conn, f"PRAGMA synchronous={self._synchronous}")
        with self._guard:
            self._connections.append(conn)
        return conn

    def _connection(self) -> sqlite3.Connection:
        # A connection must not cross a fork: a child process opens its own.
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            conn = self._connect()
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

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
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    tx.conn.execute(statement)
            tx.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def transaction(self) -> AbstractContextManager[_SQLiteTransaction]:
        """A read-write transaction holding the database's write lock."""
        return _Begin(self, "BEGIN IMMEDIATE")

    def reading(self) -> AbstractContextManager[_SQLiteTransaction]:
        """A read-only snapshot; does not wait for writers (WAL)."""
        return _Begin(self, "BEGIN")

    def _patiently(self, conn: sqlite3.Connection, sql: str) -> None:
        """Execute ``sql``, retrying while the database is locked, for at most ``timeout``.

        SQLite's busy handler already waits for most locks; this also covers
        the ones it returns at once (a WAL reader racing a recovery, a COMMIT
        waiting for readers).

        Raises:
            DatabaseBusy: still locked when ``timeout`` ran out.
        """
        try:
            conn.execute(sql)
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
        else:
            return
        deadline = time.monotonic() + self._timeout
        pause = 0.001
        while True:
            try:
                conn.execute(sql)
            except sqlite3.OperationalError as exc:
                left = deadline - time.monotonic()
                if not _is_busy(exc):
                    raise
                if left <= 0:
                    raise self._busy() from exc
                time.sleep(min(pause, left))
                pause = min(pause * 2, _MAX_PAUSE)
            else:
                return

    def _busy(self) -> DatabaseBusy:
        return DatabaseBusy(
            f"{self.path}: database is busy: another process kept it locked for more than "
            f"{self._timeout:g} s; try again",
        )

    def close(self) -> None:
        """Close every connection this store opened (in any thread)."""
        with self._guard:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()


#: Stored document text → its Operation. Operations are immutable, so one parse
#: (or the write that produced the text) serves every later read of it: a run
#: re-reads the operation it just wrote each batch, a status poll each request.
_PARSED: Final[dict[str, Operation]] = {}
_PARSED_MAX: Final = 1024


def _operation(doc: str) -> Operation:
    operation = _PARSED.get(doc)
    if operation is None:
        operation = Operation.from_wire(json.loads(doc))
        _remember(doc, operation)
    return operation


def _remember(doc: str, operation: Operation) -> None:
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.clear()  # crude but safe: a dict cleared under a reader is just a miss
    _PARSED[doc] = operation


_OPERATION_ORDER: Final = {
    "current": "ORDER BY ts DESC, created DESC",
    "latest": "ORDER BY updated_at DESC, ts DESC, created DESC",
}


class _Begin:
    """A transaction of the store on this thread's connection: begun on entry, committed on exit.

    A class rather than a generator: it is entered twice per batch of a run.
    """

    __slots__ = ("_begin", "_store", "_tx")

    def __init__(self, store: SQLiteStore, begin: str) -> None:
        self._store, self._begin = store, begin

    def __enter__(self) -> _SQLiteTransaction:
        conn = self._store._connection()  # noqa: SLF001 - the store's own helper
        self._store._patiently(conn, self._begin)  # noqa: SLF001
        self._tx = _SQLiteTransaction(conn)
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
            return
        self._roll_back(conn, error)  # and the body's error goes on

    def _roll_back(self, conn: sqlite3.Connection, error: BaseException) -> None:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if _is_busy(error):
            raise self._store._busy() from error  # noqa: SLF001


class _SQLiteTransaction:
    """One transaction on one connection.

    Writes to an operation read in this transaction (``get``) are deferred
    and merged: a run's batch commit updates the document, the checkpoint and
    the heartbeat of one row in a single ``UPDATE``, issued before the next
    statement or the ``COMMIT``. Writes to other operations go out at once,
    so an unknown id still raises :class:`KeyError` where the call is made.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        # What this transaction read or wrote of each operation it got: nobody else
        # writes those rows inside our transaction.
        self._rows: dict[str, _Row] = {}
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
            f"SELECT doc FROM operations {_OPERATION_ORDER['current']} LIMIT 1",  # noqa: S608
        ).fetchone()
        return _operation(row[0]) if row else None

    def get(self, operation_id: str) -> Operation | None:
        known = self._rows.get(operation_id)
        if known is not None:
            return known.operation
        row = self._execute(
            "SELECT doc, ts, checkpoint, heartbeat FROM operations WHERE id = ?", (operation_id,),
        ).fetchone()
        if row is None:
            return None
        operation = _operation(row[0])
        self._rows[operation_id] = _Row(operation, row[1], row[2], row[3])
        return operation

    def latest(self, limit: int) -> list[Operation]:
        rows = self._execute(
            f"SELECT doc FROM operations {_OPERATION_ORDER['latest']} LIMIT ?",  # noqa: S608
            (limit,),
        )
        return [_operation(doc) for (doc,) in rows]

    def valid_operations(self) -> list[Operation]:
        rows = self._execute("SELECT doc FROM operations WHERE valid ORDER BY created")
        return [_operation(doc) for (doc,) in rows]

    def insert(self, operation: Operation) -> None:
        self._execute(
            "INSERT INTO operations (id, ts, updated_at, valid, doc) VALUES (?, ?, ?, ?, ?)",
            (operation.id, epoch_millis(operation.ts), *self._columns(operation)),
        )

    def update(self, operation: Operation) -> None:
        updated_at, valid, doc = self._columns(operation)
        ts = epoch_millis(operation.ts)
        known = self._rows.get(operation.id)
        if known is not None:
            columns = self._deferred.setdefault(operation.id, {})
            columns.update(updated_at=updated_at, valid=valid, doc=doc)
            if ts != known.ts:  # ts almost never changes: its index is spared a rewrite
                columns["ts"] = ts
            known.operation, known.ts = operation, ts
            return
        cursor = self._execute(
            "UPDATE operations SET updated_at = ?, valid = ?, doc = ?, ts = ? WHERE id = ?",
            (updated_at, valid, doc, ts, operation.id),
        )
        if cursor.rowcount != 1:
            msg = f"no operation {operation.id!r}"
            raise KeyError(msg)

    @staticmethod
    def _columns(operation: Operation) -> tuple[int, bool, str]:
        doc = _ENCODER.encode(operation.to_wire())
        _remember(doc, operation)
        return epoch_millis(operation.updated_at), operation.valid, doc

    def stage(self, operation_id: str, records: Sequence[NewRecord]) -> None:
        if self._deferred:
            self.flush()
        self.conn.executemany(
            "INSERT INTO staged (operation, id, data, data_type) VALUES (?, ?, ?, ?)",
            ((operation_id, *record) for record in records),
        )

    def staged(self, operation_id: str, *, after: int | None, limit: int) -> list[StagedRecord]:
        rows = self._execute(
            "SELECT position, id, data, data_type, errors FROM staged"
            " WHERE position > ? AND operation = ? ORDER BY position LIMIT ?",
            (after if after is not None else -1, operation_id, limit),
        )
        return staged_records(rows)

    def pending(self, operation_id: str, *, after: int | None, limit: int) -> list[Pending]:
        rows = self._execute(
            "SELECT position, data FROM staged"
            " WHERE position > ? AND operation = ? ORDER BY position LIMIT ?",
            (after if after is not None else -1, operation_id, limit),
        )
        return pending_records(rows)

    def record_errors(
        self, operation_id: str, errors: Sequence[tuple[int, Mapping[str, Any]]],
    ) -> None:
        if not errors:
            return
        if self._deferred:
            self.flush()
        self.conn.executemany(
            "UPDATE staged SET errors = json_insert(coalesce(errors, '[]'), '$[#]', json(?))"
            " WHERE position = ? AND operation = ?",
            [(json.dumps(error), position, operation_id) for position, error in errors],
        )

    def remove_succeeded(self, operation_id: str) -> int:
        kept = self._execute(
            "SELECT 1 FROM staged WHERE errors IS NOT NULL OR operation != ? LIMIT 1",
            (operation_id,),
        ).fetchone()
        if kept is None:
            # Every row goes: a DELETE without WHERE drops the table's pages at once.
            return self._execute("DELETE FROM staged").rowcount
        cursor = self._execute(
            "DELETE FROM staged WHERE operation = ? AND errors IS NULL", (operation_id,),
        )
        return cursor.rowcount

    def unstage_all(self) -> int:
        return self._execute("DELETE FROM staged").rowcount

    def checkpoint(self, operation_id: str) -> int | None:
        return self._row(operation_id).checkpoint

    def heartbeat(self, operation_id: str) -> dt.datetime | None:
        millis = self._row(operation_id).heartbeat
        return from_epoch_millis(millis) if millis is not None else None

    def _row(self, operation_id: str) -> _Row:
        if self.get(operation_id) is None:
            msg = f"no operation {operation_id!r}"
            raise KeyError(msg)
        return self._rows[operation_id]

    def set_checkpoint(
        self, operation_id: str, position: int | None, heartbeat: dt.datetime,
    ) -> None:
        row = self._row(operation_id)
        row.checkpoint, row.heartbeat = position, epoch_millis(heartbeat)
        columns = self._deferred.setdefault(operation_id, {})
        columns.update(checkpoint=position, heartbeat=row.heartbeat)


@attrs.define
class _Row:
    """An operation's row as this transaction last read or wrote it."""

    operation: Operation
    ts: int
    checkpoint: int | None
    heartbeat: int | None


@functools.cache
def _update_statement(columns: tuple[str, ...]) -> str:
    assignments = ", ".join(f"{name} = ?" for name in columns)
    return f"UPDATE operations SET {assignments} WHERE id = ?"  # noqa: S608 - our own column names
