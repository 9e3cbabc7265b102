"""Waiting out another connection's lock on an SQLite file: the store's rule, shared.

The store's writes and the built-in target's (``UsersTableImporter``) wait
for a lock the same way and for as long, so a lock that a run's own commit
would wait out never fails the users of a batch.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Final

from importstate.errors import DatabaseBusy

#: SQLite's primary result codes for "another connection holds the lock".
_BUSY_CODES: Final = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
#: Longest pause between two attempts while the database is locked, in seconds.
_MAX_PAUSE: Final = 0.05


def is_busy(error: BaseException) -> bool:
    """Whether ``error`` is SQLite saying that another connection holds the lock."""
    return (
        isinstance(error, sqlite3.OperationalError)
        and error.sqlite_errorcode & 0xFF in _BUSY_CODES
    )


def busy(path: str, timeout: float) -> DatabaseBusy:
    """The error of a database still locked after ``timeout`` seconds."""
    return DatabaseBusy(
        f"{path}: database is busy: another process kept it locked for more than "
        f"{timeout:g} s; try again",
    )


def patiently(conn: sqlite3.Connection, sql: str, *, path: str, timeout: float) -> None:
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
        if not is_busy(exc):
            raise
        retry_while_busy(conn, sql, path=path, timeout=timeout, error=exc)


def retry_while_busy(
    conn: sqlite3.Connection, sql: str, *, path: str, timeout: float, error: BaseException,
) -> None:
    """:func:`patiently` after its first try failed with ``error``, a lock."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise busy(path, timeout) from error
        time.sleep(min(pause, left))
        pause = min(pause * 2, _MAX_PAUSE)
        try:
            conn.execute(sql)
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            error = exc
        else:
            return
