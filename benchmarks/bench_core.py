"""Core benchmarks: importstate against a raw sqlite3 loop doing the minimum durable work.

The baseline is the limit: a bare ``sqlite3`` loop on its own minimal schema
(an ``ops`` row of counters, a ``staging`` table of an integer key and JSON
text), WAL and ``synchronous=NORMAL``. Each figure is a ratio measured in one
run (best of several interleaved rounds), so a noisy machine moves both sides
alike. Targets, at 100,000 and 200,000 users:

- run() with a no-op importer: >= 0.85x the raw loop (pages of 50 by id,
  ``json.loads`` each, one counter + cursor + time update per page in its own
  transaction, the successes deleted at the end);
- add_users(), which also validates every user: >= 0.8x ``json.dumps`` of each
  user and one ``executemany`` in one transaction;
- peak memory growth of run() over 1,000,000 staged users: <= 100 MB;
- to_wire() of 100,000 loaded operations builds no machine, >= 0.5x attrs.asdict;
- run() of a whole import (20,000 users, 2,000 channels, 500,000 messages) with
  a no-op record importer: >= 0.8x the same raw loop over three staging tables,
  one per type, in the run's order and batch sizes (50, 50, 500); its peak
  memory growth flat: the same at half the messages, within 20 MiB.

Usage: python benchmarks/bench_core.py [--users N [N ...]] [--memory-users N] [--rounds N]
                                       [--messages N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import transitions

from importstate import ImportService, Operation, SQLiteStore

BATCH = 50
MESSAGE_BATCH = 500
#: The whole import's users and channels; its messages are ``--messages``.
WHOLE_USERS, WHOLE_CHANNELS = 20_000, 2_000


def make_users(count: int) -> list[dict[str, Any]]:
    return [
        {"username": f"user{n}", "name": f"User {n}", "emails": [f"user{n}@example.com"],
         "importIds": [str(n)], "type": "user", "roles": ["user"]}
        for n in range(count)
    ]


def best_of(rounds: int, work: Callable[[], float]) -> float:
    return min(work() for _ in range(rounds))


def alternating(
    rounds: int, ours: Callable[[], float], raw: Callable[[], float],
) -> tuple[float, float]:
    """Best time of each side, rounds interleaved so a noisy neighbour hits both alike."""
    times = [(ours(), raw()) for _ in range(rounds)]
    return min(t for t, _ in times), min(t for _, t in times)


# -- add_users ------------------------------------------------------------------------------


def time_add_users(scratch: Path, users: list[dict[str, Any]]) -> float:
    path = scratch / "add.db"
    _remove(path)
    service = ImportService(SQLiteStore(path))
    service.new_operation("bench")
    start = time.perf_counter()
    service.add_users(users)
    elapsed = time.perf_counter() - start
    service.store.close()
    return elapsed


#: The raw loops' own minimal schema: the least a durable import must keep.
_RAW_SCHEMA = """
CREATE TABLE ops (id INTEGER PRIMARY KEY, total INTEGER, completed INTEGER,
                  cursor INTEGER, updated REAL);
CREATE TABLE staging (id INTEGER PRIMARY KEY, data TEXT NOT NULL);
"""


def _raw_connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _raw_database(path: Path) -> sqlite3.Connection:
    _remove(path)
    conn = _raw_connect(path)
    conn.executescript(_RAW_SCHEMA)
    conn.execute("INSERT INTO ops VALUES (1, 0, 0, NULL, 0)")
    return conn


def time_raw_executemany(scratch: Path, users: list[dict[str, Any]]) -> float:
    """``json.dumps`` each user, one ``executemany`` in one transaction."""
    conn = _raw_database(scratch / "raw_add.db")
    start = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO staging (data) VALUES (?)", [(json.dumps(u),) for u in users])
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


# -- run ------------------------------------------------------------------------------------


def stage(path: Path, count: int) -> None:
    """A database with one operation holding ``count`` staged users, ready to run."""
    _remove(path)
    service = ImportService(SQLiteStore(path))
    service.new_operation("bench")
    chunk = 50_000
    for first in range(0, count, chunk):
        service.add_users(make_users(min(chunk, count - first)))
    service.store.close()


def time_run(template: Path, scratch: Path) -> float:
    path = scratch / "run.db"
    _copy(template, path)
    service = ImportService(SQLiteStore(path), {"api": lambda _user: None})
    start = time.perf_counter()
    final = service.run()
    elapsed = time.perf_counter() - start
    assert final.status == "importer_done", final
    service.store.close()
    return elapsed


def raw_stage(path: Path, count: int) -> None:
    """The raw loop's database with ``count`` staged users."""
    conn = _raw_database(path)
    with conn:
        conn.executemany(
            "INSERT INTO staging (data) VALUES (?)", [(json.dumps(u),) for u in make_users(count)],
        )
        conn.execute("UPDATE ops SET total = ?", (count,))
    conn.close()


def _raw_pages(conn: sqlite3.Connection, table: str, size: int, completed: int) -> int:
    """Pages of ``size`` by id, ``json.loads`` each row, one counter update per page; the count."""
    after = -1
    query = f"SELECT id, data FROM {table} WHERE id > ? ORDER BY id LIMIT ?"  # noqa: S608
    while page := conn.execute(query, (after, size)).fetchall():
        for _id, data in page:
            json.loads(data)  # what a no-op importer is handed
        completed += len(page)
        after = page[-1][0]
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "UPDATE ops SET completed = ?, cursor = ?, updated = ? WHERE id = 1",
            (completed, after, time.time()),
        )
        conn.execute("COMMIT")
    return completed


def time_raw_run(template: Path, scratch: Path) -> float:
    """Pages of 50 by id, ``json.loads`` each, one counter update per page, successes deleted."""
    path = scratch / "raw_run.db"
    _copy(template, path)
    conn = _raw_connect(path)
    start = time.perf_counter()
    _raw_pages(conn, "staging", BATCH, 0)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("DELETE FROM staging")
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


# -- a whole import: users, channels, messages -------------------------------------------


def make_channels(count: int, users: int) -> list[dict[str, Any]]:
    return [
        {"importIds": [f"c{n}"], "name": f"channel-{n}", "t": "c", "u": {"_id": str(n % users)},
         "users": [str((n + k) % users) for k in range(5)]}
        for n in range(count)
    ]


def make_messages(count: int, users: int, channels: int) -> list[dict[str, Any]]:
    return [
        {"importIds": [f"m{n}"], "rid": f"c{n % channels}", "u": {"_id": str(n % users)},
         "msg": f"message number {n}", "ts": 1_700_000_000_000 + n}
        for n in range(count)
    ]


def whole_import(messages: int) -> dict[str, list[dict[str, Any]]]:
    """The records of a whole import, by the run's phase order."""
    return {
        "users": make_users(WHOLE_USERS),
        "channels": make_channels(WHOLE_CHANNELS, WHOLE_USERS),
        "messages": make_messages(messages, WHOLE_USERS, WHOLE_CHANNELS),
    }


class NoOpRecords:
    """A record importer that imports nothing and fails nothing."""

    def import_batch(self, records: list[dict[str, Any]]) -> list[BaseException | None]:
        """Succeed with every record of the batch."""
        return [None] * len(records)

    import_channels = import_batch
    import_messages = import_batch


def stage_whole(path: Path, records: dict[str, list[dict[str, Any]]]) -> None:
    _remove(path)
    service = ImportService(SQLiteStore(path))
    service.new_operation("bench")
    service.add_users(records["users"])
    service.add_channels(records["channels"])
    chunk = 50_000
    messages = records["messages"]
    for first in range(0, len(messages), chunk):
        service.add_messages(messages[first:first + chunk])
    service.store.close()


def time_whole_run(template: Path, scratch: Path) -> float:
    path = scratch / "whole.db"
    _copy(template, path)
    service = ImportService(SQLiteStore(path), {"api": NoOpRecords()})
    start = time.perf_counter()
    final = service.run()
    elapsed = time.perf_counter() - start
    assert final.status == "importer_done", final
    assert final.count.get("completed") == final.count.total, final
    service.store.close()
    return elapsed


#: One staging table per type, each at its phase's batch size, in phase order.
_RAW_PHASES = (("users", BATCH), ("channels", BATCH), ("messages", MESSAGE_BATCH))


def raw_stage_whole(path: Path, records: dict[str, list[dict[str, Any]]]) -> None:
    conn = _raw_database(path)
    with conn:
        for table, _ in _RAW_PHASES:
            conn.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, data TEXT NOT NULL)")
            conn.executemany(f"INSERT INTO {table} (data) VALUES (?)",  # noqa: S608 - our names
                             [(json.dumps(r),) for r in records[table]])
        conn.execute("UPDATE ops SET total = ?", (sum(map(len, records.values())),))
    conn.close()


def time_raw_whole_run(template: Path, scratch: Path) -> float:
    """The raw run loop over each type's table in turn, at that phase's batch size."""
    path = scratch / "raw_whole.db"
    _copy(template, path)
    conn = _raw_connect(path)
    start = time.perf_counter()
    completed = 0
    for table, size in _RAW_PHASES:
        completed = _raw_pages(conn, table, size, completed)
    conn.execute("BEGIN IMMEDIATE")
    for table, _ in _RAW_PHASES:
        conn.execute(f"DELETE FROM {table}")  # noqa: S608 - our names
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def whole(scratch: Path, messages: int, rounds: int) -> None:
    """Report the whole import's speed against the raw loop, and its memory at two sizes."""
    records = whole_import(messages)
    count = sum(map(len, records.values()))
    template, raw_template = scratch / "whole_template.db", scratch / "raw_whole_template.db"
    stage_whole(template, records)
    raw_stage_whole(raw_template, records)
    del records
    ours, raw = alternating(
        rounds,
        lambda: time_whole_run(template, scratch),
        lambda: time_raw_whole_run(raw_template, scratch),
    )
    _report(f"run() of {WHOLE_USERS:,} users, {WHOLE_CHANNELS:,} channels and {messages:,} "
            "messages, no-op importer", ours, raw, count, 0.8, unit="records")
    half, full = whole_growth_mib(scratch, messages // 2), whole_growth_mib(scratch, messages)
    flat = abs(full - half) <= 20
    print(f"peak memory growth of that run: {full:.1f} MiB; with {messages // 2:,} messages "
          f"{half:.1f} MiB (target: flat, within 20 MiB) {'ok' if flat else 'OVER TARGET'}")


def whole_growth_mib(scratch: Path, messages: int) -> float:
    path = scratch / "whole_memory.db"
    stage_whole(path, whole_import(messages))
    return _measure_in_child(_run_whole_and_measure, path)[1]


# -- memory ---------------------------------------------------------------------------------


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def _run_and_measure(path: str, queue: Any) -> None:  # noqa: ANN401 - a multiprocessing queue
    service = ImportService(SQLiteStore(path), {"api": lambda _user: None})
    before = _rss_kib("VmRSS")
    final = service.run()
    queue.put((final.count.get("completed"), (_rss_kib("VmHWM") - before) / 1024))


def _run_whole_and_measure(path: str, queue: Any) -> None:  # noqa: ANN401 - a queue
    service = ImportService(SQLiteStore(path), {"api": NoOpRecords()})
    before = _rss_kib("VmRSS")
    final = service.run()
    queue.put((final.count.get("completed"), (_rss_kib("VmHWM") - before) / 1024))


def _measure_in_child(target: Callable[[str, Any], None], path: Path) -> tuple[int, float]:
    """Run ``target`` in a fresh process: what it completed, its peak RSS growth in MiB."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=target, args=(str(path), queue))
    child.start()
    result: tuple[int, float] = queue.get()
    child.join()
    return result


def memory_growth_mib(scratch: Path, users: int) -> tuple[int, float]:
    path = scratch / "memory.db"
    stage(path, users)
    return _measure_in_child(_run_and_measure, path)


# -- serialisation --------------------------------------------------------------------------


def serialisation(count: int, rounds: int) -> tuple[int, float, float]:
    now = dt.datetime.now(dt.UTC)
    docs = [
        Operation.create(user="bench", at=now).fire("stage", at=now).to_wire()
        for _ in range(count)
    ]
    built = 0
    original = transitions.Machine.__init__

    def counting(self: transitions.Machine, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401
        nonlocal built
        built += 1
        original(self, *args, **kwargs)

    transitions.Machine.__init__ = counting  # type: ignore[method-assign]
    try:
        loaded = [Operation.from_wire(doc) for doc in docs]
        ours = best_of(rounds, lambda: _timed(lambda: [op.to_wire() for op in loaded]))
        bare = best_of(rounds, lambda: _timed(lambda: [attrs.asdict(op) for op in loaded]))
    finally:
        transitions.Machine.__init__ = original  # type: ignore[method-assign]
    return built, ours, bare


def _timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _copy(template: Path, path: Path) -> None:
    _remove(path)
    shutil.copyfile(template, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[100_000, 200_000])
    parser.add_argument("--memory-users", type=int, default=1_000_000)
    parser.add_argument("--operations", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--messages", type=int, default=500_000)
    parser.add_argument("--only-whole", action="store_true", help="the whole import alone")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        if args.only_whole:
            whole(scratch, args.messages, args.rounds)
            return
        for count in args.users:
            _core(scratch, count, args.rounds)

        completed, growth = memory_growth_mib(scratch, args.memory_users)
        verdict = "ok" if growth <= 100 else "OVER TARGET"
        print(f"peak memory growth of run() over {completed:,} users: {growth:.1f} MiB "
              f"(target <= 100 MiB) {verdict}")

        built, ours, bare = serialisation(args.operations, args.rounds)
        ratio = bare / ours
        print(f"to_wire() of {args.operations:,} loaded operations: {ratio:.2f}x attrs.asdict "
              f"({args.operations / ours:,.0f} vs {args.operations / bare:,.0f} ops/s), "
              f"machines built: {built} (target >= 0.5x, 0 machines) "
              f"{'ok' if ratio >= 0.5 and built == 0 else 'OVER TARGET'}")

        whole(scratch, args.messages, args.rounds)


def _core(scratch: Path, count: int, rounds: int) -> None:
    users = make_users(count)
    ours, raw = alternating(
        rounds,
        lambda: time_add_users(scratch, users),
        lambda: time_raw_executemany(scratch, users),
    )
    _report(f"add_users() of {count:,} users", ours, raw, count, 0.8)
    template, raw_template = scratch / "template.db", scratch / "raw_template.db"
    stage(template, count)
    raw_stage(raw_template, count)
    ours, raw = alternating(
        rounds,
        lambda: time_run(template, scratch),
        lambda: time_raw_run(raw_template, scratch),
    )
    _report(f"run() of {count:,} users, no-op importer", ours, raw, count, 0.85)


def _report(  # noqa: PLR0913 - one line of the report
    what: str, ours: float, raw: float, count: int, target: float, *, unit: str = "users",
) -> None:
    ratio = raw / ours
    verdict = "ok" if ratio >= target else "UNDER TARGET"
    print(f"{what}: {ratio:.2f}x the raw sqlite3 loop "
          f"({count / ours:,.0f} vs {count / raw:,.0f} {unit}/s; target >= {target}x) {verdict}")


if __name__ == "__main__":
    main()
