"""Resume, heartbeat and stale detection, one worker per run, errors kept (in one process).

A crash is simulated by :class:`Crash`, a ``BaseException`` nothing in the
run loop catches, raised just before or just after each store transaction
commits: every point a process can die at, as far as the store can tell.
``test_faults.py`` does the same with real processes and SIGKILL.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import workers

from importstate import (
    ImporterNotDefined,
    ImportService,
    InvalidOperationStatus,
    MemoryStore,
    OperationNotFound,
    ProgressStep,
    SQLiteStore,
    State,
    Store,
)
from importstate.cli import main as cli_main
from importstate.service import MAX_ERROR_MESSAGE
from importstate.stores import Transaction

BATCH = 2
USERS = 7  # four batches, the last one short; user 0 fails (workers.fails)


class Crash(BaseException):
    """The process dies here: nothing in importstate catches it."""


class CrashingStore:
    """A store that dies just before (rolled back) or just after its n-th write commits."""

    def __init__(
        self, inner: Store, *, before: int = 0, after: int = 0, error: type = Crash,
    ) -> None:
        self.inner = inner
        self.before, self.after, self.error = before, after, error
        self.commits = 0

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self.inner.transaction() as tx:
            yield tx
            self.commits += 1
            if self.commits == self.before:
                raise self.error("died before a commit")
        if self.commits == self.after:
            raise self.error("died after a commit")

    def reading(self) -> Any:
        return self.inner.reading()

    def close(self) -> None:
        self.inner.close()


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def tick(self, **amount: float) -> None:
        self.now += dt.timedelta(**amount)


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request, tmp_path) -> Callable[[], Store]:
    count = iter(range(10_000))

    def make() -> Store:
        if request.param == "memory":
            return MemoryStore()
        return SQLiteStore(tmp_path / f"store{next(count)}.db")

    return make


def ready(store: Store, users: int = USERS) -> None:
    service = ImportService(store)
    service.new_operation("admin")
    service.add_users(workers.users(users))


def outcome(store: Store) -> tuple[Any, ...]:
    """What a finished run leaves: status, counts, and each staged user with its errors."""
    operation = ImportService(store).current_operation()
    assert operation is not None
    staged = [
        (r["data"]["importIds"][0], [e["message"] for e in r.get("errors", [])])
        for r in ImportService(store).staged_records()
    ]
    return operation.status, operation.valid, operation.count, staged


def finish(store: Store, importer: workers.KeyedImporter) -> None:
    """Recover after a crash as a restarted process would: run if never started, else resume."""
    service = ImportService(store, {"api": importer}, batch_size=BATCH, message_batch_size=BATCH)
    operation = service.current_operation()
    assert operation is not None
    if operation.state is State.READY:
        service.run()
    elif operation.state is State.IMPORTING:
        service.resume()


def ready_with_every_type(store: Store) -> None:
    """5 users (3 batches), 3 channels (2) and 5 messages (3), staged out of run order."""
    service = ImportService(store)
    service.new_operation("admin")
    service.add_messages(workers.messages(5, 194, room="key-000100"))  # key-000194 fails
    service.add_channels(workers.channels(3, 100))
    service.add_users(workers.users(5))


@pytest.mark.parametrize(("stage", "writes"), [
    (ready, 7),  # start, importing_users, four batches (the last one's moves on), done
    (ready_with_every_type, 11),  # start, importing_users, 3 + 2 + 3 batches, done
], ids=["users", "every type"])
def test_a_crash_at_any_commit_then_resume_gives_exactly_the_uninterrupted_result(
    make_store, tmp_path, stage, writes,
):
    def service_on(store: Store, record: Any) -> ImportService:
        return ImportService(store, {"api": workers.KeyedImporter(record)},
                             batch_size=BATCH, message_batch_size=BATCH)

    reference = make_store()
    stage(reference)
    service_on(reference, tmp_path / "ref").run()
    expected = outcome(reference)
    assert expected[0] is ProgressStep.DONE
    staged, failed = expected[2].get("total"), expected[2].get("error")
    assert failed >= 1  # user 0 (and a message)
    points = [("before", n) for n in range(1, writes + 1)]
    points += [("after", n) for n in range(1, writes)]
    for when, n in points:
        store = make_store()
        stage(store)
        record = tmp_path / f"record-{when}-{n}"
        with pytest.raises(Crash):
            service_on(CrashingStore(store, **{when: n}), record).run()
        finish(store, workers.KeyedImporter(record))
        assert outcome(store) == expected, (when, n)
        seen = workers.record_of(record)
        assert set(seen["imported"].values()) == {1}, (when, n)
        assert len(seen["imported"]) == staged - failed, (when, n)
        assert sum(seen["reached"].values()) <= staged + BATCH, (when, n)


def test_resume_hands_the_importer_the_in_flight_batch_again_and_nothing_before_it(make_store):
    store = make_store()
    ready(store)
    handed: list[str] = []

    def dies_in_batch_three(user: dict[str, Any]) -> None:
        handed.append(user["importIds"][0])
        if len(handed) == 2 * BATCH + 1:
            raise Crash

    with pytest.raises(Crash):
        ImportService(store, {"api": dies_in_batch_three}, batch_size=BATCH).run()
    again: list[str] = []
    importer = {"api": lambda u: again.append(u["importIds"][0])}
    operation = ImportService(store, importer, batch_size=BATCH).resume()
    assert operation.status is ProgressStep.DONE
    assert again == [f"key-{n:06d}" for n in range(2 * BATCH, USERS)]
    assert operation.count.get("completed") + operation.count.get("error") == USERS


def test_resume_refuses_what_is_not_an_importing_operation(make_store):
    store = make_store()
    service = ImportService(store, {"api": lambda _u: None})
    with pytest.raises(OperationNotFound):
        service.resume()
    ready(store)
    with pytest.raises(InvalidOperationStatus):
        service.resume()
    service.run()
    with pytest.raises(InvalidOperationStatus):
        service.resume()
    service.clear()
    with pytest.raises(OperationNotFound):
        service.resume()


def test_resume_needs_the_importer_of_the_operation(make_store):
    store = make_store()
    ready(store)
    with pytest.raises(Crash):
        ImportService(store, {"api": crash}).run()
    with pytest.raises(ImporterNotDefined):
        ImportService(store).resume()
    assert ImportService(store).resume(lambda _u: None).status is ProgressStep.DONE


def crash(_user: dict[str, Any]) -> None:
    raise Crash


def test_a_second_run_of_a_running_operation_is_refused(make_store):
    store = make_store()
    ready(store)
    service = ImportService(store, {"api": crash})
    with pytest.raises(Crash):
        service.run()
    with pytest.raises(InvalidOperationStatus):
        service.run()


def test_the_heartbeat_moves_with_every_batch(make_store):
    store = make_store()
    ready(store)
    clock = Clock()
    beats: list[dt.datetime | None] = []

    def importer(_user: dict[str, Any]) -> None:
        clock.tick(seconds=1)
        operation = ImportService(store).current_operation()
        assert operation is not None
        with store.reading() as tx:
            beats.append(tx.heartbeat(operation.id))

    ImportService(store, {"api": importer}, clock=clock, batch_size=BATCH).run()
    per_batch = beats[::BATCH]
    assert len(per_batch) == 4
    assert all(a is not None and b is not None and a < b for a, b in itertools.pairwise(per_batch))


def stalled(make_store) -> tuple[Store, Clock, ImportService]:
    """An operation whose worker died in its second batch, on a hand-moved clock."""
    store = make_store()
    ready(store)
    clock = Clock()
    calls = iter(range(100))

    def dies(_user: dict[str, Any]) -> None:
        if next(calls) == BATCH:
            raise Crash

    with pytest.raises(Crash):
        ImportService(store, {"api": dies}, clock=clock, batch_size=BATCH).run()
    return store, clock, ImportService(store, {"api": lambda _u: None}, clock=clock)


def test_stale_operations_are_the_importing_ones_with_an_old_heartbeat(make_store):
    _, clock, service = stalled(make_store)
    limit = dt.timedelta(minutes=5)
    clock.tick(minutes=4)
    assert service.stale_operations(limit) == []
    clock.tick(minutes=2)
    [stale] = service.stale_operations(older_than=limit)
    assert stale.state is State.IMPORTING
    service.cancel()
    assert service.stale_operations(limit) == []


def test_sweep_fails_a_stale_operation_and_keeps_why(make_store):
    _, clock, service = stalled(make_store)
    clock.tick(hours=25)
    [failed] = service.sweep_stale(dt.timedelta(hours=24), action="fail")
    assert failed.status is ProgressStep.IMPORT_FAILED
    assert failed.failure is not None
    assert "no heartbeat for 1 day, 0:00:00" in failed.failure.message
    assert failed.failure.at == clock.now
    status = service.status()
    assert status["state"] == "error"
    assert status["operation"]["failure"]["message"] == failed.failure.message
    assert service.sweep_stale(dt.timedelta(hours=24), action="fail") == []


def test_sweep_resumes_a_stale_operation_once(make_store):
    _, clock, service = stalled(make_store)
    assert service.sweep_stale(dt.timedelta(minutes=5)) == []
    clock.tick(minutes=6)
    [done] = service.sweep_stale(dt.timedelta(minutes=5), action="resume")
    assert done.status is ProgressStep.DONE
    assert done.count.get("completed") + done.count.get("error") == USERS
    assert service.sweep_stale(dt.timedelta(minutes=5)) == []


def test_a_second_sweeper_leaves_alone_an_operation_the_first_one_resumed(make_store):
    store, clock, _ = stalled(make_store)
    clock.tick(minutes=6)
    paused, release = threading.Event(), threading.Event()

    def slow(_user: dict[str, Any]) -> None:
        paused.set()
        assert release.wait(10)

    first = ImportService(store, {"api": slow}, clock=clock, batch_size=BATCH)
    swept: list[Any] = []
    limit = dt.timedelta(minutes=5)
    sweeper = threading.Thread(target=lambda: swept.extend(first.sweep_stale(limit)))
    sweeper.start()
    assert paused.wait(10)
    second = ImportService(store, {"api": crash}, clock=clock)
    assert second.sweep_stale(limit) == []
    assert second.sweep_stale(limit, action="fail") == []
    release.set()
    sweeper.join(10)
    assert [op.status for op in swept] == [ProgressStep.DONE]


def test_sweep_rejects_an_unknown_action(make_store):
    _, _, service = stalled(make_store)
    with pytest.raises(ValueError, match="resume"):
        service.sweep_stale(dt.timedelta(0), action="restart")  # type: ignore[arg-type]


def test_a_taken_over_worker_stops_without_committing_its_batch(make_store):
    store = make_store()
    ready(store, users=5 * BATCH)
    paused, release = threading.Event(), threading.Event()
    first: list[str] = []

    def slow(user: dict[str, Any]) -> None:
        first.append(user["importIds"][0])
        if len(first) == BATCH + 1:  # the first user of batch two
            paused.set()
            assert release.wait(10)

    ended: list[Any] = []
    worker = threading.Thread(
        target=lambda: ended.append(ImportService(store, {"api": slow}, batch_size=BATCH).run()),
    )
    worker.start()
    assert paused.wait(10)
    second: list[str] = []
    resumed = ImportService(
        store, {"api": lambda u: second.append(u["importIds"][0])}, batch_size=BATCH,
    ).resume()
    release.set()
    worker.join(10)
    assert resumed.status is ProgressStep.DONE
    assert resumed.count.get("completed") == 5 * BATCH
    # The old worker's batch two reached its importer, but only the new worker committed it.
    assert second == [f"key-{n:06d}" for n in range(BATCH, 5 * BATCH)]
    assert ended[0].count == resumed.count
    assert ImportService(store).current_operation() == resumed


def test_a_store_error_fails_the_run_and_the_message_is_kept(make_store):
    store = make_store()
    ready(store)
    failing = CrashingStore(store, before=3, error=RuntimeError)
    operation = ImportService(failing, {"api": lambda _u: None}, batch_size=BATCH).run()
    assert operation.status is ProgressStep.IMPORT_FAILED
    assert operation.failure is not None
    assert operation.failure.message == "died before a commit"
    status = ImportService(store).status()
    assert status["operation"]["failure"]["message"] == "died before a commit"


def run_with(store: Store, importer: Any) -> list[dict[str, Any]]:
    ready(store)
    ImportService(store, {"api": importer}, batch_size=BATCH).run()
    return list(ImportService(store).staged_users())


def test_a_huge_importer_message_is_cut(make_store):
    def verbose(_user: dict[str, Any]) -> None:
        raise ValueError("x" * 1_000_000)

    staged = run_with(make_store(), verbose)
    assert len(staged) == USERS
    message = staged[0]["errors"][0]["message"]
    assert message == "x" * MAX_ERROR_MESSAGE + "… (truncated)"


def test_a_password_is_masked_in_every_stored_error(make_store):
    def echoes(user: dict[str, Any]) -> None:
        msg = f"cannot import {user!r}"
        raise ValueError(msg)

    for record in run_with(make_store(), echoes):
        message = record["errors"][0]["message"]
        assert record["data"]["password"] not in message
        assert "'password': '[password]'" in message


def test_a_password_is_masked_even_in_an_error_for_the_whole_batch(make_store):
    class Everyone:
        def import_batch(self, batch: list[dict[str, Any]]) -> list[BaseException | None]:
            raise RuntimeError(" ".join(u["password"] for u in batch) + " " + "y" * 5000)

    staged = run_with(make_store(), Everyone())
    for record in staged:
        message = record["errors"][0]["message"]
        assert "hunter2" not in message
        assert message.startswith("[password] ")  # the last batch has one user
        assert message.endswith("… (truncated)")


def test_the_command_line_shows_failures_without_passwords(tmp_path, capsys):
    store = SQLiteStore(tmp_path / "cli.db")

    def echoes(user: dict[str, Any]) -> None:
        msg = f"cannot import {user!r}"
        raise ValueError(msg)

    run_with(store, echoes)
    store.close()
    for output in ([], ["--json"]):
        assert cli_main(["failures", "--db", str(tmp_path / "cli.db"), *output]) == 0
        out = capsys.readouterr().out
        assert "cannot import" in out
        assert "hunter2" not in out


# -- the command line ----------------------------------------------------------------------


def crashed_import(db: str) -> None:
    """A SQLite file whose import died in its second batch, a moment ago."""
    store = SQLiteStore(db)
    ready(store)
    calls = iter(range(100))

    def dies(_user: dict[str, Any]) -> None:
        if next(calls) == BATCH:
            raise Crash

    with pytest.raises(Crash):
        ImportService(store, {"api": dies}, batch_size=BATCH).run()
    store.close()


def test_importstate_resume_finishes_a_crashed_import(tmp_path, capsys):
    db = str(tmp_path / "cli.db")
    crashed_import(db)
    assert cli_main(["resume", "--db", db, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"] == "done"
    assert status["operation"]["count"]["completed"] == USERS
    assert cli_main(["resume", "--db", db]) == 1
    assert "error-invalid-operation-status" in capsys.readouterr().err


def test_importstate_sweep_fails_or_resumes_stale_imports(tmp_path, capsys):
    db = str(tmp_path / "cli.db")
    crashed_import(db)
    assert cli_main(["sweep", "--db", db]) == 0
    assert "no stale import" in capsys.readouterr().out
    time.sleep(0.01)
    assert cli_main(["sweep", "--db", db, "--older-than", "0", "--action", "fail", "--json"]) == 0
    [failed] = json.loads(capsys.readouterr().out)
    assert failed["status"] == "importer_import_failed"
    assert "no heartbeat" in failed["failure"]["message"]
    crashed_import(db)
    time.sleep(0.01)
    assert cli_main(["sweep", "--db", db, "--older-than", "0"]) == 0
    assert "done" in capsys.readouterr().out
    assert cli_main(["sweep", "--db", db, "--older-than", "-1"]) == 1
    assert "must not be negative" in capsys.readouterr().err
