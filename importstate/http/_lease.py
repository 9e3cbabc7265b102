"""Which server runs an import: a lease in the database file, renewed while the server lives.

Two servers on one database would otherwise both believe a running import
is theirs: a server started beside another would resume it, and the first
would stop at its next batch. So a server takes a lease on every import it
runs, renews it every few seconds, and marks it released when it stops
cleanly (the run held at a batch boundary). Another server takes the import
over only once the lease is released, or has not been renewed for
``takeover_after`` seconds (its server was killed; at once when that server
ran on this machine and its process is gone). An import no server ever
leased (``importstate run`` in a terminal) is taken over only once its own
heartbeat is that old.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Final

from importstate._files import create_private

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS serve_leases (
    operation TEXT PRIMARY KEY,
    server    TEXT NOT NULL,
    pid       INTEGER NOT NULL,
    host      TEXT NOT NULL,
    renewed   INTEGER NOT NULL,
    released  INTEGER NOT NULL DEFAULT 0
)
"""


class RunLease:
    """A server's leases on the imports it runs, in the SQLite file at ``path``.

    Args:
        path: the database file (``importstate serve``'s ``--db``).
        takeover_after: seconds without a renewal after which a lease is void.
        timeout: seconds to wait for another writer's lock.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, takeover_after: float, timeout: float = 30.0,
    ) -> None:
        self.path = os.fspath(path)
        self.takeover_after = takeover_after
        self.server = secrets.token_hex(8)
        self._host = socket.gethostname()
        create_private(self.path)
        self._conn = sqlite3.connect(
            self.path, timeout=timeout, isolation_level=None, check_same_thread=False,
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(_SCHEMA)
        self._lock = threading.Lock()

    def claim(self, operation_id: str, *, unowned: bool) -> str | None:
        """Lease ``operation_id`` to this server; ``None`` once it is ours, else who holds it.

        ``unowned``: take it if no server holds a lease on it at all (the
        caller checked that whatever ran it stopped sending heartbeats).
        """
        now = _millis()
        with self._writing() as conn:
            row = conn.execute(
                "SELECT server, pid, host, renewed, released FROM serve_leases"
                " WHERE operation = ?", (operation_id,),
            ).fetchone()
            if row is None and not unowned:
                return "a process outside any server (its heartbeat is recent)"
            if row is not None:
                server, pid, host, renewed, released = row
                age = (now - renewed) / 1000
                alive = age < self.takeover_after and not self._gone(host, pid)
                if server != self.server and not released and alive:
                    return f"another server (pid {pid} on {host}, lease renewed {age:.1f} s ago)"
            conn.execute(
                "INSERT INTO serve_leases (operation, server, pid, host, renewed, released)"
                " VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (operation) DO UPDATE SET"
                " server = excluded.server, pid = excluded.pid, host = excluded.host,"
                " renewed = excluded.renewed, released = 0",
                (operation_id, self.server, os.getpid(), self._host, now),
            )
        return None

    def _gone(self, host: str, pid: int) -> bool:
        """Whether the server of a lease was on this machine and its process is no more."""
        if host != self._host:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # a process of another user has that id
        return False

    def renew(self) -> None:
        """Renew every lease this server holds."""
        with self._writing() as conn:
            conn.execute(
                "UPDATE serve_leases SET renewed = ? WHERE server = ? AND NOT released",
                (_millis(), self.server),
            )

    def release(self, operation_id: str) -> None:
        """Let the next server take the import over at once: this one stopped cleanly."""
        with self._writing() as conn:
            conn.execute(
                "UPDATE serve_leases SET released = 1 WHERE operation = ? AND server = ?",
                (operation_id, self.server),
            )

    def drop(self, operation_id: str) -> None:
        """Forget the lease: the run ended, or never started."""
        with self._writing() as conn:
            conn.execute(
                "DELETE FROM serve_leases WHERE operation = ? AND server = ?",
                (operation_id, self.server),
            )

    def close(self) -> None:
        """Close the connection; the lease is not used afterwards."""
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")


def _millis() -> int:
    return time.time_ns() // 1_000_000
