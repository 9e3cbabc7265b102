"""The embedded default store: one SQLite file in WAL mode.

Several threads and processes may share one file: each thread has its own
connection, writers take SQLite's write lock up front (``BEGIN IMMEDIATE``)
and wait up to ``timeout`` seconds for it, and readers never wait for writers.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final

from importstate._time import epoch_millis, from_epoch_millis
from importstate.errors import DatabaseBusy, SchemaVersionError
from importstate.model import Operation
from importstate.stores._protocol import NewRecord, StagedRecord
from importstate.stores._rows import staged_records

SCHEMA_VERSION: Final = 1

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
CREATE INDEX IF NOT EXISTS staged_by_operation ON staged (operation, position);
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

    @contextmanager
    def transaction(self) -> Iterator[_SQLiteTransaction]:
        """A read-write transaction holding the database's write lock."""
        with self._begin("BEGIN IMMEDIATE") as tx:
            yield tx

    @contextmanager
    def reading(self) -> Iterator[_SQLiteTransaction]:
        """A read-only snapshot; does not wait for writers (WAL)."""
        with self._begin("BEGIN") as tx:
            yield tx

    @contextmanager
    def _begin(self, begin: str) -> Iterator[_SQLiteTransaction]:
        conn = self._connection()
        self._patiently(conn, begin)
        try:
            yield _SQLiteTransaction(conn)
            self._patiently(conn, "COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if _is_busy(exc):
                raise self._busy() from exc
            raise

    def _patiently(self, conn: sqlite3.Connection, sql: str) -> None:
        """Execute ``sql``, retrying while the database is locked, for at most ``timeout``.

        SQLite's busy handler already waits for most locks; this also covers
        the ones it returns at once (a WAL reader racing a recovery, a COMMIT
        waiting for readers).

        Raises:
            DatabaseBusy: still locked when ``timeout`` ran out.
        """
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


class _SQLiteTransaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        # Bookkeeping read along with an operation: nobody else writes it inside our transaction.
        self._bookkept: dict[str, tuple[int | None, int | None]] = {}

    def current(self) -> Operation | None:
        row = self.conn.execute(
            f"SELECT doc FROM operations {_OPERATION_ORDER['current']} LIMIT 1",  # noqa: S608
        ).fetchone()
        return _operation(row[0]) if row else None

    def get(self, operation_id: str) -> Operation | None:
        row = self.conn.execute(
            "SELECT doc, checkpoint, heartbeat FROM operations WHERE id = ?", (operation_id,),
        ).fetchone()
        if row is None:
            return None
        self._bookkept[operation_id] = row[1], row[2]
        return _operation(row[0])

    def latest(self, limit: int) -> list[Operation]:
        rows = self.conn.execute(
            f"SELECT doc FROM operations {_OPERATION_ORDER['latest']} LIMIT ?",  # noqa: S608
            (limit,),
        )
        return [_operation(doc) for (doc,) in rows]

    def valid_operations(self) -> list[Operation]:
        rows = self.conn.execute("SELECT doc FROM operations WHERE valid ORDER BY created")
        return [_operation(doc) for (doc,) in rows]

    def insert(self, operation: Operation) -> None:
        self.conn.execute(
            "INSERT INTO operations (id, ts, updated_at, valid, doc) VALUES (?, ?, ?, ?, ?)",
            (operation.id, epoch_millis(operation.ts), *self._columns(operation)),
        )

    def update(self, operation: Operation) -> None:
        columns, ts = self._columns(operation), epoch_millis(operation.ts)
        # ts almost never changes; leaving it out of SET spares its index a rewrite per batch.
        cursor = self.conn.execute(
            "UPDATE operations SET updated_at = ?, valid = ?, doc = ? WHERE id = ? AND ts = ?",
            (*columns, operation.id, ts),
        )
        if cursor.rowcount != 1:
            cursor = self.conn.execute(
                "UPDATE operations SET updated_at = ?, valid = ?, doc = ?, ts = ? WHERE id = ?",
                (*columns, ts, operation.id),
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
        self.conn.executemany(
            "INSERT INTO staged (operation, id, data, data_type) VALUES (?, ?, ?, ?)",
            ((operation_id, *record) for record in records),
        )

    def staged(self, operation_id: str, *, after: int | None, limit: int) -> list[StagedRecord]:
        rows = self.conn.execute(
            "SELECT position, id, data, data_type, errors FROM staged"
            " WHERE operation = ? AND position > ? ORDER BY position LIMIT ?",
            (operation_id, after if after is not None else -1, limit),
        )
        return staged_records(rows)

    def record_errors(
        self, operation_id: str, errors: Sequence[tuple[int, Mapping[str, Any]]],
    ) -> None:
        if not errors:
            return
        self.conn.executemany(
            "UPDATE staged SET errors = json_insert(coalesce(errors, '[]'), '$[#]', json(?))"
            " WHERE position = ? AND operation = ?",
            [(json.dumps(error), position, operation_id) for position, error in errors],
        )

    def remove_succeeded(self, operation_id: str) -> int:
        cursor = self.conn.execute(
            "DELETE FROM staged WHERE operation = ? AND errors IS NULL", (operation_id,),
        )
        return cursor.rowcount

    def unstage_all(self) -> int:
        return self.conn.execute("DELETE FROM staged").rowcount

    def checkpoint(self, operation_id: str) -> int | None:
        return self._bookkeeping(operation_id)[0]

    def heartbeat(self, operation_id: str) -> dt.datetime | None:
        millis = self._bookkeeping(operation_id)[1]
        return from_epoch_millis(millis) if millis is not None else None

    def _bookkeeping(self, operation_id: str) -> tuple[int | None, int | None]:
        if operation_id in self._bookkept:
            return self._bookkept[operation_id]
        row = self.conn.execute(
            "SELECT checkpoint, heartbeat FROM operations WHERE id = ?", (operation_id,),
        ).fetchone()
        if row is None:
            msg = f"no operation {operation_id!r}"
            raise KeyError(msg)
        return row[0], row[1]

    def set_checkpoint(
        self, operation_id: str, position: int | None, heartbeat: dt.datetime,
    ) -> None:
        cursor = self.conn.execute(
            "UPDATE operations SET checkpoint = ?, heartbeat = ? WHERE id = ?",
            (position, epoch_millis(heartbeat), operation_id),
        )
        if cursor.rowcount != 1:
            msg = f"no operation {operation_id!r}"
            raise KeyError(msg)
        self._bookkept[operation_id] = position, epoch_millis(heartbeat)
