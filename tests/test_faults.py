"""Fault injection: real worker processes SIGKILLed at seeded points, then resumed.

Every kill point comes from ``IMPORTSTATE_FAULT_SEED`` (a fixed default), so
a failing run is replayed by setting it to the seed printed in the failure.
Three kinds of kill: inside the importer at an exact user of an exact batch,
just before the store's n-th COMMIT (a transaction written but not
committed), and by the parent after a random delay (anywhere, including
inside SQLite's own commit).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import attrs
import pytest
import workers

from importstate import ImportService, SQLiteStore, State
from importstate.stores import StagedRecord

SEED = int(os.environ.get("IMPORTSTATE_FAULT_SEED", "20261124"))
USERS = 20_000
BATCH = 50
#: Kill points per CI run; two in three are exact points that always kill.
KILL_POINTS = 30
KINDS = ("importer", "commit", "timer")
SUCCEEDED = {f"key-{n:06d}" for n in range(USERS) if not workers.fails(f"key-{n:06d}")}
FAILED = {f"key-{n:06d}" for n in range(USERS)} - SUCCEEDED


@attrs.frozen
class KillPoint:
    kind: str
    batch: int = 0
    user: int = 0
    commit: int = 0
    delay: float = 0.0

    def worker_args(self) -> list[str]:
        if self.kind == "importer":
            return ["--kill-batch", str(self.batch), "--kill-user", str(self.user)]
        if self.kind == "commit":
            return ["--kill-commit", str(self.commit)]
        return []


def plan(seed: int, points: int) -> list[list[KillPoint]]:
    """Rounds of one to three kill points each; ``points`` in all."""
    rng = random.Random(seed)  # noqa: S311 - reproducible kill points, not secrets
    kinds = [KINDS[i % len(KINDS)] for i in range(points)]
    rng.shuffle(kinds)
    rounds: list[list[KillPoint]] = []
    while kinds:
        chain = [kinds.pop() for _ in range(min(rng.randint(1, 3), len(kinds)))]
        # Exact points first, each within 100 batches of the last: with at most
        # three in a chain of a 400-batch import, every exact point is reached.
        chain.sort(key=lambda kind: kind == "timer")
        rounds.append([
            KillPoint(
                kind,
                batch=rng.randint(1, 100),
                user=rng.randint(1, BATCH),
                commit=rng.randint(1, 110),
                delay=rng.uniform(0.0, 0.25),
            )
            for kind in chain
        ])
    return rounds


def start_worker(db: Path, record: Path, point: KillPoint) -> subprocess.CompletedProcess[str]:
    """Run a worker to its kill point (or its end); return how it ended."""
    command = [sys.executable, workers.SCRIPT, "work", str(db), str(record), *point.worker_args()]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as p:
        assert p.stdout is not None
        if point.kind == "timer" and p.stdout.readline() == "started\n":
            time.sleep(point.delay)
            p.send_signal(signal.SIGKILL)
        out, err = p.communicate(timeout=60)
    return subprocess.CompletedProcess(command, p.returncode, out, err)


def test_plan_is_reproducible_and_has_enough_exact_kill_points():
    rounds = plan(SEED, KILL_POINTS)
    assert rounds == plan(SEED, KILL_POINTS)
    exact = [p for chain in rounds for p in chain if p.kind != "timer"]
    assert len(exact) >= 20


def staged_records(store: SQLiteStore, operation_id: str) -> list[StagedRecord]:
    with store.reading() as tx:
        return tx.staged(operation_id, after=None, limit=10 * USERS)


def check_round(store: SQLiteStore, record: Path, kills: int, context: str) -> None:
    service = ImportService(store)
    operation = service.current_operation()
    assert operation is not None
    assert operation.state is State.DONE, context
    count = operation.count
    assert count.total == USERS, context
    assert count.get("completed") + count.get("error") == USERS, context
    assert count.get("completed") == len(SUCCEEDED), context
    assert count.get("error") == len(FAILED), context

    staged = staged_records(store, operation.id)
    assert {r.data["importIds"][0] for r in staged} == FAILED, context
    assert len(staged) == len(FAILED), context
    for r in staged:
        assert len(r.errors) == 1, context  # a redone batch's errors are not recorded twice
        assert "hunter2" not in r.errors[0]["message"], context
        assert "[password]" in r.errors[0]["message"], context

    seen = workers.record_of(record)
    assert set(seen["imported"]) == SUCCEEDED, context
    assert set(seen["imported"].values()) == {1}, context  # exactly once, across every crash
    assert set(seen["reached"]) == SUCCEEDED | FAILED, context
    redone = sum(times - 1 for times in seen["reached"].values())
    assert redone <= BATCH * kills, f"{context}: {redone} users reached the importer again"


def test_sigkilled_imports_resume_to_exactly_an_uninterrupted_result(tmp_path):
    kills = 0
    for number, chain in enumerate(plan(SEED, KILL_POINTS)):
        db, record = tmp_path / f"import{number}.db", tmp_path / f"record{number}.db"
        store = SQLiteStore(db)
        service = ImportService(store, {"api": workers.KeyedImporter(record)})
        service.new_operation("admin")
        service.add_users(workers.users(USERS))
        killed_here = 0
        for point in chain:
            context = f"IMPORTSTATE_FAULT_SEED={SEED} round {number}: {point}"
            ended = start_worker(db, record, point)
            if point.kind != "timer":
                assert ended.returncode == -signal.SIGKILL, f"{context}: {ended.stderr}"
            else:
                assert ended.returncode in {0, -signal.SIGKILL}, f"{context}: {ended.stderr}"
            killed_here += ended.returncode == -signal.SIGKILL
        operation = service.current_operation()
        assert operation is not None
        if operation.state is State.READY:  # killed before its run started
            service.run()
        elif operation.state is State.IMPORTING:
            service.resume()
        check_round(store, record, killed_here, f"IMPORTSTATE_FAULT_SEED={SEED} round {number}")
        store.close()
        kills += killed_here
    assert kills >= 20


KILL_DURING_STAGING = 8
STAGED_BEFORE = 100
STAGING = 20_000


def staging_plan(seed: int) -> list[tuple[str, int, float]]:
    """``(kind, row, delay)``: kill before the row-th INSERT, before COMMIT, or after a delay."""
    rng = random.Random(seed + 1)  # noqa: S311 - reproducible kill points, not secrets
    kinds = ["row", "row", "row", "row", "commit", "timer", "timer", "timer"]
    return [(kind, rng.randint(1, STAGING), rng.uniform(0.0, 0.3)) for kind in kinds]


@pytest.mark.parametrize(("kind", "row", "delay"), staging_plan(SEED))
def test_a_kill_inside_add_users_stages_all_of_its_users_or_none(tmp_path, kind, row, delay):
    db = tmp_path / "import.db"
    store = SQLiteStore(db)
    service = ImportService(store)
    service.new_operation("admin")
    service.add_users(workers.users(STAGED_BEFORE, start=USERS))
    command = [sys.executable, workers.SCRIPT, "stage", str(db), str(STAGING)]
    if kind == "row":
        command += ["--kill-row", str(row)]
    if kind == "commit":
        command += ["--kill-commit", "2"]  # the first COMMIT ends add_users' read-only check
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as p:
        assert p.stdout is not None
        if kind == "timer" and p.stdout.readline() == "started\n":
            time.sleep(delay)
            p.send_signal(signal.SIGKILL)
        _, err = p.communicate(timeout=60)
    context = f"IMPORTSTATE_FAULT_SEED={SEED} {kind} {row} {delay:.3f}"
    if kind != "timer":
        assert p.returncode == -signal.SIGKILL, f"{context}: {err}"

    operation = service.current_operation()
    assert operation is not None
    staged = staged_records(store, operation.id)
    assert len(staged) in {STAGED_BEFORE, STAGED_BEFORE + STAGING}, context
    assert operation.count.total == len(staged), context
    assert operation.count.users == len(staged), context
    if kind != "timer":
        assert len(staged) == STAGED_BEFORE, context
    # The store is usable after the kill: the next call stages normally.
    service.add_users(workers.users(1, start=USERS + STAGED_BEFORE + STAGING))
    assert len(staged_records(store, operation.id)) == len(staged) + 1


# -- a whole import into the built-in target: users, channels, messages ----------------------

#: 1,000 users (20 batches), 250 channels (5) and 10,000 messages (20 of 500).
WHOLE = {"users": 1_000, "channels": 250, "messages": 10_000}
#: Store COMMITs before the first batch of each phase (start, then a batch per COMMIT).
PHASE_BATCHES = {"users": (1, 20), "channels": (21, 25), "messages": (26, 45)}
KILLS_PER_PHASE = 4
#: Where a kill before a batch's COMMIT leaves the stored status: in its phase, or the one
#: before when the batch is the phase's first.
PHASE_STEPS = {
    "users": {"importer_importing_users"},
    "channels": {"importer_importing_users", "importer_importing_channels"},
    "messages": {"importer_importing_channels", "importer_importing_messages"},
}


def whole_import(service: ImportService) -> None:
    """Stage the whole import, with a failure of each type the target gives.

    User 999 repeats user 0's email (a duplicate); channel 249 repeats
    channel 0's name; every 101st message names a channel that does not
    exist, every 103rd one the duplicate user.
    """
    people = [{"username": f"user{n}", "emails": [f"user{n % 999}@example.com"],
               "importIds": [f"u{n}"]} for n in range(WHOLE["users"])]
    rooms = [{"importIds": [f"c{n}"], "name": f"room-{n % 249}",
              "users": [f"u{(n + k) % WHOLE['users']}" for k in range(3)]}
             for n in range(WHOLE["channels"])]
    posts = [{"importIds": [f"m{n}"],
              "rid": "nowhere" if n % 101 == 0 else f"c{n % 200}",
              "u": {"_id": "u999" if n % 103 == 0 else f"u{n % 998}"},
              "msg": f"message {n}", "ts": 1_700_000_000_000 + n}
             for n in range(WHOLE["messages"])]
    service.new_operation("admin")
    service.add_messages(posts)  # staged out of run order: the run orders the phases
    service.add_users(people)
    service.add_channels(rooms)


def target_rows(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """What the built-in target holds: each table's keys (and every membership)."""
    conn = sqlite3.connect(db)
    try:
        return {
            "users": conn.execute("SELECT import_id, email FROM users ORDER BY 1").fetchall(),
            "channels": conn.execute("SELECT import_id, name FROM channels ORDER BY 1").fetchall(),
            "members": conn.execute("SELECT channel, user FROM members ORDER BY 1, 2").fetchall(),
            "messages": conn.execute(
                "SELECT import_id, channel, author FROM messages ORDER BY 1").fetchall(),
        }
    finally:
        conn.close()


def whole_outcome(db: Path) -> tuple[Any, ...]:
    store = SQLiteStore(db)
    try:
        operation = ImportService(store).current_operation()
        assert operation is not None
        failed = sorted((r.data_type, r.data["importIds"][0], tuple(e["message"] for e in r.errors))
                        for r in staged_records(store, operation.id))
        return operation.status, operation.count.to_wire(), failed, target_rows(db)
    finally:
        store.close()


def whole_plan(seed: int) -> list[tuple[str, str, int, int]]:
    """``(phase, kind, n, row)`` kill points, ``KILLS_PER_PHASE`` in each phase.

    ``inside`` and ``after`` kill in the n-th importer batch (``inside``
    before its row-th INSERT); ``commit`` before the store's n-th COMMIT
    (the n-th batch's); the fourth kill of a phase is one of the three, drawn.
    """
    rng = random.Random(seed + 2)  # noqa: S311 - reproducible kill points, not secrets
    kinds = ("inside", "after", "commit")
    return [
        (phase, kind, rng.randint(first, last), rng.randint(1, 40))
        for phase, (first, last) in PHASE_BATCHES.items()
        for kind in (*kinds, rng.choice(kinds))
    ]


def start_whole_worker(db: Path, kind: str, n: int, row: int) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, workers.SCRIPT, "work", str(db), str(db) + ".unused"]
    if kind in {"inside", "after"}:
        command += ["--target", kind, "--kill-batch", str(n), "--kill-user", str(row)]
    else:
        command += ["--target", "none", "--kill-commit", str(n + 1)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_sigkilled_whole_imports_resume_to_the_uninterrupted_rows_of_the_built_in_target(
    tmp_path,
):
    reference = tmp_path / "reference.db"
    whole_import(ImportService(SQLiteStore(reference)))
    ended = start_whole_worker(reference, "none", 10_000, 0)
    assert ended.returncode == 0, ended.stderr
    expected = whole_outcome(reference)
    status, count, failed, rows = expected
    assert status == "importer_done"
    assert count["completed"] + count["error"] == count["total"] == sum(WHOLE.values())
    assert {kind for kind, _, _ in failed} == {"user", "channel", "message"}
    assert len(rows["users"]) == WHOLE["users"] - 1
    assert len(rows["channels"]) == WHOLE["channels"] - 1
    assert 0 < len(rows["messages"]) < WHOLE["messages"]
    assert rows["members"], "the channels' members are imported"

    for number, (phase, kind, n, row) in enumerate(whole_plan(SEED)):
        context = f"IMPORTSTATE_FAULT_SEED={SEED} whole import {number}: {phase} {kind} {n} {row}"
        db = tmp_path / f"whole{number}.db"
        whole_import(ImportService(SQLiteStore(db)))
        ended = start_whole_worker(db, kind, n, row)
        assert ended.returncode == -signal.SIGKILL, f"{context}: {ended.stderr}"
        store = SQLiteStore(db)
        operation = ImportService(store).current_operation()
        assert operation is not None
        assert operation.state is State.IMPORTING, context
        if kind != "commit":  # killed in the importer: the phase it was in is the one stored
            assert operation.status == f"importer_importing_{phase}", context
        else:  # before a batch's COMMIT: the batch before it is the last one stored
            assert operation.status in PHASE_STEPS[phase], context
        store.close()
        resumed = start_whole_worker(db, "none", 10_000, 0)  # runs, or resumes, to the end
        assert resumed.returncode == 0, f"{context}: {resumed.stderr}"
        assert whole_outcome(db) == expected, context
