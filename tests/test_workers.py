"""Parallel runs on PostgreSQL: ``run(workers=N)``, batch leases, and ``importstate worker``.

In one process: four threads really import at once, each user reaches the
importer once, and a concurrent reader only ever sees whole-batch counts and
``done`` last; cancel and invalidation stop every worker after the batch in
hand; resume redoes only the batches not done; a store without batch claims
refuses ``workers=2``. Across processes: four ``importstate worker``
processes share one operation while one of them is SIGKILLed mid-batch.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import workers
from workers import users

from importstate import (
    ImportService,
    MemoryStore,
    PostgresStore,
    ProgressStep,
    SQLiteStore,
    State,
    WorkersUnsupported,
)

WAIT = 60  # seconds a process or thread waits before the test is declared stuck


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
            time.sleep(self.pause)  # I/O wait: the other workers import meanwhile
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
    current = service.current_operation()
    assert current is not None
    assert current.status is ProgressStep.USER_SELECTION
    assert service.run(ConcurrentImporter()).status is ProgressStep.DONE
