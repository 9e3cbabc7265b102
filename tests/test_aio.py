"""AsyncImportService: the service's methods awaited, and a cancelled run cancels the import."""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio
import pytest

from importstate import (
    BatchCommitted,
    ImportService,
    MemoryStore,
    OperationNotFound,
    ProgressStep,
    SQLiteStore,
    StateChanged,
)
from importstate.aio import AsyncImportService

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


def users(count: int) -> list[dict[str, Any]]:
    return [{"emails": [f"u{n}@example.com"], "importIds": [f"user-{n}"]} for n in range(count)]


class Slow:
    """A batch importer taking ``pause`` seconds a batch, in whichever thread calls it."""

    def __init__(self, pause: float = 0.02) -> None:
        self.pause = pause
        self.batches = 0
        self.threads: set[int] = set()

    def import_batch(self, batch: list[dict[str, Any]]) -> list[BaseException | None]:
        self.threads.add(threading.get_ident())
        time.sleep(self.pause)
        self.batches += 1
        return [None] * len(batch)


async def test_the_methods_awaited_do_what_the_services_do(tmp_path):
    importer = Slow(0)
    svc = AsyncImportService(ImportService(SQLiteStore(tmp_path / "aio.db"), {"api": importer}))
    assert await svc.status() == {"state": "none"}
    with pytest.raises(OperationNotFound):
        await svc.progress()
    created = await svc.new_operation("admin")
    await svc.add_users(users(3))
    await svc.add_channels([{"importIds": ["room"], "name": "room"}])
    assert (await svc.status())["state"] == "ready"
    assert (await svc.selection()).users[0].user_id == "user-0"

    class Failing(Slow):
        def import_batch(self, batch: list[dict[str, Any]]) -> list[BaseException | None]:
            self.threads.add(threading.get_ident())
            return [ValueError("taken")] * len(batch)

        def import_channels(self, rooms: list[dict[str, Any]]) -> list[BaseException | None]:
            return [None] * len(rooms)

    failing = Failing(0)
    done = await svc.run(importer=failing)
    assert (done.id, done.status, done.count.get("error")) == (created.id, ProgressStep.DONE, 3)
    assert threading.get_ident() not in failing.threads  # the loop's thread waited on nothing
    staged = [record async for record in svc.staged_users()]
    assert [r["data"]["importIds"] for r in staged] == [["user-0"], ["user-1"], ["user-2"]]
    assert (await svc.progress())["count"] == {"completed": 1, "total": 4, "error": 3}
    assert [op.id for op in await svc.latest_operations()] == [created.id]


async def test_cancelling_an_awaited_run_cancels_the_import_at_the_next_batch():
    importer = Slow(0.02)
    service = ImportService(MemoryStore(), {"api": importer}, batch_size=1)
    svc = AsyncImportService(service)
    await svc.new_operation("admin")
    await svc.add_users(users(200))
    with anyio.move_on_after(0.15) as scope:
        await svc.run()
    assert scope.cancelled_caught
    # The cancellation came back once the run had stopped: nothing is imported after it.
    stopped = await svc.current_operation()
    batches = importer.batches
    await anyio.sleep(0.1)
    assert importer.batches == batches
    assert stopped is not None
    assert stopped.status is ProgressStep.IMPORT_CANCELLED
    # The batch in hand when the run was cancelled was committed: counts are whole batches.
    assert 0 < stopped.count.get("completed") == batches < 200


async def test_a_cancelled_call_before_its_run_began_leaves_no_run_behind():
    svc = AsyncImportService(ImportService(MemoryStore(), {"api": Slow(0)}))
    await svc.new_operation("admin")
    await svc.add_users(users(2))
    with anyio.CancelScope() as scope:
        scope.cancel()
        await svc.run()
    current = await svc.current_operation()
    assert current is not None
    assert current.status is ProgressStep.USER_SELECTION  # neither started nor cancelled


async def test_watch_as_an_async_iterator_follows_a_run():
    service = ImportService(MemoryStore(), {"api": Slow(0.01)}, batch_size=2)
    svc = AsyncImportService(service)
    await svc.new_operation("admin")
    await svc.add_users(users(10))
    seen: list[Any] = []

    async def follow() -> None:
        async for event in svc.watch(interval=0.005):
            seen.append(event)
            if isinstance(event, StateChanged) and event.after is ProgressStep.DONE:
                return

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(follow)
        await anyio.sleep(0.05)  # the watch starts from the ready operation
        await svc.run()
    assert seen[-1].after is ProgressStep.DONE
    assert sum(e.completed for e in seen if isinstance(e, BatchCommitted)) == 10
