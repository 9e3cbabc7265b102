"""watch(): a process following, by polling the store, a run made by another process."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from hypothesis import given, settings
from test_events import a_store, play, scenarios

from importstate import (
    BatchCommitted,
    DataType,
    ImportService,
    MemoryStore,
    ProgressStep,
    SQLiteStore,
    StateChanged,
)
from importstate._polling import Poller

#: The other process: runs the current operation, slowly, failing every user whose id ends in 3.
RUNNER = """
import sys, time
from importstate import ImportService, SQLiteStore

class Slow:
    def import_batch(self, users):
        time.sleep(0.05)
        return [ValueError("no") if u["importIds"][0].endswith("3") else None for u in users]

ImportService(SQLiteStore(sys.argv[1]), {"api": Slow()}, batch_size=2).run()
"""


def users(count: int) -> list[dict[str, Any]]:
    return [{"emails": [f"u{n}@example.com"], "importIds": [f"user-{n}"]} for n in range(count)]


def follow(watching: Iterator[Any], *, until: ProgressStep) -> list[Any]:
    events: list[Any] = []
    deadline = time.monotonic() + 30
    for event in watching:
        events.append(event)
        if isinstance(event, StateChanged) and event.after is until:
            break
        assert time.monotonic() < deadline, events
    return events


def test_watch_follows_a_run_in_another_process(tmp_path):
    path = tmp_path / "watched.db"
    service = ImportService(SQLiteStore(path))
    operation = service.new_operation("admin")
    service.add_users(users(14))
    watching = service.watch(interval=0.01)  # from what is stored now: the ready operation
    child = subprocess.Popen([sys.executable, "-c", RUNNER, str(path)])
    try:
        events = follow(watching, until=ProgressStep.DONE)
    finally:
        child.wait(30)
    assert child.returncode == 0
    assert {event.operation.id for event in events} == {operation.id}
    changes = [e for e in events if isinstance(e, StateChanged)]
    # Each change starts where the one before ended, from the stored ready operation on.
    chain = [ProgressStep.USER_SELECTION] + [e.after for e in changes]
    assert [e.before for e in changes] == chain[:-1]
    assert chain[-1] is ProgressStep.DONE
    batches = [e for e in events if isinstance(e, BatchCommitted)]
    assert len(batches) > 1  # followed batch by batch, not only at the end
    assert {e.data_type for e in batches} == {DataType.USER}
    assert sum(e.completed for e in batches) == 12
    assert sum(e.error for e in batches) == 2  # user-3 and user-13
    final = service.current_operation()
    assert final is not None
    assert changes[-1].operation == final


def test_watch_sees_a_new_operation_and_the_old_one_invalidated():
    store = MemoryStore()
    service = ImportService(store)
    old = service.new_operation("admin")
    watching = service.watch(interval=0)
    elsewhere = ImportService(store)  # another service object: not a listener's business
    new = elsewhere.new_operation("admin")
    invalidated, created = next(watching), next(watching)
    assert (invalidated.operation.id, invalidated.before, invalidated.after) == (
        old.id, ProgressStep.NEW, ProgressStep.NEW)
    assert invalidated.operation.valid is False
    assert (created.operation, created.before, created.after) == (new, None, ProgressStep.NEW)


def told(event: Any) -> tuple[object, ...]:
    """What an event says, but the operation's other fields."""
    if isinstance(event, StateChanged):
        return "state", event.operation.id, event.operation.valid, event.before, event.after
    return "batch", event.operation.id, event.data_type, event.completed, event.error


@given(scenarios())
@settings(max_examples=40, deadline=None)
def test_watch_read_after_every_commit_tells_what_subscribe_tells(scenario):
    with a_store(scenario["store"]) as store:
        poller = Poller(store)
        polled: list[Any] = []
        _, events = play(scenario, store, hook=lambda _event: polled.extend(poller.poll()))
        assert [told(e) for e in polled] == [told(e) for e in events]
