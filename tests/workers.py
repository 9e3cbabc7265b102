"""Process-level tools for the reliability tests.

- :class:`KeyedImporter`: an idempotent batch importer keyed by the user's
  first ``importIds`` entry. Its own record (a SQLite file of its own, as a
  target system would have) says which keys it imported and how often each
  key reached it, so a test can check "imported exactly once" across crashes.
- Run as a script (``python tests/workers.py COMMAND ...``) this module is a
  worker process a test can SIGKILL: ``work`` runs or resumes the current
  operation, ``stage`` adds users. Either can also kill itself at an exact,
  seeded point, so a failing kill point can be replayed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# Run as a script, the checkout's package comes first (tests run against it).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from importstate import ImportService, SQLiteStore, State
from importstate.users_table import UsersTableImporter

#: Users whose number is a multiple of this fail in :class:`KeyedImporter`.
FAIL_EVERY = 97
#: The script's path, for ``subprocess`` calls.
SCRIPT = str(Path(__file__).resolve())


def user(number: int) -> dict[str, Any]:
    """Import user ``number``: its key is ``key-<number>``; it carries a password."""
    return {
        "username": f"user{number}",
        "emails": [f"user{number}@example.com"],
        "importIds": [f"key-{number:06d}", f"alt-{number}"],
        "password": f"pw-{number}-hunter2",
    }


def users(count: int, start: int = 0) -> list[dict[str, Any]]:
    """Users ``start`` .. ``start + count - 1``."""
    return [user(number) for number in range(start, start + count)]


def channels(count: int, start: int) -> list[dict[str, Any]]:
    """Channels keyed ``key-<start>`` ..., so that :class:`KeyedImporter` takes them too."""
    return [{"importIds": [f"key-{number:06d}"], "name": f"channel-{number}"}
            for number in range(start, start + count)]


def messages(count: int, start: int, room: str) -> list[dict[str, Any]]:
    """Messages keyed ``key-<start>`` ..., in the channel ``room``, by user 1."""
    return [{"importIds": [f"key-{number:06d}"], "rid": room, "u": {"_id": "key-000001"},
             "msg": f"message {number}", "ts": number}
            for number in range(start, start + count)]


def fails(key: str) -> bool:
    """Whether :class:`KeyedImporter` rejects the user with this key (every run alike)."""
    return int(key.removeprefix("key-")) % FAIL_EVERY == 0


class Rejected(ValueError):
    """The error :class:`KeyedImporter` gives a user it rejects."""


def die() -> None:
    """End this process the hard way: SIGKILL, no cleanup, no flush."""
    os.kill(os.getpid(), signal.SIGKILL)


class KeyedImporter:
    """An idempotent importer with its own durable record, keyed by ``importIds[0]``.

    A batch is imported in one transaction of the record: every key's
    arrival is counted, a key not yet imported is inserted (a key already
    there is skipped: that is the idempotence), and users :func:`fails`
    picks are rejected with a message that echoes the whole user.

    Args:
        record: the importer's own SQLite file.
        kill_at: ``(batch, user)`` — SIGKILL this process on reaching that
            user of that batch (both counted from 1 in this process).
        pause_at: on reaching this batch, touch ``<record>.paused`` and wait
            for ``<record>.go`` before importing it.
    """

    def __init__(
        self,
        record: str | os.PathLike[str],
        *,
        kill_at: tuple[int, int] | None = None,
        pause_at: int | None = None,
    ) -> None:
        self.path = Path(record)
        self.kill_at = kill_at
        self.pause_at = pause_at
        self.batches = 0
        self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.conn.executescript(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
            "CREATE TABLE IF NOT EXISTS reached (key TEXT PRIMARY KEY, times INTEGER NOT NULL);"
            "CREATE TABLE IF NOT EXISTS imported (key TEXT NOT NULL, pid INTEGER NOT NULL);"
            # Not UNIQUE: a duplicate import must stay visible to the tests.
            "CREATE INDEX IF NOT EXISTS imported_by_key ON imported (key);"
            "CREATE TABLE IF NOT EXISTS batches"
            " (seq INTEGER PRIMARY KEY, pid INTEGER, size INTEGER);",
        )

    def import_batch(self, batch: list[dict[str, Any]]) -> list[BaseException | None]:
        """Import ``batch`` once per key; return the rejections (channels and messages too)."""
        self.batches += 1
        if self.batches == self.pause_at:
            self._pause()
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO batches (pid, size) VALUES (?, ?)", (os.getpid(), len(batch)))
        outcomes: list[BaseException | None] = []
        for index, data in enumerate(batch, start=1):
            if self.kill_at == (self.batches, index):
                die()
            key = data["importIds"][0]
            conn.execute(
                "INSERT INTO reached VALUES (?, 1)"
                " ON CONFLICT (key) DO UPDATE SET times = times + 1",
                (key,),
            )
            if fails(key):
                outcomes.append(Rejected(f"rejected {data!r}"))
                continue
            if conn.execute("SELECT 1 FROM imported WHERE key = ?", (key,)).fetchone() is None:
                conn.execute("INSERT INTO imported VALUES (?, ?)", (key, os.getpid()))
            outcomes.append(None)
        conn.execute("COMMIT")
        return outcomes

    # Records of every type are keyed alike: one record serves them all.
    import_channels = import_batch
    import_messages = import_batch

    def _pause(self) -> None:
        Path(f"{self.path}.paused").touch()
        go = Path(f"{self.path}.go")
        deadline = time.monotonic() + 60
        while not go.exists():
            if time.monotonic() > deadline:
                msg = "nobody released the paused importer"
                raise TimeoutError(msg)
            time.sleep(0.005)


class KillingTarget(UsersTableImporter):
    """The built-in target, which SIGKILLs this process in its ``batch``-th batch (of any type).

    ``where`` is ``inside`` (before the batch's ``row``-th INSERT, its
    transaction open) or ``after`` (the batch committed to the target, not
    yet to the store).
    """

    def __init__(self, path: str | os.PathLike[str], batch: int, where: str, row: int) -> None:
        super().__init__(path)
        self.batch, self.where, self.row = batch, where, row
        self.batches = 0

    def import_batch(self, users: list[dict[str, Any]]) -> list[BaseException | None]:
        """Import users, unless this is the batch to die in."""
        return self._counted(super().import_batch, users)

    def import_channels(self, channels: list[dict[str, Any]]) -> list[BaseException | None]:
        """Import channels, unless this is the batch to die in."""
        return self._counted(super().import_channels, channels)

    def import_messages(self, messages: list[dict[str, Any]]) -> list[BaseException | None]:
        """Import messages, unless this is the batch to die in."""
        return self._counted(super().import_messages, messages)

    def _counted(
        self, work: Callable[[list[dict[str, Any]]], list[BaseException | None]],
        batch: list[dict[str, Any]],
    ) -> list[BaseException | None]:
        self.batches += 1
        if self.batches != self.batch:
            return work(batch)
        if self.where == "inside":
            inserts = 0

            def trace(statement: str) -> None:
                nonlocal inserts
                inserts += statement.startswith("INSERT")
                if inserts == self.row:
                    die()

            self._conn.set_trace_callback(trace)
        outcomes = work(batch)
        die()
        return outcomes


def record_of(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a :class:`KeyedImporter` recorded: ``reached`` and ``imported`` per key, ``batches``."""
    conn = sqlite3.connect(path)
    try:
        reached = dict(conn.execute("SELECT key, times FROM reached"))
        imported = dict(conn.execute("SELECT key, count(*) FROM imported GROUP BY key"))
        batches = conn.execute("SELECT count(*) FROM batches").fetchone()[0]
    finally:
        conn.close()
    return {"reached": reached, "imported": imported, "batches": batches}


def open_descriptors(path: str | os.PathLike[str]) -> int:
    """How many of this process's descriptors are open on ``path`` or its -wal and -shm files."""
    opened = 0
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            opened += str(fd.readlink()).startswith(str(path))
    return opened


def settled_descriptors(path: str | os.PathLike[str], at_most: int) -> int:
    """:func:`open_descriptors`, once it is ``at_most`` or 2 s have passed.

    A joined thread's locals (its connection) are released a moment after
    ``join`` returns.
    """
    deadline = time.monotonic() + 2
    while (opened := open_descriptors(path)) > at_most and time.monotonic() < deadline:
        time.sleep(0.01)
    return opened


def kill_before_statement(store: SQLiteStore, matches: Callable[[str], bool], nth: int) -> None:
    """SIGKILL this process just before the ``nth`` SQL statement ``matches`` accepts."""
    seen = 0

    def trace(statement: str) -> None:
        nonlocal seen
        if matches(statement):
            seen += 1
            if seen == nth:
                die()

    store._connection().set_trace_callback(trace)


def say(line: str) -> None:
    """Tell the parent test how far this worker got (one line on stdout, flushed)."""
    sys.stdout.write(f"{line}\n")
    sys.stdout.flush()


def _work(args: argparse.Namespace) -> int:
    store = SQLiteStore(args.db)
    importer: KeyedImporter | UsersTableImporter
    if args.target:  # the built-in target, in the store's file, as the command line has it
        importer = KillingTarget(args.db, args.kill_batch, args.target, args.kill_user)
    else:
        kill_at = (args.kill_batch, args.kill_user) if args.kill_batch else None
        importer = KeyedImporter(args.record, kill_at=kill_at, pause_at=args.pause_at)
    service = ImportService(store, {"api": importer})
    if args.kill_commit:
        kill_before_statement(store, lambda sql: sql == "COMMIT", args.kill_commit)
    operation = service.current_operation()
    say("started")
    if operation is not None and operation.state is State.IMPORTING:
        ended = service.resume()
    else:
        ended = service.run()
    say(ended.status.value)
    return 0


def _stages_a_row(statement: str) -> bool:
    return statement.startswith("INSERT INTO staged")


def _stage(args: argparse.Namespace) -> int:
    store = SQLiteStore(args.db)
    service = ImportService(store)
    batch = users(args.count, args.start)
    if args.kill_row:
        kill_before_statement(store, _stages_a_row, args.kill_row)
    if args.kill_commit:
        kill_before_statement(store, lambda sql: sql == "COMMIT", args.kill_commit)
    say("started")
    service.add_users(batch)
    say("staged")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The worker's command line."""
    parser = argparse.ArgumentParser(prog="workers")
    commands = parser.add_subparsers(dest="command", required=True)
    work = commands.add_parser("work", help="run the current operation, or resume it")
    work.add_argument("db")
    work.add_argument("record")
    work.add_argument("--kill-batch", type=int, default=0)
    work.add_argument("--kill-user", type=int, default=1)
    work.add_argument("--kill-commit", type=int, default=0)
    work.add_argument("--pause-at", type=int, default=None)
    work.add_argument("--target", choices=["inside", "after", "none"], default=None,
                      help="import into the built-in target, killed in or after a batch")
    work.set_defaults(handler=_work)
    stage = commands.add_parser("stage", help="add users to the current operation")
    stage.add_argument("db")
    stage.add_argument("count", type=int)
    stage.add_argument("--start", type=int, default=0)
    stage.add_argument("--kill-row", type=int, default=0)
    stage.add_argument("--kill-commit", type=int, default=0)
    stage.set_defaults(handler=_stage)
    args = parser.parse_args(argv)
    status: int = args.handler(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
