"""Events: what subscribe() delivers, when, in which thread, and what a raising listener does."""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from importstate import (
    BatchCommitted,
    DataType,
    ImportService,
    MemoryStore,
    OperationAlreadyFinished,
    ProgressStep,
    SQLiteStore,
    StateChanged,
    Store,
)


def user(number: int) -> dict[str, Any]:
    return {"username": f"u{number}", "emails": [f"u{number}@example.com"],
            "importIds": [f"user-{number}"]}


def channel(number: int) -> dict[str, Any]:
    return {"importIds": [f"room-{number}"], "name": f"room{number}"}


def message(number: int, rooms: int) -> dict[str, Any]:
    return {"importIds": [f"msg-{number}"], "rid": f"room-{number % rooms}",
            "u": {"_id": "user-0"}, "msg": f"hello {number}", "ts": 1_700_000_000_000 + number}


class Importer:
    """Imports every type; the records whose first import id is in ``fails`` fail."""

    def __init__(self, fails: frozenset[str] = frozenset()) -> None:
        self.fails = fails

    def _verdicts(self, records: list[dict[str, Any]]) -> list[BaseException | None]:
        return [ValueError("refused") if r["importIds"][0] in self.fails else None
                for r in records]

    import_batch = import_channels = import_messages = _verdicts


@attrs.define
class Replayed:
    """An operation as the events tell it."""

    status: ProgressStep
    valid: bool
    completed: int
    error: int


def replay(events: list[Any]) -> dict[str, Replayed]:
    """Rebuild each operation's status and counts from the events alone.

    Each event must follow on from the one before it for its operation: a
    state change starts where the last one ended, and a batch's counts add
    up to the operation's. So an event lost, repeated or out of order fails.
    """
    operations: dict[str, Replayed] = {}
    for event in events:
        op = event.operation
        known = operations.get(op.id)
        if isinstance(event, StateChanged):
            assert event.before == (known.status if known else None), event
            assert event.after is op.status
            if known is not None and event.after is not ProgressStep.IMPORTING_STARTED:
                # Only starting a run resets the counts; every other change keeps them.
                assert (known.completed, known.error) == (
                    op.count.get("completed"), op.count.get("error")), event
            operations[op.id] = Replayed(op.status, op.valid, op.count.get("completed"),
                                         op.count.get("error"))
        else:
            assert isinstance(event, BatchCommitted)
            assert known is not None
            assert event.completed + event.error > 0
            known.completed += event.completed
            known.error += event.error
            assert (known.completed, known.error) == (
                op.count.get("completed"), op.count.get("error")), event
    return operations


def stored(service: ImportService) -> dict[str, Replayed]:
    return {
        op.id: Replayed(op.status, op.valid, op.count.get("completed"), op.count.get("error"))
        for op in service.latest_operations(100)
    }


#: What a listener does to the run when it hears of a given batch.
INTERRUPTIONS = ("cancel", "clear", "new_operation")


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    users = draw(st.integers(1, 9))
    channels = draw(st.integers(0, 3))
    return {
        "store": draw(st.sampled_from(["memory", "sqlite"])),
        "users": users,
        "channels": channels,
        "messages": draw(st.integers(0, 8)) if channels else 0,
        "batch_size": draw(st.integers(1, 4)),
        "message_batch_size": draw(st.integers(1, 5)),
        "fails": draw(st.frozensets(st.sampled_from([f"user-{n}" for n in range(users)]
                                                    + ["room-0", "msg-1", "msg-2"]))),
        "interrupt": draw(st.none() | st.tuples(st.sampled_from(INTERRUPTIONS),
                                                st.integers(1, 6))),
        "second_run": draw(st.booleans()),
    }


def play(scenario: dict[str, Any], store: Store,
         hook: Callable[[Any], object] | None = None) -> tuple[ImportService, list[Any]]:
    """Run the scenario on ``store``; the service and the events a listener got.

    ``hook`` is called with each event as it is delivered, before the
    scenario's interruption (if any) writes.
    """
    service = ImportService(
        store, {"api": Importer(scenario["fails"])}, batch_size=scenario["batch_size"],
        message_batch_size=scenario["message_batch_size"],
    )
    events: list[Any] = []
    interrupt = scenario["interrupt"]

    def listen(event: object) -> None:
        events.append(event)
        if hook is not None:
            hook(event)
        batches = sum(isinstance(e, BatchCommitted) for e in events)
        if interrupt is not None and isinstance(event, BatchCommitted) \
                and batches == interrupt[1]:
            # A listener writing through the service, from inside the run's commit.
            getattr(service, interrupt[0])(*(["admin"] if interrupt[0] == "new_operation"
                                             else []))

    service.subscribe(listen)
    for _ in range(2 if scenario["second_run"] else 1):
        service.new_operation("admin")
        service.add_users([user(n) for n in range(scenario["users"])])
        service.add_channels([channel(n) for n in range(scenario["channels"])])
        service.add_messages([message(n, scenario["channels"])
                              for n in range(scenario["messages"])])
        service.run()
    return service, events


@contextmanager
def a_store(kind: str) -> Iterator[Store]:
    with tempfile.TemporaryDirectory() as scratch:
        store = MemoryStore() if kind == "memory" else SQLiteStore(Path(scratch) / "events.db")
        yield store
        store.close()


@given(scenarios())
@settings(max_examples=60, deadline=None)
def test_the_events_replayed_rebuild_every_operations_status_and_counts(scenario):
    with a_store(scenario["store"]) as store:
        service, events = play(scenario, store)
        assert replay(events) == stored(service)


def test_a_whole_import_in_events(import_service):
    events: list[Any] = []
    import_service.subscribe(events.append)
    import_service.batch_size = 2
    first = import_service.new_operation("admin")
    import_service.add_users([user(n) for n in range(5)])
    done = import_service.run(importer=Importer(frozenset({"user-3"})))
    changes = [(e.before, e.after) for e in events if isinstance(e, StateChanged)]
    assert changes == [
        (None, ProgressStep.NEW),
        (ProgressStep.NEW, ProgressStep.USER_SELECTION),
        (ProgressStep.USER_SELECTION, ProgressStep.IMPORTING_STARTED),
        (ProgressStep.IMPORTING_STARTED, ProgressStep.IMPORTING_USERS),
        (ProgressStep.IMPORTING_USERS, ProgressStep.FINISHING),
        (ProgressStep.FINISHING, ProgressStep.DONE),
    ]
    batches = [(e.data_type, e.completed, e.error) for e in events
               if isinstance(e, BatchCommitted)]
    assert batches == [(DataType.USER, 2, 0), (DataType.USER, 1, 1), (DataType.USER, 1, 0)]
    assert events[-1].operation == done
    assert {e.operation.id for e in events} == {first.id}


def test_cancel_and_clear_are_state_changes_and_clear_keeps_the_status(import_service):
    events: list[Any] = []
    import_service.subscribe(events.append)
    import_service.new_operation("admin")
    import_service.cancel()
    with pytest.raises(OperationAlreadyFinished):
        import_service.cancel()  # refused: nothing stored, nothing told
    import_service.clear()
    cancelled, cleared = events[1:]
    assert (cancelled.before, cancelled.after) == (ProgressStep.NEW, ProgressStep.IMPORT_CANCELLED)
    assert (cleared.before, cleared.after) == (ProgressStep.IMPORT_CANCELLED,) * 2
    assert cleared.operation.valid is False
    assert len(events) == 3


def test_events_are_delivered_after_the_commit_in_the_committing_thread(tmp_path):
    path = tmp_path / "after.db"
    service = ImportService(SQLiteStore(path), {"api": Importer()}, batch_size=1)
    other = ImportService(SQLiteStore(path))  # another connection: sees committed data only
    seen: list[tuple[int, Any, Any]] = []

    def listen(event: Any) -> None:
        seen.append((threading.get_ident(), event, other.current_operation()))

    service.subscribe(listen)
    service.new_operation("admin")
    service.add_users([user(n) for n in range(3)])
    runner = threading.Thread(target=service.run)
    runner.start()
    runner.join()
    run_events = seen[2:]
    assert run_events
    for thread, event, committed in run_events:
        assert thread == runner.ident
        assert committed is not None
        # What the event tells is committed: another connection sees it (or later).
        assert committed.status.position >= event.operation.status.position
        assert committed.count.get("completed") >= event.operation.count.get("completed")
        assert committed.updated_at >= event.operation.updated_at


def test_a_raising_listener_is_logged_and_breaks_nothing(import_service, caplog):
    heard: list[Any] = []

    def broken(_event: Any) -> None:
        raise RuntimeError("listener bug")

    import_service.subscribe(broken)
    import_service.subscribe(heard.append)
    with caplog.at_level(logging.ERROR, logger="importstate.events"):
        import_service.new_operation("admin")
        import_service.add_users([user(n) for n in range(3)])
        done = import_service.run()
    assert done.status is ProgressStep.DONE
    assert done.count.get("completed") == 3
    raised = [r for r in caplog.records if r.name == "importstate.events"]
    assert len(raised) == len(heard) == 7  # two before the run, five of it
    assert all(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in raised)
    assert raised[0].operation_id == done.id


def test_unsubscribe_stops_delivery_and_may_be_called_twice(import_service):
    heard: list[Any] = []
    unsubscribe = import_service.subscribe(heard.append)
    twice: list[Any] = []
    import_service.subscribe(twice.append)
    import_service.subscribe(twice.append)
    import_service.new_operation("admin")
    unsubscribe()
    unsubscribe()
    import_service.clear()
    assert len(heard) == 1
    assert len(twice) == 4  # subscribed twice, told twice


def test_with_nobody_subscribed_no_event_is_built(import_service):
    refuse = mock.Mock(side_effect=AssertionError("an event was built"))
    with mock.patch("importstate._bus.StateChanged", refuse), \
            mock.patch("importstate._run.ledger.BatchCommitted", refuse):
        import_service.new_operation("admin")
        import_service.add_users([user(n) for n in range(120)])
        assert import_service.run().status is ProgressStep.DONE
    refuse.assert_not_called()


def test_parallel_workers_deliver_in_commit_order_from_their_threads(postgres_dsn, schema):
    from importstate.stores.postgres import PostgresStore  # noqa: PLC0415 - needs psycopg

    store = PostgresStore(postgres_dsn, schema=schema, max_connections=8)
    service = ImportService(store, {"api": Importer(frozenset({"user-7", "user-30"}))},
                            batch_size=3)
    events: list[Any] = []
    threads: set[str] = set()

    def listen(event: Any) -> None:
        events.append(event)
        if isinstance(event, BatchCommitted):
            threads.add(threading.current_thread().name)

    service.subscribe(listen)
    service.new_operation("admin")
    service.add_users([user(n) for n in range(40)])
    done = service.run(workers=4)
    store.close()
    assert done.status is ProgressStep.DONE
    final = Replayed(ProgressStep.DONE, valid=True, completed=38, error=2)
    assert replay(events) == {done.id: final}
    assert sum(isinstance(e, BatchCommitted) for e in events) == 14
    assert all(name.startswith("importstate-worker-") for name in threads)


def test_loading_a_file_and_pending_downloads_are_told_as_state_changes(tmp_path):
    from importstate.loaders.samples import write_csv_export  # noqa: PLC0415 - this test's

    class NoAvatars:
        def pending_downloads(self, _kind: Any) -> list[Any]:
            return []

        def downloaded(self, *_args: Any, **_kwargs: Any) -> None:
            raise AssertionError

    service = ImportService(MemoryStore(), {"csv": Importer(frozenset())})
    events: list[Any] = []
    service.subscribe(events.append)
    export = write_csv_export(tmp_path / "export.zip", users=3, channels=1, messages=4)
    loaded = service.load_file(export.path, "csv")
    changes = [(e.before, e.after) for e in events if isinstance(e, StateChanged)]
    assert changes[0] == (None, ProgressStep.NEW)
    assert changes[-1][1] == ProgressStep.USER_SELECTION
    assert [after for _, after in changes][1:4] == [
        ProgressStep.UPLOADING, ProgressStep.FILE_LOADED, ProgressStep.PREPARING_STARTED,
    ]
    assert events[-1].operation == loaded
    events.clear()
    done = service.begin_pending("avatars", NoAvatars())
    assert [e.after for e in events if isinstance(e, StateChanged)][-1] == ProgressStep.DONE
    assert events[-1].operation == done
