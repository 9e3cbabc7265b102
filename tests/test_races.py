"""Racing callers on one SQLite file: several processes, one outcome.

Eight processes race ``new_operation`` + ``add_users`` (and, in some rounds,
``run``, ``cancel`` or ``clear``) round after round; between rounds the test
checks that the store holds exactly one valid operation with exactly the users
added to it. Then a worker process is stopped at a batch boundary by a new
operation and by a cancel from another process, and a locked database is
waited for, within the store's timeout, never surfaced as a crash.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import workers

from importstate import (
    DatabaseBusy,
    ImportService,
    ImportStateError,
    Operation,
    ProgressStep,
    SQLiteStore,
    State,
)
from importstate.stores import sqlite as sqlite_store

PROCESSES = 8
ROUNDS = 50
PER_CALL = 5
WAIT = 60  # seconds any barrier waits before the race is declared stuck
FORK = multiprocessing.get_context("fork")


def users_of(index: int, round_: int) -> list[dict[str, Any]]:
    return workers.users(PER_CALL, start=(round_ * PROCESSES + index) * PER_CALL)


def keys_of(index: int, round_: int) -> set[str]:
    return {u["importIds"][0] for u in users_of(index, round_)}


def round_kind(round_: int) -> str:
    return ("add", "add", "cancel", "clear", "run")[round_ % 5]


def _attempt(call: Any) -> str:
    """The operation id or status a call gave, or the name of the ImportStateError it raised."""
    try:
        result = call()
    except ImportStateError as exc:
        return type(exc).__name__
    if isinstance(result, Operation):
        return result.id if result.state is not State.DONE else result.status.value
    return str(result)


def racer(db: Path, record: Path, index: int, barriers: Any, results: Any) -> None:
    start, added, done = barriers
    try:
        store = SQLiteStore(db)
        service = ImportService(store, {"api": workers.KeyedImporter(record)})
        for round_ in range(ROUNDS):
            start.wait(WAIT)
            outcome = {
                "new": _attempt(lambda: service.new_operation(f"p{index}")),
                "added": _attempt(lambda r=round_: service.add_users(users_of(index, r))),
            }
            added.wait(WAIT)
            kind = round_kind(round_)
            if kind == "run":
                outcome["run"] = _attempt(service.run)
            elif kind == "cancel":
                outcome["cancel"] = _attempt(lambda: service.cancel().state)
            elif kind == "clear":
                # Half clear, half start over: whichever commits last decides.
                again = service.clear if index % 2 else lambda: service.new_operation("again")
                outcome["clear"] = _attempt(again)
            results.put((index, round_, outcome))
            done.wait(WAIT)
    except BaseException:  # noqa: BLE001 - reported to the test, which fails on it
        results.put((index, -1, traceback.format_exc()))
        start.abort()
        added.abort()
        done.abort()


def store_contents(db: Path) -> tuple[list[Operation], dict[str, set[str]]]:
    """Every valid operation, and every staged key by operation (all operations)."""
    store = SQLiteStore(db)
    with store.reading() as tx:
        valid = tx.valid_operations()
    store.close()
    staged: dict[str, set[str]] = {}
    with sqlite3.connect(db) as conn:
        # Staged rows name their operation by its row (operations.created), in a key
        # that holds their type too: sqlite._SLOTS keys per operation.
        rows = conn.execute(
            "SELECT coalesce(o.id, 'no operation ' || s.operation),"
            " json_extract(s.data, '$.importIds[0]')"
            " FROM staged AS s LEFT JOIN operations AS o ON o.created = s.operation / ?",
            (sqlite_store._SLOTS,),
        )
        for operation, key in rows:
            staged.setdefault(operation, set()).add(key)
    return valid, staged


def check_round(db: Path, record: Path, round_: int, outcomes: dict[int, dict[str, str]]) -> None:
    context = f"round {round_} ({round_kind(round_)}): {outcomes}"
    valid, staged = store_contents(db)
    current = ImportService(SQLiteStore(db)).current_operation()
    assert current is not None
    kind = round_kind(round_)
    if kind == "clear":
        assert len(valid) <= 1, context
        assert staged == {}, context
        if valid:
            assert valid[0].id == current.id, context
            assert valid[0].count.get("total") == 0, context
        return
    assert [op.id for op in valid] == [current.id], context  # exactly one valid: the current
    expected: set[str] = set()
    for index, outcome in outcomes.items():
        assert len(outcome["new"]) == 24, context  # every new_operation succeeded
        if outcome["added"] == current.id:
            expected |= keys_of(index, round_)
        else:
            assert len(outcome["added"]) == 24, context  # added to an operation since replaced
    left = {key for key in expected if workers.fails(key)} if kind == "run" else expected
    assert staged == ({current.id: left} if left else {}), context
    assert current.count.get("total") == len(expected), context
    if kind == "run":
        runs = sorted(o["run"] for o in outcomes.values())
        assert runs == ["InvalidOperationStatus"] * (PROCESSES - 1) + ["importer_done"], context
        seen = workers.record_of(record)
        imported = {key: n for key, n in seen["imported"].items() if key in expected}
        assert set(imported) == {k for k in expected if not workers.fails(k)}, context
        assert set(imported.values()) <= {1}, context
    if kind == "cancel":
        cancels = sorted(o["cancel"] for o in outcomes.values())
        assert cancels == ["OperationAlreadyFinished"] * (PROCESSES - 1) + ["canceled"], context
        assert current.state is State.CANCELED, context


@pytest.mark.timeout(240)
def test_eight_processes_race_new_add_run_cancel_and_clear(tmp_path):
    db, record = tmp_path / "race.db", tmp_path / "record.db"
    SQLiteStore(db).close()
    barriers = tuple(FORK.Barrier(PROCESSES + 1) for _ in range(3))
    results = FORK.Queue()
    processes = [
        FORK.Process(target=racer, args=(db, record, index, barriers, results))
        for index in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    start, added, done = barriers
    try:
        for round_ in range(ROUNDS):
            start.wait(WAIT)
            added.wait(WAIT)
            done.wait(WAIT)
            reported = [results.get(timeout=WAIT) for _ in range(PROCESSES)]
            crashed = [r for r in reported if r[1] == -1]
            assert not crashed, crashed
            assert {r[1] for r in reported} == {round_}
            check_round(db, record, round_, {index: outcome for index, _, outcome in reported})
    except threading.BrokenBarrierError:
        pytest.fail(f"a racer crashed: {results.get(timeout=5)}")
    finally:
        for process in processes:
            process.join(WAIT)
            if process.is_alive():
                process.kill()
    assert [p.exitcode for p in processes] == [0] * PROCESSES


def opener(db: Path, index: int, start: Any, results: Any) -> None:
    try:
        start.wait(WAIT)
        service = ImportService(SQLiteStore(db))
        service.new_operation(f"p{index}")
        results.put(service.status()["state"])
    except BaseException:  # noqa: BLE001 - reported to the test
        results.put(traceback.format_exc())


def test_processes_creating_one_new_database_at_once_never_see_it_locked(tmp_path):
    for attempt in range(5):
        db = tmp_path / f"fresh{attempt}.db"
        start, results = FORK.Barrier(PROCESSES), FORK.Queue()
        processes = [
            FORK.Process(target=opener, args=(db, index, start, results))
            for index in range(PROCESSES)
        ]
        for process in processes:
            process.start()
        reported = [results.get(timeout=WAIT) for _ in processes]
        for process in processes:
            process.join(WAIT)
        assert all(state in {"new", "error"} for state in reported), reported
        valid, _ = store_contents(db)
        assert len(valid) == 1
        assert len(ImportService(SQLiteStore(db)).latest_operations(100)) == PROCESSES


_HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("held", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


@contextmanager
def write_locked(db: Path, seconds: float) -> Iterator[None]:
    """Another process holds the database's write lock for ``seconds`` (or until the block ends)."""
    command = [sys.executable, "-c", _HOLD_LOCK, str(db), str(seconds)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        try:
            yield
        finally:
            holder.kill()  # a lock still held dies with its process


def test_a_locked_database_is_waited_for_then_reported_as_busy(tmp_path):
    db = tmp_path / "locked.db"
    SQLiteStore(db).close()
    with write_locked(db, 5):
        service = ImportService(SQLiteStore(db, timeout=0.3))
        assert service.status() == {"state": "none"}  # readers do not wait for a writer
        began = time.monotonic()
        with pytest.raises(DatabaseBusy, match="database is busy") as busy:
            service.new_operation("admin")
        waited = time.monotonic() - began
    assert isinstance(busy.value, ImportStateError)
    assert 0.25 <= waited < 3  # bounded by the timeout, far below the 5 s the lock is held
    assert service.new_operation("admin").state is State.NEW


def test_a_lock_released_within_the_timeout_is_waited_for(tmp_path):
    db = tmp_path / "locked.db"
    SQLiteStore(db).close()
    with write_locked(db, 0.4):
        began = time.monotonic()
        operation = ImportService(SQLiteStore(db, timeout=10)).new_operation("admin")
    assert operation.state is State.NEW
    assert time.monotonic() - began >= 0.2


# -- a worker process stopped at a batch boundary ------------------------------------------

STAGED = 2_000  # forty batches
PAUSE_AT = 3


def paused_worker(db: Path, record: Path) -> subprocess.Popen[str]:
    """A worker importing the current operation, paused inside its third batch."""
    command = [sys.executable, workers.SCRIPT, "work", str(db), str(record)]
    command += ["--pause-at", str(PAUSE_AT)]
    worker = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    paused = Path(f"{record}.paused")
    deadline = time.monotonic() + WAIT
    while not paused.exists():
        assert worker.poll() is None, worker.communicate()
        assert time.monotonic() < deadline, "the worker never reached its third batch"
        time.sleep(0.01)
    return worker


def release(worker: subprocess.Popen[str], record: Path) -> str:
    Path(f"{record}.go").touch()
    out, err = worker.communicate(timeout=WAIT)
    assert worker.returncode == 0, err
    return out.splitlines()[-1]


def test_a_new_operation_stops_the_running_import_after_the_batch_in_hand(tmp_path):
    db, record = tmp_path / "abort.db", tmp_path / "record.db"
    service = ImportService(SQLiteStore(db))
    old = service.new_operation("admin")
    service.add_users(workers.users(STAGED))
    worker = paused_worker(db, record)
    new = service.new_operation("someone else")
    service.add_users(workers.users(30, start=900_000))
    assert release(worker, record) == ProgressStep.IMPORT_FAILED.value

    assert workers.record_of(record)["batches"] == PAUSE_AT  # the batch in hand, no more
    [stopped] = [op for op in service.latest_operations() if op.id == old.id]
    assert stopped.status is ProgressStep.IMPORT_FAILED
    assert not stopped.valid
    assert stopped.count.get("completed") + stopped.count.get("error") == PAUSE_AT * 50
    assert stopped.failure is not None
    assert "cleared or replaced" in stopped.failure.message
    current = service.current_operation()
    assert current is not None
    assert current.id == new.id
    assert current.state is State.READY
    assert current.count.get("total") == 30
    staged = [record["data"]["importIds"][0] for record in service.staged_users()]
    assert staged == [f"key-{n:06d}" for n in range(900_000, 900_030)]
    _, by_operation = store_contents(db)
    assert set(by_operation) == {new.id}


def test_a_cancel_from_another_process_stops_the_worker_at_its_next_batch(tmp_path):
    db, record = tmp_path / "cancel.db", tmp_path / "record.db"
    service = ImportService(SQLiteStore(db))
    service.new_operation("admin")
    service.add_users(workers.users(STAGED))
    worker = paused_worker(db, record)
    assert service.cancel().state is State.CANCELED
    assert service.status()["state"] == "canceled"  # at once, while the worker is mid-batch
    assert release(worker, record) == ProgressStep.IMPORT_CANCELLED.value

    assert workers.record_of(record)["batches"] == PAUSE_AT
    operation = service.current_operation()
    assert operation is not None
    assert operation.status is ProgressStep.IMPORT_CANCELLED
    assert operation.count.get("completed") + operation.count.get("error") == PAUSE_AT * 50
    assert sum(1 for _ in service.staged_users()) == STAGED  # staged records stay
