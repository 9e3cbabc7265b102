"""History: each stored status change recorded in the change's own transaction, with its actor."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import json
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import attrs
import pytest
import workers
from clocks import Clock

from importstate import (
    HistoryEntry,
    HistoryUnsupported,
    ImportService,
    MemoryStore,
    Operation,
    OperationNotFound,
    PostgresStore,
    ProgressStep,
    SQLiteStore,
    Store,
)
from importstate._history import UNEXPLAINED, entries
from importstate.aio import AsyncImportService
from importstate.pending import PendingDownload, PendingKind
from importstate.stores import HistoryTransaction, Transaction

S = ProgressStep


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request, tmp_path) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "sqlite":
        opened: Store = SQLiteStore(tmp_path / "history.db")
    else:
        opened = PostgresStore(request.getfixturevalue("postgres_dsn"),
                               schema=request.getfixturevalue("schema"))
    yield opened
    opened.close()


def service(store: Store, **options: Any) -> ImportService:
    importer = lambda _user: None  # noqa: E731
    return ImportService(store, {"api": importer, "csv": importer}, clock=Clock(), **options)


def moves(entries: list[HistoryEntry]) -> list[tuple[str | None, str, str, str]]:
    """``(from, to, event, actor)`` of each entry, step names as stored."""
    wires = map(HistoryEntry.to_wire, entries)
    return [(wire["from"], wire["to"], wire["event"], wire["actor"]) for wire in wires]


def assert_chained(entries: list[HistoryEntry], status: ProgressStep) -> None:
    """Each entry starts where the one before ended; the first is the creation, last ``status``."""
    assert entries[0].before is None
    assert entries[0].event == "create"
    for earlier, later in itertools.pairwise(entries):
        assert later.before is earlier.after
        assert later.at >= earlier.at
    assert entries[-1].after is status


def test_a_run_records_each_stored_change_once_in_order(store):
    svc = service(store, batch_size=2)
    with svc.acting("user:alice"):
        svc.new_operation("admin")
        svc.add_users(workers.users(7))  # four batches: none of them changes the status
        svc.add_users(workers.users(2, start=7))  # ready stays ready: nothing recorded
        done = svc.run()
    history = svc.history()
    assert moves(history) == [
        (None, "importer_new", "create", "user:alice"),
        ("importer_new", "importer_user_selection", "stage", "user:alice"),
        ("importer_user_selection", "importer_importing_started", "start", "user:alice"),
        ("importer_importing_started", "importer_importing_users", "advance", "run"),
        ("importer_importing_users", "importer_finishing", "advance", "run"),
        ("importer_finishing", "importer_done", "finish", "run"),
    ]
    assert_chained(history, done.status)
    assert {entry.operation_id for entry in history} == {done.id}
    assert history[0].at == done.ts
    assert history[-1].at == done.updated_at


def test_one_write_through_several_transitions_records_each_at_its_time(store):
    svc = service(store)
    source = _Pending([])
    created = svc.begin_pending(PendingKind.FILES, source)
    assert created.status is S.DONE  # nothing to fetch: done at once, in one write
    assert moves(svc.history()) == [
        (None, "importer_new", "create", "library"),
        ("importer_new", "importer_importing_files", "download", "library"),
        ("importer_importing_files", "importer_finishing", "advance", "library"),
        ("importer_finishing", "importer_done", "finish", "library"),
    ]
    assert {entry.at for entry in svc.history()} == {created.updated_at}


def test_pending_downloads_are_begun_by_the_caller_and_fetched_by_the_run(store, tmp_path):
    svc = service(store)
    source = _Pending([PendingDownload(PendingKind.FILES, "f1", "https://files.example/1")])
    with svc.acting("user:alice"):
        ended = svc.download_pending(
            PendingKind.FILES, source=source, fetch=lambda _url, out: out.write(b"x"),
            files_dir=tmp_path,
        )
    assert ended.status is S.DONE
    assert moves(svc.history())[1:] == [
        ("importer_new", "importer_importing_files", "download", "user:alice"),
        ("importer_importing_files", "importer_finishing", "advance", "run"),
        ("importer_finishing", "importer_done", "finish", "run"),
    ]


def test_loading_a_file_records_its_steps(store):
    svc = service(store)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as members:
        members.writestr("users.csv", "ann,ann@example.com,Ann\n")
    archive.seek(0)
    with svc.acting("cli:root"):
        ready = svc.load_file(archive, "csv", file_name="users.zip")
    history = svc.history()
    assert [entry.after for entry in history] == [
        S.NEW, S.UPLOADING, S.FILE_LOADED, S.PREPARING_STARTED, S.USER_SELECTION,
    ]
    assert [entry.event for entry in history] == [
        "create", "begin_loading", "advance", "advance", "finish_loading",
    ]
    assert {entry.actor for entry in history} == {"cli:root"}
    assert_chained(history, ready.status)


def test_cancel_and_a_newer_operation_record_who_did_it(store):
    svc = service(store)
    with svc.acting("user:bob"):
        first = svc.new_operation("admin")
    with svc.acting("user:carol"):
        svc.cancel()
        second = svc.new_operation("admin")
    assert moves(svc.history(first.id))[1:] == [
        ("importer_new", "importer_import_cancelled", "cancel", "user:carol"),
        ("importer_import_cancelled", "importer_import_cancelled", "invalidate",
         f"operation:{second.id}"),
    ]
    with svc.acting("user:dave"):
        svc.clear()
    assert moves(svc.history(second.id)) == [
        (None, "importer_new", "create", "user:carol"),
        ("importer_new", "importer_new", "invalidate", "user:dave"),
    ]
    # Invalid now: the operation stays in error, and its history says why.
    assert svc.current_operation().valid is False


def test_a_run_stopped_by_a_newer_operation_fails_as_the_run(store):
    svc = service(store, batch_size=1)
    svc.new_operation("admin")
    svc.add_users(workers.users(3))
    newer: list[str] = []

    def replace_during_the_first_batch(batch: list[dict[str, Any]]) -> list[None]:
        if not newer:
            newer.append(svc.new_operation("admin").id)
        return [None] * len(batch)

    ended = svc.run(replace_during_the_first_batch)
    assert ended.status is S.IMPORT_FAILED
    assert moves(svc.history(ended.id))[-2:] == [
        ("importer_importing_users", "importer_importing_users", "invalidate",
         f"operation:{newer[0]}"),
        ("importer_importing_users", "importer_import_failed", "fail", "run"),
    ]


def test_the_steps_of_a_parallel_run_are_the_run_s(postgres_dsn, schema):
    svc = service(PostgresStore(postgres_dsn, schema=schema), batch_size=2)
    with svc.acting("user:alice"):
        svc.new_operation("admin")
        svc.add_users(workers.users(9))
        done = svc.run(workers=3)
    history = svc.history()
    assert [entry.actor for entry in history] == ["user:alice"] * 3 + ["run"] * 3
    assert_chained(history, done.status)


def test_resume_and_sweep_are_recorded_as_such(store):
    clock = Clock()
    svc = ImportService(store, {"api": lambda _user: None}, clock=clock, batch_size=2)

    def stall() -> str:
        svc.new_operation("admin")
        svc.add_users(workers.users(5))
        calls = itertools.count()

        def dies(batch: list[dict[str, Any]]) -> list[None]:
            if next(calls) == 1:
                raise _Died
            return [None] * len(batch)

        with pytest.raises(_Died):
            svc.run(dies)
        return svc.current_operation().id

    stalled = stall()
    svc.resume()
    assert moves(svc.history(stalled))[-2:] == [
        ("importer_importing_users", "importer_finishing", "advance", "resume"),
        ("importer_finishing", "importer_done", "finish", "resume"),
    ]
    stalled = stall()
    [failed] = svc.sweep_stale(dt.timedelta(0), action="fail")
    assert moves(svc.history(stalled))[-1] == (
        "importer_importing_users", "importer_import_failed", "fail", "sweep",
    )
    assert failed.id == stalled
    stalled = stall()
    [done] = svc.sweep_stale(dt.timedelta(0))
    assert done.status is S.DONE
    assert {entry.actor for entry in svc.history(stalled)[-2:]} == {"sweep"}


class _Died(BaseException):
    """The run's process dies here: nothing in importstate catches it."""


def test_history_of_another_operation_and_of_none(store):
    svc = service(store)
    with pytest.raises(OperationNotFound):
        svc.history()
    first = svc.new_operation("admin")
    svc.new_operation("admin")
    assert [entry.event for entry in svc.history(first.id)] == ["create", "invalidate"]
    with pytest.raises(OperationNotFound):
        svc.history("no-such-operation")


def test_pruning_an_operation_removes_its_history(store):
    svc = service(store)
    first = svc.new_operation("admin")
    svc.cancel()
    current = svc.new_operation("admin")
    assert svc.prune() == 1
    with pytest.raises(OperationNotFound):
        svc.history(first.id)
    with store.reading() as tx:
        assert isinstance(tx, HistoryTransaction)
        assert tx.history(first.id) == []
    assert [entry.event for entry in svc.history(current.id)] == ["create"]


class _FailingHistory:
    """A store whose history write fails (``history``), or whose commit then fails (``commit``)."""

    def __init__(self, inner: Store, where: str) -> None:
        self.inner, self.where, self.armed = inner, where, False

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self.inner.transaction() as tx:
            if self.armed and self.where == "history":
                appending = tx.append_history  # type: ignore[attr-defined]

                def append_then_fail(entries: Any) -> None:
                    appending(entries)
                    raise _StoreDown

                tx.append_history = append_then_fail  # type: ignore[attr-defined]
            yield tx
            if self.armed and self.where == "commit":
                raise _StoreDown

    def reading(self) -> Any:
        return self.inner.reading()

    def close(self) -> None:
        self.inner.close()


class _StoreDown(Exception):
    """The store failed between the status write and the commit."""


@pytest.mark.parametrize("where", ["history", "commit"])
def test_a_change_and_its_history_commit_together_or_not_at_all(store, where):
    failing = _FailingHistory(store, where)
    svc = service(failing)
    svc.new_operation("admin")
    failing.armed = True
    with pytest.raises(_StoreDown):
        svc.cancel()
    failing.armed = False
    assert svc.current_operation().status is S.NEW
    assert moves(svc.history()) == [(None, "importer_new", "create", "library")]
    svc.cancel()
    assert [entry.event for entry in svc.history()] == ["create", "cancel"]


def test_listeners_and_history_see_the_same_changes(store):
    svc = service(store)
    told: list[tuple[str | None, str]] = []
    svc.subscribe(lambda event: told.append(
        (getattr(event, "before", None), getattr(event, "after", None))))
    svc.new_operation("admin")
    svc.add_users(workers.users(3))
    svc.run()
    changes = [pair for pair in told if pair[1] is not None]
    assert changes == [(e.before, e.after) for e in svc.history()]
    assert [after for _, after in changes] == [
        S.NEW, S.USER_SELECTION, S.IMPORTING_STARTED, S.IMPORTING_USERS, S.FINISHING, S.DONE,
    ]


class _NoHistory:
    """A third-party store without the history capability."""

    def __init__(self) -> None:
        self.inner = MemoryStore()

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self.inner.transaction() as tx:
            yield _Plain(tx)

    def reading(self) -> Any:
        return self.transaction()

    def close(self) -> None:
        """Nothing to release."""


class _Plain:
    """Every method of the memory store's transaction but the history's."""

    def __init__(self, tx: Transaction) -> None:
        self._tx = tx

    def __getattr__(self, name: str) -> Any:
        if name in {"append_history", "history"}:
            raise AttributeError(name)
        return getattr(self._tx, name)


def test_a_store_without_history_works_and_says_it_keeps_none():
    store = _NoHistory()
    svc = service(store)
    svc.new_operation("admin")
    svc.add_users(workers.users(2))
    assert svc.run().status is S.DONE
    with pytest.raises(HistoryUnsupported, match="_NoHistory keeps no history"):
        svc.history()
    assert store.inner.history == {}


def test_an_actor_must_be_named(store):
    svc = service(store)
    with pytest.raises(ValueError, match="non-empty string"), svc.acting(""):
        pass


def test_the_async_service_records_its_task_s_actor(store):
    svc = AsyncImportService(service(store))

    async def main() -> list[HistoryEntry]:
        with svc.acting("user:erin"):
            await svc.new_operation("admin")
            await svc.add_users(workers.users(2))
        await svc.cancel()
        return await svc.history()

    assert moves(anyio.run(main)) == [
        (None, "importer_new", "create", "user:erin"),
        ("importer_new", "importer_user_selection", "stage", "user:erin"),
        ("importer_user_selection", "importer_import_cancelled", "cancel", "library"),
    ]


def test_an_entry_is_json_on_the_wire(store):
    svc = service(store)
    svc.new_operation("admin")
    [entry] = svc.history()
    wire = entry.to_wire()
    assert json.loads(json.dumps(wire)) == wire
    assert wire["at"].endswith("Z")


class _Pending:
    """A target with the given downloads pending; records what was fetched."""

    def __init__(self, downloads: list[PendingDownload]) -> None:
        self.downloads = downloads
        self.done: list[str] = []

    def pending_downloads(self, kind: PendingKind) -> list[PendingDownload]:
        del kind
        return [d for d in self.downloads if d.import_id not in self.done]

    def downloaded(
        self, kind: PendingKind, import_id: str, *, path: str | None = None,
        error: str | None = None,
    ) -> None:
        del kind, error
        if path is not None:
            self.done.append(import_id)


def test_a_change_the_machine_cannot_make_is_recorded_as_unexplained():
    done = Operation.create(user="admin", at=dt.datetime(2024, 5, 1, tzinfo=dt.UTC))
    done = attrs.evolve(done, status=S.DONE)
    back = attrs.evolve(done, status=S.NEW)
    [entry] = entries(done, back, "cli:ann")
    assert (entry.before, entry.after, entry.event, entry.actor) == (
        S.DONE, S.NEW, UNEXPLAINED, "cli:ann",
    )
