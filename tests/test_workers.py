"""Parallel runs on PostgreSQL: ``run(workers=N)``, batch leases, and ``importstate worker``.

In one process: four threads really import at once, each user reaches the
importer once, and a concurrent reader only ever sees whole-batch counts and
``done`` last; cancel and invalidation stop every worker after the batch in
hand; resume redoes only the batches not done; a lease is renewed while its
batch is in hand, and one taken over cannot commit; a store without batch
claims refuses ``workers=2``. Across processes: four ``importstate worker``
processes share one operation while one of them is SIGKILLed mid-batch, and
every command takes ``--dsn``.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import workers
from _postgres import drop_schema
from psycopg import sql
from workers import users

from importstate import (
    ImportService,
    MemoryStore,
    PostgresStore,
    ProgressStep,
    SQLiteStore,
    State,
    WorkersUnsupported,
    cli,
    http,
)
from importstate.errors import PostgresUnreachable

WAIT = 60  # seconds a process or thread waits before the test is declared stuck
DONE_LOG = """
    CREATE TABLE {schema}.done_log (at timestamptz NOT NULL DEFAULT clock_timestamp());
    CREATE FUNCTION {schema}.log_done() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN INSERT INTO {schema}.done_log DEFAULT VALUES; RETURN NEW; END $$;
    CREATE TRIGGER log_done AFTER UPDATE ON {schema}.operations FOR EACH ROW
        WHEN (NEW.doc LIKE '%"importer_done"%') EXECUTE FUNCTION {schema}.log_done()
"""


@pytest.fixture
def store(postgres_dsn: str, schema: str) -> Iterator[PostgresStore]:
    opened = PostgresStore(postgres_dsn, schema=schema, max_connections=12)
    yield opened
    opened.close()


class ConcurrentImporter:
    """A thread-safe batch importer that records each key's arrivals and the most threads in it."""

    def __init__(self, pause: float = 0.01) -> None:
        self.pause = pause
        self.reached: Counter[str] = Counter()
        self.batches = 0
        self.inside = 0
        self.most_inside = 0
        self._lock = threading.Lock()

    def import_batch(self, batch: list[dict[str, Any]]) -> list[BaseException | None]:
        with self._lock:
            self.inside += 1
            self.batches += 1
            self.most_inside = max(self.most_inside, self.inside)
            self.reached.update(user["importIds"][0] for user in batch)
        try:
            self.on_batch()
            # I/O wait per user: the other workers import meanwhile, and a short batch is quicker.
            time.sleep(self.pause * len(batch) / 50)
        finally:
            with self._lock:
                self.inside -= 1
        keys = [user["importIds"][0] for user in batch]
        return [workers.Rejected(key) if workers.fails(key) else None for key in keys]

    def on_batch(self) -> None:
        """Called on every batch before the import (tests act here)."""


def staged_service(store: PostgresStore, count: int, **options: Any) -> ImportService:
    service = ImportService(store, **options)
    service.new_operation("admin")
    service.add_users(users(count))
    return service


def expected_errors(count: int) -> int:
    return sum(workers.fails(f"key-{number:06d}") for number in range(count))


def test_four_threads_import_every_user_once_and_a_reader_sees_only_whole_batches(store):
    total = 4013  # 80 batches of 50 and a short last one of 13
    service = staged_service(store, total)
    importer = ConcurrentImporter()
    seen: list[tuple[ProgressStep, int, int]] = []
    done_too_early: list[int] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            operation = service.current_operation()
            assert operation is not None
            count = operation.count
            seen.append((operation.status, count.get("completed") + count.get("error"),
                         count.get("total")))
            if operation.status is ProgressStep.DONE and len(importer.reached) < total:
                done_too_early.append(len(importer.reached))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        ended = service.run(importer, workers=4)
    finally:
        stop.set()
        reader.join(WAIT)

    assert importer.most_inside == 4
    assert len(importer.reached) == total
    assert set(importer.reached.values()) == {1}
    assert ended.status is ProgressStep.DONE
    errors = expected_errors(total)
    assert ended.count.to_wire() == {
        "completed": total - errors, "error": errors, "total": total, "users": total,
    }
    assert not done_too_early
    assert len(seen) > 10  # the reader really read while the run went on
    for status, processed, staged_total in seen:
        assert processed % 50 == 0 or processed == staged_total, (status, processed)
        if status is ProgressStep.DONE:
            assert processed == staged_total
    # Only the failed users stay staged, with their errors.
    assert sum(1 for _ in service.staged_users()) == errors


class PhasedImporter(ConcurrentImporter):
    """Imports every type, and notes what was still unfinished when each batch arrived."""

    def __init__(self, service: ImportService) -> None:
        super().__init__(pause=0.005)
        self.service = service
        self.kinds: list[tuple[str, ProgressStep]] = []

    def _typed(self, kind: str, batch: list[dict[str, Any]]) -> list[BaseException | None]:
        operation = self.service.current_operation()
        assert operation is not None
        with self._lock:
            self.kinds.append((kind, operation.status))
        return self.import_batch(batch)

    def import_channels(self, batch: list[dict[str, Any]]) -> list[BaseException | None]:
        return self._typed("channel", batch)

    def import_messages(self, batch: list[dict[str, Any]]) -> list[BaseException | None]:
        return self._typed("message", batch)


def test_workers_commit_every_batch_of_a_phase_before_the_next_phase_is_handed_out(store):
    service = staged_service(store, 513)                          # users: 11 batches of 50
    service.add_channels(workers.channels(260, 100_000))          # channels: 6 batches
    service.add_messages(workers.messages(2345, 200_000, "key-100000"))  # messages: 5 of 500
    importer = PhasedImporter(service)
    seen: list[tuple[ProgressStep, int]] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            operation = service.current_operation()
            assert operation is not None
            count = operation.count
            seen.append((operation.status, count.get("completed") + count.get("error")))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        ended = service.run(importer, workers=4)
    finally:
        stop.set()
        reader.join(WAIT)

    total = 513 + 260 + 2345
    assert ended.status is ProgressStep.DONE
    assert set(importer.reached.values()) == {1}
    assert len(importer.reached) == total
    # A batch of channels (messages) reached the importer only once the users' (channels')
    # last batch had committed, which is what moves the run to the next phase.
    assert {(kind, status) for kind, status in importer.kinds} == {
        ("channel", ProgressStep.IMPORTING_CHANNELS), ("message", ProgressStep.IMPORTING_MESSAGES),
    }
    assert [kind for kind, _ in importer.kinds] == ["channel"] * 6 + ["message"] * 5
    allowed = {
        ProgressStep.IMPORTING_USERS: set(range(0, 513, 50)),
        ProgressStep.IMPORTING_CHANNELS: set(range(513, 773, 50)),
        ProgressStep.IMPORTING_MESSAGES: set(range(773, total, 500)),
        ProgressStep.DONE: {total},
    }
    for status, processed in seen:
        if status in allowed:
            assert processed in allowed[status], (status, processed)
    errors = sum(workers.fails(key) for key in importer.reached)
    assert ended.count.to_wire() == {
        "completed": total - errors, "error": errors, "total": total,
        "users": 513, "channels": 260, "messages": 2345,
    }
    assert sum(1 for _ in service.staged_records()) == errors


def test_workers_import_what_the_selection_keeps(store):
    service = staged_service(store, 120)
    service.add_channels(workers.channels(2, 100_000))
    service.add_messages([
        *workers.messages(30, 200_000, "key-100000"), *workers.messages(30, 300_000, "key-100001"),
    ])
    importer = PhasedImporter(service)
    chosen = [f"key-{n:06d}" for n in range(1, 120, 2)]
    ended = service.run(importer, workers=3, selection={
        "users": {"list": chosen}, "channels": {"list": ["key-100001"]},
    })
    assert ended.status is ProgressStep.DONE
    assert set(importer.reached) == {*chosen, "key-100001"} | {
        f"key-{n:06d}" for n in range(300_000, 300_030)
    }
    errors = sum(workers.fails(key) for key in importer.reached)  # key-000097 and key-300021
    assert ended.count.to_wire() == {
        "completed": 91 - errors, "error": errors, "total": 91,
        "users": 60, "channels": 1, "messages": 30,
    }
    assert sum(1 for _ in service.staged_records()) == errors, "only the failures are left"


def test_resume_joins_a_run_in_batches_in_its_channels_phase(store):
    service = staged_service(store, 60)
    service.add_channels(workers.channels(120, 100_000))
    importer = PhasedImporter(service)
    with store.transaction() as tx:  # a run whose users are done, its worker gone mid-channels
        operation = tx.current()
        assert operation is not None
        started = operation.fire("start", at=operation.updated_at)
        tx.update(started)
        for kind in ("user",):
            tx.cut_batches(operation.id, kind, 50)
    for batch_number in range(2):
        claimed = store.claim_batch(operation.id, "gone", 30)
        assert claimed is not None
        with store.transaction() as tx:
            left = tx.finish_batch(claimed[0])
            current = tx.get(operation.id)
            assert current is not None
            count = current.count.added(completed=len(claimed[1]))
            current = current.touched(current.updated_at, count=count)
            if left == 0:
                current = current.fire("advance", at=current.updated_at,
                                       step=ProgressStep.IMPORTING_CHANNELS)
                tx.cut_batches(operation.id, "channel", 50)
            tx.update(current)
        assert batch_number < 1 or left == 0
    ended = service.resume(importer, workers=2)
    assert ended.status is ProgressStep.DONE
    assert [kind for kind, _ in importer.kinds] == ["channel"] * 3
    assert ended.count.get("completed") + ended.count.get("error") == 180


def test_cancel_stops_every_worker_after_the_batch_in_hand(store):
    service = staged_service(store, 2000)
    importer = ConcurrentImporter(pause=0.005)
    started_before_cancel: list[int] = []

    def cancel_on_tenth() -> None:
        if importer.batches == 10:
            service.cancel()
            started_before_cancel.append(importer.batches)

    importer.on_batch = cancel_on_tenth  # type: ignore[method-assign]
    ended = service.run(importer, workers=4)

    assert ended.status is ProgressStep.IMPORT_CANCELLED
    # The three other workers may each have had one batch in hand, or just claimed one.
    assert importer.batches <= started_before_cancel[0] + 3
    processed = ended.count.get("completed") + ended.count.get("error")
    assert processed % 50 == 0
    assert 0 < processed <= importer.batches * 50
    assert service.current_operation() == ended


def test_invalidation_stops_every_worker_and_fails_the_run(store):
    service = staged_service(store, 2000)
    importer = ConcurrentImporter(pause=0.005)
    replaced: list[str] = []

    def replace_on_tenth() -> None:
        if importer.batches == 10:
            replaced.append(service.new_operation("admin").id)

    importer.on_batch = replace_on_tenth  # type: ignore[method-assign]
    ended = service.run(importer, workers=4)

    assert ended.status is ProgressStep.IMPORT_FAILED
    assert not ended.valid
    assert ended.failure is not None
    assert "cleared or replaced" in ended.failure.message
    assert importer.batches <= 10 + 3
    current = service.current_operation()
    assert current is not None
    assert current.id == replaced[0]
    assert current.status is ProgressStep.NEW


class Interrupted(BaseException):
    """Ends a worker thread the way a dying process would: nothing after it runs."""


def test_resume_redoes_only_the_batches_not_done(store):
    total = 1000
    service = staged_service(store, total, lease_seconds=0.5)
    first = ConcurrentImporter(pause=0)

    def die_in_sixth() -> None:
        if first.batches == 6:
            raise Interrupted

    first.on_batch = die_in_sixth  # type: ignore[method-assign]
    with pytest.raises(Interrupted):
        service.work(first)  # one worker, in this thread: batches 0-4 done, 5 leased
    interrupted = service.current_operation()
    assert interrupted is not None
    assert interrupted.state is State.IMPORTING
    assert interrupted.count.get("completed") + interrupted.count.get("error") == 250

    second = ConcurrentImporter(pause=0)
    ended = service.resume(second, workers=2)

    assert ended.status is ProgressStep.DONE
    assert set(second.reached) == {f"key-{number:06d}" for number in range(250, total)}
    assert set(second.reached.values()) == {1}
    errors = expected_errors(total)
    assert ended.count.to_wire() == {
        "completed": total - errors, "error": errors, "total": total, "users": total,
    }


def test_a_lease_is_renewed_while_the_importer_takes_longer_than_it(store):
    service = staged_service(store, 200, lease_seconds=0.3)
    importer = ConcurrentImporter(pause=0)

    def slow_second_batch() -> None:
        if importer.batches == 2:
            time.sleep(1.2)  # four leases long: the other worker must not take it over

    importer.on_batch = slow_second_batch  # type: ignore[method-assign]
    ended = service.run(importer, workers=2)

    assert ended.status is ProgressStep.DONE
    assert len(importer.reached) == 200
    assert set(importer.reached.values()) == {1}


def test_a_worker_whose_lease_was_taken_over_cannot_commit(store):
    staged_service(store, 120)
    with store.transaction() as tx:
        operation = tx.current()
        assert operation is not None
        tx.update(operation.fire("start", at=operation.updated_at))
        tx.cut_batches(operation.id, "user", 50)
    claimed = store.claim_batch(operation.id, "ghost", 0.05)
    assert claimed is not None
    ghost, records = claimed
    assert (ghost.number, len(records)) == (0, 50)
    # The last batch waits for the others; nobody else may have batch 0 while leased.
    taken = store.claim_batch(operation.id, "worker", 30)
    assert taken is not None
    assert taken[0].number == 1
    assert store.claim_batch(operation.id, "worker", 30) is None
    time.sleep(0.1)  # the ghost's lease expires
    retaken = store.claim_batch(operation.id, "worker", 30)
    assert retaken is not None
    assert retaken[0].number == 0
    with store.transaction() as tx:
        assert tx.finish_batch(ghost) is None
        assert tx.finish_batch(retaken[0]) == 2
        assert tx.finish_batch(retaken[0]) is None  # done already


def test_a_run_in_batches_of_no_users_is_done_at_once(store):
    service = ImportService(store)
    service.new_operation("admin")
    service.begin_loading(file="empty.csv")
    service.finish_loading()  # a file importer that staged nobody
    importer = ConcurrentImporter()
    ended = service.run(importer, workers=3)
    assert ended.status is ProgressStep.DONE
    assert importer.batches == 0


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_store_without_batch_claims_refuses_workers(kind, tmp_path):
    service = ImportService(MemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "db"))
    service.new_operation("admin")
    service.add_users(users(3))
    with pytest.raises(WorkersUnsupported, match="no batch claims"):
        service.run(ConcurrentImporter(), workers=2)
    with pytest.raises(ValueError, match="workers must be at least 1"):
        service.run(ConcurrentImporter(), workers=0)
    current = service.current_operation()
    assert current is not None
    assert current.status is ProgressStep.USER_SELECTION
    assert service.run(ConcurrentImporter()).status is ProgressStep.DONE


@pytest.fixture
def cli_schema(postgres_dsn: str) -> Iterator[str]:
    """The command line's schema (``importstate``) on the test server, empty, dropped afterwards."""
    drop_schema(postgres_dsn, "importstate")
    yield "importstate"
    drop_schema(postgres_dsn, "importstate")


# A worker process that imports half of its fifth batch, says so, and hangs there until killed.
HANGING_WORKER = """
import sys, time, pathlib
from importstate import cli, users_table

flag = pathlib.Path(sys.argv[1])
imports = users_table.UsersTableImporter.import_batch
calls = 0

def import_batch(self, users):
    global calls
    calls += 1
    if calls == 5:
        imports(self, users[:25])
        flag.touch()
        time.sleep(600)
    return imports(self, users)

users_table.UsersTableImporter.import_batch = import_batch
sys.exit(cli.main(sys.argv[2:]))
"""


def test_four_worker_processes_share_a_run_while_one_is_killed_mid_batch(
    postgres_dsn, cli_schema, tmp_path,
):
    total = 20_000
    schema = cli_schema
    store = PostgresStore(postgres_dsn, schema=schema)
    try:
        ImportService(store).new_operation("admin")
        # Without passwords: the built-in importer would spend most of the test hashing
        # 20,000 of them (tens of milliseconds each); this is about sharing the run.
        ImportService(store).add_users(
            [{k: v for k, v in u.items() if k != "password"} for u in users(total)],
        )
        # Every write that leaves the operation done is logged: the run must make exactly one.
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL(DONE_LOG).format(schema=sql.Identifier(schema)))
        dsn = postgres_dsn
        db, flag = tmp_path / "users.db", tmp_path / "hanging"
        common = ["worker", "--db", str(db), "--lease-seconds", "1", "--json"]
        env = {**os.environ, "IMPORTSTATE_DSN": dsn}
        victim = subprocess.Popen(
            [sys.executable, "-c", HANGING_WORKER, str(flag), *common],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        others = [
            subprocess.Popen(
                [sys.executable, "-m", "importstate", *common, "--dsn", dsn],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )
            for _ in range(3)
        ]
        deadline = time.monotonic() + WAIT
        while not flag.exists():
            assert time.monotonic() < deadline
            assert victim.poll() is None, victim.communicate()
            time.sleep(0.01)
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(WAIT) == -signal.SIGKILL
        finals = []
        for other in others:
            out, err = other.communicate(timeout=WAIT)
            assert other.returncode == 0, err.decode()
            finals.append(json.loads(out))
        ended = ImportService(store).current_operation()
    finally:
        store.close()
    with psycopg.connect(postgres_dsn) as conn:
        logged = conn.execute(sql.SQL("SELECT count(*) FROM {}.done_log").format(
            sql.Identifier(schema))).fetchone()

    assert ended is not None
    assert ended.status is ProgressStep.DONE
    assert all(final == ended.to_wire() for final in finals)
    assert ended.count.get("completed") + ended.count.get("error") == total
    assert ended.count.get("completed") == total
    with sqlite3.connect(db) as imported:
        rows = imported.execute("SELECT count(DISTINCT import_id) FROM users").fetchone()
    assert rows == (total,)
    assert logged == (1,)


@pytest.mark.usefixtures("cli_schema")
def test_every_command_takes_dsn_and_run_takes_workers(postgres_dsn, tmp_path, capsys):
    db, users_file = tmp_path / "users.db", tmp_path / "users.json"
    users_file.write_text(json.dumps(users(130)))
    dsn = ["--dsn", postgres_dsn, "--db", str(db)]

    assert cli.main(["new", "--user", "admin", *dsn]) == 0
    assert cli.main(["add-users", str(users_file), *dsn]) == 0
    assert cli.main(["run", "--workers", "3", "--json", *dsn]) == 0
    capsys.readouterr()
    os.environ["IMPORTSTATE_DSN"] = postgres_dsn
    try:
        assert cli.main(["status", "--json", "--db", str(db)]) == 0
    finally:
        del os.environ["IMPORTSTATE_DSN"]
    status = json.loads(capsys.readouterr().out)
    assert status["operation"]["status"] == "importer_done"
    assert status["operation"]["count"]["completed"] == 130
    # The operations live in PostgreSQL; the imported users in the --db file.
    with sqlite3.connect(db) as imported:
        assert imported.execute("SELECT count(*) FROM users").fetchone() == (130,)
        tables = {name for (name,) in imported.execute("SELECT name FROM sqlite_master")}
    assert "operations" not in tables


def test_workers_without_dsn_and_an_unreachable_dsn_are_one_line_errors(tmp_path, capsys):
    db = str(tmp_path / "importstate.db")
    assert cli.main(["new", "--user", "admin", "--db", db]) == 0
    assert cli.main(["run", "--workers", "2", "--db", db]) == 1
    assert "SQLiteStore cannot share a run between workers" in capsys.readouterr().err
    assert cli.main(["worker", "--db", db]) == 1
    assert "no batch claims" in capsys.readouterr().err
    unreachable = "host=127.0.0.1 port=1 connect_timeout=2"
    for command in ("status", "serve"):
        assert cli.main([command, "--dsn", unreachable, "--db", db]) == 1
        err = capsys.readouterr().err
        assert err.startswith("importstate: --dsn: cannot connect to PostgreSQL")
        assert err.count("\n") == 1


def test_serve_on_an_unreachable_dsn_raises_postgres_unreachable(tmp_path):
    with pytest.raises(PostgresUnreachable) as raised:
        http.serve(tmp_path / "importstate.db", dsn="host=127.0.0.1 port=1 connect_timeout=2")
    assert "\n" not in raised.value.reason
    assert str(raised.value) == f"--dsn: cannot connect to PostgreSQL: {raised.value.reason}"
