"""A store on a PostgreSQL server: one import shared by many processes and machines.

Every writer takes one transaction-scoped advisory lock of the store's schema
first, so writers run one at a time across all processes, as on SQLite with
``BEGIN IMMEDIATE``; each of their statements then reads the latest committed
data (READ COMMITTED), so no read-modify-write loses an update. Readers take
no lock and see one snapshot (REPEATABLE READ, READ ONLY).

Needs the ``postgres`` extra: ``pip install 'importstate[postgres]'``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any, Final, LiteralString

from importstate._extras import needs

with needs("postgres", "PostgresStore"):
    import psycopg
    from psycopg import errors, sql
    from psycopg_pool import ConnectionPool, PoolTimeout

from importstate._time import epoch_millis, from_epoch_millis
from importstate.errors import DatabaseBusy, SchemaVersionError
from importstate.history import HistoryEntry
from importstate.model import Operation
from importstate.stores._protocol import Batch, NewRecord, Pending, StagedRecord
from importstate.stores._rows import (
    history_entry,
    history_row,
    pending_records,
    staged_records,
)

__all__ = [
    "SCHEMA_VERSION",
    "PostgresStore",
]

SCHEMA_VERSION: Final = 3

# Statements run with the store's schema first on the search path; times are epoch milliseconds.
_TABLES: Final[tuple[LiteralString, ...]] = (
    """CREATE TABLE operations (
        created    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id         text NOT NULL UNIQUE,
        ts         bigint NOT NULL,
        updated_at bigint NOT NULL,
        valid      boolean NOT NULL,
        doc        text NOT NULL,
        checkpoint bigint,
        heartbeat  bigint
    ) WITH (fillfactor = 50)""",
    # Every batch rewrites its operation's row: with no index on updated_at, and room
    # left on the page, that is a HOT update (no index entries). latest() sorts the
    # operations instead, which are few.
    "CREATE INDEX operations_by_ts ON operations (ts, created)",
    """CREATE TABLE staged (
        position  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        operation text NOT NULL,
        id        text NOT NULL,
        data      text NOT NULL,
        data_type text NOT NULL,
        errors    text,
        selected  boolean NOT NULL DEFAULT true
    )""",
    "CREATE INDEX staged_by_operation ON staged (operation, position)",
    "CREATE TABLE schema_version (version integer NOT NULL)",
    # A parallel run's batches: the records of data_type at positions first..last of the
    # operation's staging.
    """CREATE TABLE batches (
        operation      text NOT NULL,
        number         integer NOT NULL,
        first_position bigint NOT NULL,
        last_position  bigint NOT NULL,
        done           boolean NOT NULL DEFAULT false,
        holder         text,
        lease_until    timestamptz,
        data_type      text NOT NULL DEFAULT 'user',
        PRIMARY KEY (operation, number)
    )""",
    # Each stored change of an operation's status, in the order written (version 3).
    """CREATE TABLE history (
        position  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        operation text NOT NULL,
        before    text,
        after     text NOT NULL,
        event     text NOT NULL,
        at        bigint NOT NULL,
        actor     text NOT NULL
    )""",
    "CREATE INDEX history_by_operation ON history (operation, position)",
)
# Version 1 → 2: records of three types, and a run's selection (constant defaults: no rewrite).
_UPGRADE_FROM_1: Final[tuple[LiteralString, ...]] = (
    "ALTER TABLE staged ADD COLUMN selected boolean NOT NULL DEFAULT true",
    "ALTER TABLE batches ADD COLUMN data_type text NOT NULL DEFAULT 'user'",
    "UPDATE schema_version SET version = 2",
)
# Version 2 → 3: the history table (the two statements of _TABLES that make it).
_UPGRADE_FROM_2: Final[tuple[LiteralString, ...]] = (
    *_TABLES[-2:],
    "UPDATE schema_version SET version = 3",
)

#: Statements and their parameters.
_Statements = tuple[tuple[LiteralString, Sequence[Any]], ...]

_SET_DOCUMENT: Final = (
    "UPDATE operations SET updated_at = %s, valid = %s, doc = %s, ts = %s WHERE id = %s"
)
_SET_BOOKKEEPING: Final = "UPDATE operations SET checkpoint = %s, heartbeat = %s WHERE id = %s"
_SET_BOTH: Final = (
    "UPDATE operations SET updated_at = %s, valid = %s, doc = %s, ts = %s,"
    " checkpoint = %s, heartbeat = %s WHERE id = %s"
)
_APPEND_HISTORY: Final = (
    "INSERT INTO history (operation, before, after, event, at, actor)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
)
# errors is JSON array text: appending as text keeps it exactly as written.
_APPEND_ERROR: Final = (
    "UPDATE staged SET errors = CASE WHEN errors IS NULL THEN '[' || %s || ']'"
    " ELSE left(errors, -1) || ',' || %s || ']' END WHERE position = %s AND operation = %s"
)


# Numbering rows in staging order cuts them into batches in one statement; a type's
# batches are numbered after the batches cut before.
_CUT: Final = """INSERT INTO batches (operation, number, first_position, last_position, data_type)
    SELECT %s, number + (SELECT count(*) FROM batches WHERE operation = %s),
        min(position), max(position), %s FROM (
        SELECT position, (row_number() OVER (ORDER BY position) - 1) / %s AS number
        FROM staged WHERE operation = %s AND data_type = %s AND selected
    ) AS numbered GROUP BY number"""
# The last batch is claimable only once every other is done: it commits last.
# The claimed batch comes back with its staged records: one round trip.
_CLAIM: Final = """WITH claimed AS (UPDATE batches
    SET holder = %(holder)s, lease_until = clock_timestamp() + %(lease)s * interval '1 second'
    WHERE (operation, number) = (
        SELECT operation, number FROM batches AS b
        WHERE operation = %(operation)s AND NOT done
          AND (holder IS NULL OR lease_until < clock_timestamp())
          AND (number < (SELECT max(number) FROM batches WHERE operation = %(operation)s)
               OR NOT EXISTS (SELECT FROM batches AS o WHERE o.operation = %(operation)s
                              AND NOT o.done AND o.number <> b.number))
        ORDER BY number LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING number, first_position, last_position, data_type)
    SELECT number, first_position, last_position, position, id, data, staged.data_type, errors
    FROM claimed LEFT JOIN staged ON operation = %(operation)s
        AND position BETWEEN first_position AND last_position
        AND staged.data_type = claimed.data_type AND selected
    ORDER BY position"""
# A lease lost in a server crash only means its batch is imported again (a finishing
# commit checks its holder), so leases are written without waiting for the disk.
_UNSYNCED: Final = "BEGIN; SET LOCAL synchronous_commit = off; {}; COMMIT"
# Writers hold the schema's lock, so no other batch is marked done meanwhile; the count,
# taken before this update, still has this batch among those not done.
_FINISH_BATCH: Final = """UPDATE batches SET done = true, holder = NULL, lease_until = NULL
    WHERE operation = %s AND number = %s AND holder = %s AND NOT done
    RETURNING (SELECT count(*) FROM batches WHERE operation = %s AND NOT done) - 1"""
_RENEW: Final = """UPDATE batches SET lease_until = clock_timestamp() + %s * interval '1 second'
    WHERE operation = %s AND number = %s AND holder = %s AND NOT done"""


def _lock_key(schema: str) -> int:
    """The advisory lock key of a schema: stable across processes, machines and versions."""
    digest = hashlib.blake2b(f"importstate:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresStore:
    """Operations and staging in one schema of a PostgreSQL database (psycopg 3, pooled).

    The tables are created on first use, also when several processes open a
    new schema at once. Any number of processes and machines may share one
    schema; the store is safe to share between threads. A forked child
    process opens connections of its own on first use.

    Args:
        dsn: a libpq connection string or URI.
        schema: the schema holding importstate's tables (created if missing);
            separate schemas are separate stores.
        max_connections: the most connections this store holds open at once.
        timeout: seconds a writer waits for another writer, and a call for a
            free connection; then it raises :class:`~importstate.DatabaseBusy`.

    Raises:
        psycopg.OperationalError: the server cannot be reached.
        SchemaVersionError: the schema was written by a newer importstate.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "importstate",
        max_connections: int = 10,
        timeout: float = 30.0,
    ) -> None:
        self.dsn = dsn
        self.schema = schema
        self._max_connections = max_connections
        self._timeout = timeout
        self._begin_writing: _Statements = (
            ("BEGIN", ()), ("SELECT pg_advisory_xact_lock(%s)", (_lock_key(schema),)),
        )
        self._begin_reading: _Statements = (
            ("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", ()),
        )
        # Staging is read in position order, a page at a time. Until the server has
        # analysed a freshly staged table it would rather fetch and sort all of it per
        # page; the index on (operation, position) already gives the order.
        self._setup = sql.SQL(
            "SET search_path TO {}; SET lock_timeout = {}; SET enable_bitmapscan = off",
        ).format(sql.Identifier(schema), sql.Literal(f"{round(timeout * 1000)}ms"))
        self._guard = threading.Lock()
        # A direct connection first: a wrong DSN fails here at once, not after the pool's timeout.
        with psycopg.connect(dsn, autocommit=True) as conn:
            self._create_schema(conn)
        self._pid = os.getpid()
        self._pool = self._open_pool()

    def _open_pool(self) -> ConnectionPool:
        pool = ConnectionPool(
            self.dsn,
            min_size=1,
            max_size=self._max_connections,
            timeout=self._timeout,
            kwargs={"autocommit": True},
            configure=self._configure,
            open=False,
            name=f"importstate:{self.schema}",
        )
        # Waiting for the first connection puts its setup here, not in the first call.
        pool.open(wait=True, timeout=self._timeout)
        return pool

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(self._setup)

    def _create_schema(self, conn: psycopg.Connection[Any]) -> None:
        # Opening an existing schema takes no lock: readers and writers go on undisturbed.
        if self._stored_version(conn) == SCHEMA_VERSION:
            return
        with self._in_transaction(conn, self._begin_writing):
            version = self._stored_version(conn)
            if version == SCHEMA_VERSION:  # another process made it while we waited
                return
            if version in {1, 2}:
                conn.execute(self._setup)
                upgrades = (_UPGRADE_FROM_1 if version == 1 else ()) + _UPGRADE_FROM_2
                for statement in upgrades:
                    conn.execute(statement)
                return
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                sql.Identifier(self.schema)))
            conn.execute(self._setup)
            for statement in _TABLES:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version VALUES (%s)", (SCHEMA_VERSION,))

    def _stored_version(self, conn: psycopg.Connection[Any]) -> int | None:
        """The schema's version, ``None`` if it has no tables yet.

        Raises:
            SchemaVersionError: the version is newer than this code's.
        """
        # The catalog through a query, not to_regclass: a cached "no such table" would
        # outlive another process's commit of the schema while we waited for the lock.
        row = conn.execute(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_tables"
            " WHERE schemaname = %s AND tablename = 'schema_version')",
            (self.schema,),
        ).fetchone()
        if row is None or not row[0]:
            return None
        found = conn.execute(sql.SQL("SELECT max(version) FROM {}").format(
            sql.Identifier(self.schema, "schema_version"))).fetchone()
        version = found[0] if found else None
        if version is not None and version > SCHEMA_VERSION:
            msg = (
                f"PostgreSQL schema {self.schema!r}: schema version {version} is newer than "
                f"this importstate supports ({SCHEMA_VERSION}); upgrade importstate"
            )
            raise SchemaVersionError(msg)
        return int(version) if version is not None else None

    #: Batches the run loop reads per query: each query is a round trip to the server.
    read_ahead = 10

    @contextmanager
    def transaction(self) -> Iterator[_PostgresTransaction]:
        """A read-write transaction; its first statement takes the schema's advisory lock.

        Raises:
            DatabaseBusy: another writer held the lock, or other calls every
                connection, for longer than ``timeout``.
        """
        try:
            with self._transaction(self._begin_writing) as tx:
                yield tx
        except errors.LockNotAvailable as exc:
            msg = (f"PostgreSQL schema {self.schema!r} is busy: another writer kept it "
                   f"locked for more than {self._timeout:g} s; try again")
            raise DatabaseBusy(msg) from exc

    @contextmanager
    def reading(self) -> Iterator[_PostgresTransaction]:
        """A read-only snapshot; does not wait for writers."""
        with self._transaction(self._begin_reading) as tx:
            yield tx

    @contextmanager
    def _transaction(self, begin: _Statements) -> Iterator[_PostgresTransaction]:
        with self._connection() as conn:
            tx = _PostgresTransaction(conn, begin)
            try:
                yield tx
                tx.commit()
            except BaseException:
                tx.roll_back()
                raise

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        if self._pid != os.getpid():
            # A pool's connections and threads belong to the process that opened it: a
            # forked child leaves them to its parent (psycopg never closes them from here).
            with self._guard:
                if self._pid != os.getpid():
                    self._pool, self._pid = self._open_pool(), os.getpid()
        try:
            conn = self._pool.getconn()
        except PoolTimeout as exc:
            msg = (f"PostgreSQL store {self.schema!r} is busy: all {self._max_connections} "
                   f"connections stayed in use for more than {self._timeout:g} s; try again")
            raise DatabaseBusy(msg) from exc
        try:
            yield conn
        finally:
            self._pool.putconn(conn)

    @staticmethod
    @contextmanager
    def _in_transaction(conn: psycopg.Connection[Any], begin: _Statements) -> Iterator[None]:
        try:
            for statement, params in begin:
                conn.execute(statement, params)
            yield
        except BaseException:
            conn.rollback()
            raise
        conn.commit()

    def claim_batch(
        self, operation_id: str, holder: str, lease_seconds: float,
    ) -> tuple[Batch, list[StagedRecord]] | None:
        """Lease the next claimable batch to ``holder``; it and its records (``BatchClaims``).

        One round trip, without the writers' lock: rows another claimer or a
        committing worker has locked are skipped. Leases run on the server's
        clock, so the workers' clocks need not agree.
        """
        with self._connection() as conn:
            cursor = psycopg.ClientCursor(conn).execute(_UNSYNCED.format(_CLAIM), {
                "operation": operation_id, "holder": holder, "lease": lease_seconds,
            })
            while cursor.description is None and cursor.nextset():  # to the claim's rows
                pass
            rows = cursor.fetchall()
        if not rows:
            return None
        number, first, last = rows[0][:3]
        batch = Batch(operation_id, number, first, last, holder)
        return batch, staged_records(row[3:] for row in rows if row[3] is not None)

    def renew_leases(self, batches: Sequence[Batch], lease_seconds: float) -> None:
        """Extend the leases its holders still have on ``batches`` (``BatchClaims``)."""
        if not batches:
            return
        with self._connection() as conn, conn.transaction():
            conn.execute("SET LOCAL synchronous_commit = off")
            conn.cursor().executemany(_RENEW, [
                (lease_seconds, batch.operation_id, batch.number, batch.holder)
                for batch in batches
            ])

    def close(self) -> None:
        """Close this store's connections; the store is not used afterwards."""
        if self._pid == os.getpid():
            self._pool.close()


def _operation(doc: str) -> Operation:
    return Operation.from_wire(json.loads(doc))


def _unknown(operation_id: str) -> KeyError:
    return KeyError(f"no operation {operation_id!r}")


class _PostgresTransaction:
    """One transaction on one connection, in as few round trips as its reads allow.

    Statements whose result the caller does not wait for (the transaction's
    start, writes to an operation read in this transaction) are deferred and
    sent with the next statement that returns rows, or with ``COMMIT``, as
    one multi-statement query (parameters bound on the client): a run's batch
    commits in two round trips. Deferred writes to one operation become one
    ``UPDATE``. An error of a deferred statement is raised by that later
    call, and rolls the whole transaction back.
    """

    def __init__(self, conn: psycopg.Connection[Any], begin: _Statements) -> None:
        self.conn = conn
        self._cursor = psycopg.ClientCursor(conn)
        self._pending: list[tuple[LiteralString, Sequence[Any]]] = list(begin)
        self._starts = len(self._pending)
        self._begun = False
        #: Deferred writes per operation id: the document's columns, the bookkeeping's.
        self._rows: dict[str, list[tuple[Any, ...] | None]] = {}
        #: checkpoint and heartbeat of every operation read or written here: the
        #: transaction's snapshot, or its lock, keeps them true until it ends.
        self._bookkeeping_of: dict[str, tuple[int | None, int | None]] = {}

    def _execute(
        self, query: LiteralString, params: Sequence[Any] = (),
    ) -> psycopg.ClientCursor[Any]:
        """Run ``query`` after every deferred statement; its cursor, on its results."""
        statements = self._pending + self._row_updates()
        if not statements:
            return self._cursor.execute(query, params)
        self._pending, self._rows, self._begun = [], {}, True
        statements.append((query, params))
        cursor = self._cursor.execute(
            "; ".join(statement for statement, _ in statements),
            [value for _, values in statements for value in values],
        )
        while cursor.nextset():  # the results of the last statement
            pass
        return cursor

    def _row_updates(self) -> list[tuple[LiteralString, Sequence[Any]]]:
        updates: list[tuple[LiteralString, Sequence[Any]]] = []
        for operation_id, (document, bookkeeping) in self._rows.items():
            if document and bookkeeping:
                updates.append((_SET_BOTH, (*document, *bookkeeping, operation_id)))
            elif document:
                updates.append((_SET_DOCUMENT, (*document, operation_id)))
            elif bookkeeping:
                updates.append((_SET_BOOKKEEPING, (*bookkeeping, operation_id)))
        return updates

    def commit(self) -> None:
        # A transaction that read nothing and wrote nothing has nothing to send.
        if self._begun or len(self._pending) > self._starts or self._rows:
            self._execute("COMMIT")

    def roll_back(self) -> None:
        self._pending, self._rows = [], {}
        if self._begun:
            # A broken connection cannot roll back: the pool discards it, and the
            # server rolls back when it goes.
            with suppress(psycopg.Error):
                self.conn.rollback()

    def _write(self, operation_id: str, column: int, values: tuple[Any, ...]) -> None:
        """Write the document's columns (0) or the bookkeeping (1) of one operation.

        Deferred when this transaction has seen the row: only ``delete`` (which
        forgets it) removes a row.

        Raises:
            KeyError: no operation has that id.
        """
        if operation_id in self._bookkeeping_of:
            self._rows.setdefault(operation_id, [None, None])[column] = values
            return
        query = _SET_BOOKKEEPING if column else _SET_DOCUMENT
        if self._execute(query, (*values, operation_id)).rowcount != 1:
            raise _unknown(operation_id)

    def _operations(self, rows: psycopg.Cursor[Any]) -> list[Operation]:
        """The operations of rows ``doc, id, checkpoint, heartbeat``, remembering bookkeeping."""
        operations = []
        for doc, operation_id, checkpoint, heartbeat in rows:
            self._bookkeeping_of[operation_id] = (checkpoint, heartbeat)
            operations.append(_operation(doc))
        return operations

    def current(self) -> Operation | None:
        operations = self._operations(self._execute(
            "SELECT doc, id, checkpoint, heartbeat FROM operations"
            " ORDER BY ts DESC, created DESC LIMIT 1",
        ))
        return operations[0] if operations else None

    def get(self, operation_id: str) -> Operation | None:
        operations = self._operations(self._execute(
            "SELECT doc, id, checkpoint, heartbeat FROM operations WHERE id = %s", (operation_id,),
        ))
        return operations[0] if operations else None

    def latest(self, limit: int) -> list[Operation]:
        return self._operations(self._execute(
            "SELECT doc, id, checkpoint, heartbeat FROM operations"
            " ORDER BY updated_at DESC, ts DESC, created DESC LIMIT %s",
            (limit,),
        ))

    def valid_operations(self) -> list[Operation]:
        return self._operations(self._execute(
            "SELECT doc, id, checkpoint, heartbeat FROM operations WHERE valid ORDER BY created",
        ))

    def insert(self, operation: Operation) -> None:
        self._pending.append((
            "INSERT INTO operations (id, ts, updated_at, valid, doc) VALUES (%s, %s, %s, %s, %s)",
            (operation.id, epoch_millis(operation.ts), *_columns(operation)),
        ))
        self._bookkeeping_of[operation.id] = (None, None)

    def update(self, operation: Operation) -> None:
        self._write(operation.id, 0, (*_columns(operation), epoch_millis(operation.ts)))

    def stage(self, operation_id: str, records: Sequence[NewRecord]) -> None:
        if not records:
            return
        self._execute("SELECT")  # a COPY goes alone: first send what waits
        # COPY appends in the given order, and the identity column numbers rows as they come.
        with self.conn.cursor().copy(
            "COPY staged (operation, id, data, data_type) FROM STDIN",
        ) as copy:
            for record in records:
                copy.write_row((operation_id, *record))

    def staged(self, operation_id: str, *, after: int | None, limit: int) -> list[StagedRecord]:
        rows = self._execute(
            "SELECT position, id, data, data_type, errors FROM staged"
            " WHERE operation = %s AND position > %s ORDER BY position LIMIT %s",
            (operation_id, after if after is not None else -1, limit),
        )
        return staged_records(rows)

    def pending(
        self, operation_id: str, data_type: str, *, after: int | None, limit: int,
    ) -> list[Pending]:
        rows = self._execute(
            "SELECT position, data FROM staged WHERE operation = %s AND position > %s"
            " AND data_type = %s AND selected ORDER BY position LIMIT %s",
            (operation_id, after if after is not None else -1, data_type, limit),
        )
        return pending_records(rows)

    def deselect(self, operation_id: str, positions: Sequence[int]) -> None:
        if positions:
            self._pending.append((
                "UPDATE staged SET selected = false WHERE operation = %s AND position = ANY(%s)",
                (operation_id, list(positions)),
            ))

    def record_errors(
        self, operation_id: str, errors: Sequence[tuple[int, Mapping[str, Any]]],
    ) -> None:
        if not errors:
            return
        self._pending.extend(
            (_APPEND_ERROR, (text, text, position, operation_id))
            for position, error in errors
            for text in [json.dumps(error)]
        )

    def remove_succeeded(self, operation_id: str) -> int:
        return self._execute(
            "DELETE FROM staged WHERE operation = %s AND errors IS NULL", (operation_id,),
        ).rowcount

    def unstage_all(self) -> int:
        self._pending.append(("DELETE FROM batches", ()))
        return self._execute("DELETE FROM staged").rowcount

    def delete(self, operation_id: str) -> bool:
        self._execute("DELETE FROM batches WHERE operation = %s", (operation_id,))
        self._execute("DELETE FROM staged WHERE operation = %s", (operation_id,))
        self._execute("DELETE FROM history WHERE operation = %s", (operation_id,))
        deleted = self._execute("DELETE FROM operations WHERE id = %s", (operation_id,)).rowcount
        self._bookkeeping_of.pop(operation_id, None)  # its writes are no longer deferred
        return deleted > 0

    def append_history(self, entries: Sequence[HistoryEntry]) -> None:
        self._pending.extend((_APPEND_HISTORY, history_row(entry)) for entry in entries)

    def history(self, operation_id: str) -> list[HistoryEntry]:
        rows = self._execute(
            "SELECT operation, before, after, event, at, actor FROM history"
            " WHERE operation = %s ORDER BY position", (operation_id,),
        ).fetchall()
        return [history_entry(row) for row in rows]

    def cut_batches(self, operation_id: str, data_type: str, size: int) -> int:
        return self._execute(_CUT, (
            operation_id, operation_id, data_type, size, operation_id, data_type,
        )).rowcount

    def batch_count(self, operation_id: str) -> int:
        row = self._execute(
            "SELECT count(*) FROM batches WHERE operation = %s", (operation_id,),
        ).fetchone()
        return int(row[0]) if row else 0

    def finish_batch(self, batch: Batch) -> int | None:
        row = self._execute(_FINISH_BATCH, (
            batch.operation_id, batch.number, batch.holder, batch.operation_id,
        )).fetchone()
        return int(row[0]) if row else None

    def checkpoint(self, operation_id: str) -> int | None:
        return self._bookkeeping(operation_id)[0]

    def heartbeat(self, operation_id: str) -> dt.datetime | None:
        millis = self._bookkeeping(operation_id)[1]
        return from_epoch_millis(millis) if millis is not None else None

    def _bookkeeping(self, operation_id: str) -> tuple[int | None, int | None]:
        if operation_id not in self._bookkeeping_of:
            row = self._execute(
                "SELECT checkpoint, heartbeat FROM operations WHERE id = %s", (operation_id,),
            ).fetchone()
            if row is None:
                raise _unknown(operation_id)
            self._bookkeeping_of[operation_id] = (row[0], row[1])
        return self._bookkeeping_of[operation_id]

    def set_checkpoint(
        self, operation_id: str, position: int | None, heartbeat: dt.datetime,
    ) -> None:
        millis = epoch_millis(heartbeat)
        self._write(operation_id, 1, (position, millis))
        self._bookkeeping_of[operation_id] = (position, millis)


def _columns(operation: Operation) -> tuple[int, bool, str]:
    doc = json.dumps(operation.to_wire(), separators=(",", ":"))
    return epoch_millis(operation.updated_at), operation.valid, doc
