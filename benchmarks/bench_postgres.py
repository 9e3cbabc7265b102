"""PostgresStore benchmark: run() against a raw psycopg loop doing the same durable work.

Both sides run on one server in one process, best of several rounds each, so
a noisy machine moves both alike. Target (issue "PostgreSQL store"): run()
with a no-op importer over 20,000 staged users >= 0.7x the raw loop.

The raw loop streams the staged rows, decodes each user's JSON, writes the
operation's counts and checkpoint once per 50 users in a transaction of its
own, and deletes the succeeded rows at the end.

Without ``--dsn`` (or ``IMPORTSTATE_DSN``) a throwaway server is started with
initdb and pg_ctl, with fsync on, as a production server has it.

Usage: python benchmarks/bench_postgres.py [--users N] [--rounds N] [--dsn DSN]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from importstate import ImportService, PostgresStore

# The test suite's throwaway server (initdb and pg_ctl in a temporary directory).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from _postgres import drop_schema, temporary_server

BATCH = 50
SCHEMA = "importstate_bench"


def make_users(count: int) -> list[dict[str, Any]]:
    return [
        {"username": f"user{n}", "name": f"User {n}", "emails": [f"user{n}@example.com"],
         "importIds": [str(n)], "type": "user", "roles": ["user"]}
        for n in range(count)
    ]


def stage(dsn: str, count: int) -> None:
    """A fresh schema with one operation holding ``count`` staged users, ready to run."""
    drop_schema(dsn, SCHEMA)
    service = ImportService(PostgresStore(dsn, schema=SCHEMA))
    service.new_operation("bench")
    service.add_users(make_users(count))
    service.store.close()


def time_run(dsn: str, count: int) -> float:
    stage(dsn, count)
    service = ImportService(PostgresStore(dsn, schema=SCHEMA), {"api": lambda _user: None})
    start = time.perf_counter()
    final = service.run()
    elapsed = time.perf_counter() - start
    assert final.status == "importer_done", final
    assert final.count.get("completed") == count
    service.store.close()
    return elapsed


def time_raw_run(dsn: str, count: int) -> float:
    """Stream rows, decode JSON, one count + checkpoint update per 50, delete successes."""
    stage(dsn, count)
    options = f"-c search_path={SCHEMA}"
    with (
        psycopg.connect(dsn, autocommit=True, options=options) as reader,
        psycopg.connect(dsn, autocommit=True, options=options) as writer,
    ):
        (op_id, doc_text) = writer.execute("SELECT id, doc FROM operations").fetchone() or ("", "")
        doc = json.loads(doc_text)
        start = time.perf_counter()
        rows = reader.cursor().stream(
            "SELECT position, data FROM staged WHERE operation = %s ORDER BY position", (op_id,),
        )
        completed = 0
        in_batch = 0
        position = -1
        for position, data in rows:
            json.loads(data)  # what a no-op importer is handed
            in_batch += 1
            if in_batch == BATCH:
                completed += in_batch
                in_batch = 0
                _raw_commit(writer, op_id, doc, completed, position)
        if in_batch:
            completed += in_batch
            _raw_commit(writer, op_id, doc, completed, position)
        with writer.transaction():
            writer.execute("DELETE FROM staged WHERE operation = %s AND errors IS NULL", (op_id,))
        elapsed = time.perf_counter() - start
    assert completed == count
    return elapsed


def _raw_commit(
    conn: psycopg.Connection[Any], op_id: str, doc: dict[str, Any], completed: int, position: int,
) -> None:
    doc["count"]["completed"] = completed
    with conn.transaction():
        conn.execute(
            "UPDATE operations SET doc = %s, checkpoint = %s WHERE id = %s",
            (json.dumps(doc), position, op_id),
        )


@contextlib.contextmanager
def server(dsn: str | None) -> Iterator[str]:
    if dsn:
        yield dsn
        return
    with temporary_server(durable=True) as started:
        yield started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dsn", default=os.environ.get("IMPORTSTATE_DSN"),
                        help="an existing server to use (its schema importstate_bench is replaced)")
    args = parser.parse_args()
    with server(args.dsn) as dsn:
        # Rounds alternate, so a busy moment of the disk or CPU hits both sides.
        ours, raw = float("inf"), float("inf")
        for _ in range(args.rounds):
            ours = min(ours, time_run(dsn, args.users))
            raw = min(raw, time_raw_run(dsn, args.users))
        drop_schema(dsn, SCHEMA)
    ratio = raw / ours
    print(f"run() of {args.users:,} users on PostgreSQL: {args.users / ours:,.0f} users/s, "
          f"{ratio:.2f}x the raw psycopg loop ({args.users / raw:,.0f} users/s; target >= 0.7x)")


if __name__ == "__main__":
    main()
