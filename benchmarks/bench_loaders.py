"""File importer benchmarks: load_file() against a raw parse-and-insert loop.

Two exports of the same size, written by ``importstate.loaders.samples``: a
CSV import zip and a Slack export, each of 200,000 users, 1,000 channels
(with the direct ones the export implies) and 1,000,000 messages. For each:

- records staged per second by ``ImportService.load_file`` (every step, the
  checks, one transaction) against a raw loop doing the same parse and the
  minimum durable work: ``csv.reader`` over each member (``json.load`` of
  each member for Slack), the same records built and ``json.dumps``-ed, one
  ``executemany`` into a two-column table in one transaction, WAL and
  ``synchronous=NORMAL``; target >= 0.7x, best of interleaved rounds;
- peak resident memory growth of load_file in a child process (``VmHWM``
  less ``VmRSS`` before): target <= 150 MB.

Usage: python benchmarks/bench_loaders.py [--users N] [--messages N] [--channels N] [--rounds N]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import multiprocessing
import sqlite3
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench_core import _remove, _rss_kib  # the same measures as the core benchmarks

from importstate import ImportService, SQLiteStore
from importstate.loaders import samples

RATIO_TARGET = 0.7
MEMORY_TARGET_MIB = 150


def _service(path: Path, key: str) -> ImportService:
    _remove(path)
    return ImportService(SQLiteStore(path), {key: lambda _record: None})


def time_load_file(scratch: Path, export: str, key: str, records: int) -> float:
    service = _service(scratch / "ours.db", key)
    start = time.perf_counter()
    operation = service.load_file(export, key)
    elapsed = time.perf_counter() - start
    assert operation.count.get("total") == records, operation.failure
    service.store.close()
    return elapsed


# -- the raw loops --------------------------------------------------------------------------


def _raw_database(path: Path) -> sqlite3.Connection:
    _remove(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE staging (id INTEGER PRIMARY KEY, data TEXT NOT NULL)")
    return conn


def _csv_rows(archive: zipfile.ZipFile, name: str) -> Iterator[list[str]]:
    with archive.open(name) as raw:
        yield from csv.reader(io.TextIOWrapper(raw, "utf-8", newline=""))


def _raw_csv_records(archive: zipfile.ZipFile) -> Iterator[dict[str, Any]]:
    """The CSV import's records, parsed as plainly as Python can: no checks, no limits."""
    def rows(name: str) -> Iterator[list[str]]:
        return _csv_rows(archive, name)

    for username, email, name in rows("users.csv"):
        yield {"importIds": [username], "emails": [email], "username": username,
               "type": "user", "name": name}
    for name, creator, privacy, members in rows("channels.csv"):
        yield {"importIds": [name], "name": name, "t": "p" if privacy == "private" else "c",
               "users": members.split(";"), "u": {"_id": creator}}
    pairs = set()
    for member in archive.namelist():
        if member.startswith("directmessages/"):
            pairs.update(tuple(sorted(row[:2])) for row in rows(member))
    for pair in sorted(pairs):
        yield {"importIds": ["/".join(pair)], "name": "/".join(pair), "t": "d",
               "users": list(pair)}
    yield from _raw_csv_messages(archive)


def _raw_csv_messages(archive: zipfile.ZipFile) -> Iterator[dict[str, Any]]:
    def rows(name: str) -> Iterator[list[str]]:
        return _csv_rows(archive, name)

    for member in archive.namelist():
        channel, _, _ = member.partition("/")
        if member.startswith("directmessages/"):
            for line, (one, other, ts, text) in enumerate(rows(member), start=1):
                yield {"importIds": [f"{member}:{line}"], "rid": "/".join(sorted((one, other))),
                       "u": {"_id": one}, "msg": text, "ts": int(ts)}
        elif "/" in member:
            for line, (author, ts, text) in enumerate(rows(member), start=1):
                yield {"importIds": [f"{member}:{line}"], "rid": channel, "u": {"_id": author},
                       "msg": text, "ts": int(ts)}


def _raw_slack_records(archive: zipfile.ZipFile) -> Iterator[dict[str, Any]]:
    """The Slack export's records, each member read whole with ``json.load``."""
    def load(name: str) -> list[dict[str, Any]]:
        with archive.open(name) as raw:
            return json.load(raw)  # type: ignore[no-any-return]

    for user in load("users.json"):
        yield {"importIds": [user["id"]], "emails": [user["profile"]["email"]],
               "username": user["name"], "name": user["profile"]["real_name"], "type": "user"}
    folders = {}
    for listing, kind in (("channels.json", "c"), ("groups.json", "p"), ("mpims.json", "p"),
                          ("dms.json", "d")):
        for channel in load(listing):
            name = channel.get("name", channel["id"])
            folders[name] = channel["id"]
            yield {"importIds": [channel["id"]], "name": name, "t": kind,
                   "users": channel["members"], "archived": bool(channel.get("is_archived"))}
    for member in sorted(m for m in archive.namelist() if "/" in m):
        rid = folders[member.split("/")[0]]
        for message in load(member):
            seconds, _, fraction = message["ts"].partition(".")
            record = {"importIds": [f"{rid}/{message['ts']}"], "rid": rid,
                      "u": {"_id": message["user"]}, "msg": message["text"],
                      "ts": int(seconds) * 1000 + int(fraction[:3])}
            if "thread_ts" in message:
                record["tmid"] = f"{rid}/{message['thread_ts']}"
            yield record


def time_raw(scratch: Path, export: str, records: Callable[[zipfile.ZipFile], Iterator[Any]],
             count: int) -> float:
    conn = _raw_database(scratch / "raw.db")
    start = time.perf_counter()
    with zipfile.ZipFile(export) as archive:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO staging (data) VALUES (?)",
                         ((json.dumps(record),) for record in records(archive)))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    staged = conn.execute("SELECT count(*) FROM staging").fetchone()[0]
    conn.close()
    assert staged == count, (staged, count)
    return elapsed


# -- memory ---------------------------------------------------------------------------------


def _load_and_measure(db: str, export: str, key: str, queue: Any) -> None:  # noqa: ANN401
    service = _service(Path(db), key)
    before = _rss_kib("VmRSS")
    operation = service.load_file(export, key)
    queue.put((operation.count.get("total"), (_rss_kib("VmHWM") - before) / 1024))


def memory_growth_mib(scratch: Path, export: str, key: str) -> tuple[int, float]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_load_and_measure,
                            args=(str(scratch / "memory.db"), export, key, queue))
    child.start()
    result: tuple[int, float] = queue.get()
    child.join()
    return result


# -- the report -----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--channels", type=int, default=1_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    size = {"users": args.users, "channels": args.channels, "messages": args.messages}
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        for key, write, raw in (("csv", samples.write_csv_export, _raw_csv_records),
                                ("slack", samples.write_slack_export, _raw_slack_records)):
            started = time.perf_counter()
            export = write(scratch / f"{key}.zip", **size)
            megabytes = Path(export.path).stat().st_size / 2**20
            print(f"{key}: wrote {export.records:,} records ({megabytes:,.0f} MiB zipped) in"
                  f" {time.perf_counter() - started:.0f}s")
            times = [
                (time_load_file(scratch, export.path, key, export.records),
                 time_raw(scratch, export.path, raw, export.records))
                for _ in range(args.rounds)
            ]
            ours, bare = min(t for t, _ in times), min(t for _, t in times)
            ratio = bare / ours
            print(f"load_file() of a {key} export of {export.records:,} records: {ratio:.2f}x"
                  f" the raw loop ({export.records / ours:,.0f} vs {export.records / bare:,.0f}"
                  f" records/s; target >= {RATIO_TARGET}x)"
                  f" {'ok' if ratio >= RATIO_TARGET else 'UNDER TARGET'}")
            staged, growth = memory_growth_mib(scratch, export.path, key)
            print(f"peak memory growth of load_file() over {staged:,} {key} records:"
                  f" {growth:.1f} MiB (target <= {MEMORY_TARGET_MIB} MiB)"
                  f" {'ok' if growth <= MEMORY_TARGET_MIB else 'OVER TARGET'}")


if __name__ == "__main__":
    main()
