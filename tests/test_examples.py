"""The README's FastAPI example: an import's progress streamed over Server-Sent Events."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

import anyio
import httpx
import pytest
from example_modules import load

from importstate import ImportService, MemoryStore, OperationAlreadyFinished
from importstate.aio import AsyncImportService

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="module")
def example() -> ModuleType:
    return load("fastapi_progress")


class Importer:
    """Fails user 3; ``pause`` seconds a batch; ``started`` is set with the first batch."""

    def __init__(self, pause: float) -> None:
        self.pause = pause
        self.started = threading.Event()

    def import_batch(self, users: list[dict[str, Any]]) -> list[BaseException | None]:
        self.started.set()
        time.sleep(self.pause)
        return [ValueError("taken") if u["importIds"] == ["3"] else None for u in users]


def users(count: int) -> list[dict[str, Any]]:
    return [{"emails": [f"u{n}@example.com"], "importIds": [str(n)]} for n in range(count)]


def parse(stream: str) -> list[tuple[str, Any]]:
    messages = []
    for block in stream.strip().split("\n\n"):
        kind, data = block.split("\n")
        assert kind.startswith("event: ")
        assert data.startswith("data: ")
        messages.append((kind.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return messages


async def start(example: ModuleType, importer: Importer, count: int) -> httpx.AsyncClient:
    service = ImportService(MemoryStore(), {"api": importer}, batch_size=2)
    app = example.create_app(AsyncImportService(service), interval=0.005)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")
    staged = await client.post("/imports", json=users(count))
    assert staged.status_code == 200
    assert staged.json()["state"] == "ready"
    return client


async def while_streaming(
    client: httpx.AsyncClient, action: Callable[[], Awaitable[httpx.Response]],
) -> tuple[list[tuple[str, Any]], httpx.Response]:
    """``action()`` done while the event stream is open; the stream's messages and its answer."""
    streamed: list[str] = []

    async def listen() -> None:
        streamed.append((await client.get("/imports/events")).text)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(listen)
        await anyio.sleep(0.05)  # the stream has begun
        answer = await action()
    return parse(streamed[0]), answer


async def test_the_event_stream_follows_a_run_to_its_end(example):
    client = await start(example, Importer(0.01), 9)
    messages, started = await while_streaming(client, lambda: client.post("/imports/run"))
    assert started.status_code == 202
    assert messages[0] == ("status", {"state": "ready", "operation": messages[0][1]["operation"]})
    assert messages[-1][0] == "state"
    assert (messages[-1][1]["after"], messages[-1][1]["state"]) == ("importer_done", "done")
    batches = [data["batch"] for kind, data in messages if kind == "batch"]
    assert sum(b["completed"] for b in batches) == 8
    assert sum(b["error"] for b in batches) == 1
    assert messages[-1][1]["count"] == {"completed": 8, "error": 1, "total": 9}
    await client.aclose()


async def test_cancel_stops_the_run_and_ends_the_stream(example):
    importer = Importer(0.02)
    client = await start(example, importer, 400)

    async def run_then_cancel() -> httpx.Response:
        await client.post("/imports/run")
        await anyio.to_thread.run_sync(importer.started.wait)
        return await client.post("/imports/cancel")

    messages, cancelled = await while_streaming(client, run_then_cancel)
    # The answer comes once the run has stopped, the batch in hand committed.
    operation = cancelled.json()["operation"]
    assert operation["status"] == "importer_import_cancelled"
    assert 0 < operation["count"]["completed"] < 400
    last_kind, last = messages[-1]
    assert (last_kind, last["state"]) == ("state", "canceled")
    refused = await client.post("/imports/cancel")  # nothing left to cancel
    assert refused.status_code == 400
    assert refused.json()["detail"] == str(OperationAlreadyFinished())
    await client.aclose()
