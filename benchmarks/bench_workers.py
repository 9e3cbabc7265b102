"""Parallel-run benchmark: users/s with 1, 2, 4 and 8 workers on one PostgreSQL operation.

The importer spends 20 ms of I/O wait per batch (a sleep), as a remote
target system would; the workers are threads of ``run(workers=N)``, all on
one server in one process, measured in the same invocation. "1 worker" is
``run()`` without workers, the single-worker loop. Target (issue "parallel
workers"): 4 workers >= 3.5x one worker.

Without ``--dsn`` (or ``IMPORTSTATE_DSN``) a throwaway server is started with
initdb and pg_ctl, with fsync on, as a production server has it.

Usage: python benchmarks/bench_workers.py [--users N] [--workers 1,2,4,8] [--dsn DSN]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench_postgres import SCHEMA, server, stage

from importstate import ImportService, PostgresStore

# The test suite's throwaway server (initdb and pg_ctl in a temporary directory).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from _postgres import drop_schema

#: Seconds of I/O wait the importer spends per batch.
BATCH_WAIT = 0.020


class WaitingImporter:
    """Imports nothing, but waits as long per batch as a call to a remote system would."""

    def import_batch(self, users: list[dict[str, Any]]) -> list[BaseException | None]:
        """Wait ``BATCH_WAIT`` seconds; every user succeeds."""
        time.sleep(BATCH_WAIT)
        return [None] * len(users)


def time_run(dsn: str, count: int, workers: int) -> float:
    stage(dsn, count)
    store = PostgresStore(dsn, schema=SCHEMA, max_connections=workers + 4)
    service = ImportService(store, {"api": WaitingImporter()})
    start = time.perf_counter()
    final = service.run() if workers == 1 else service.run(workers=workers)
    elapsed = time.perf_counter() - start
    assert final.status == "importer_done", final
    assert final.count.get("completed") == count
    store.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--workers", default="1,2,4,8",
                        help="comma-separated worker counts (default: 1,2,4,8)")
    parser.add_argument("--dsn", default=os.environ.get("IMPORTSTATE_DSN"),
                        help="an existing server to use (its schema importstate_bench is replaced)")
    args = parser.parse_args()
    counts = [int(part) for part in args.workers.split(",")]
    with server(args.dsn) as dsn:
        rates = {workers: args.users / time_run(dsn, args.users, workers) for workers in counts}
        drop_schema(dsn, SCHEMA)
    base = rates.get(1)
    for workers, rate in rates.items():
        speedup = f", {rate / base:.2f}x one worker" if base else ""
        print(f"{workers} worker(s), {args.users:,} users, {BATCH_WAIT * 1000:g} ms per batch:"
              f" {rate:,.0f} users/s{speedup}")
    if base and 4 in rates:
        print(f"target: 4 workers >= 3.5x one worker: {rates[4] / base:.2f}x")


if __name__ == "__main__":
    main()
