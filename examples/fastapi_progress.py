r"""An importer service on FastAPI that streams an import's progress over Server-Sent Events.

Run it with ``uvicorn --factory examples.fastapi_progress:main`` (``pip
install fastapi uvicorn``; the database is ``$IMPORTSTATE_DB``, else
``imports.db``), then::

    curl -X POST localhost:8000/imports -H 'content-type: application/json' \
         -d '[{"username": "ann", "emails": ["ann@example.com"], "importIds": ["1"]}]'
    curl -N localhost:8000/imports/events &      # the stream, until the import ends
    curl -X POST localhost:8000/imports/run      # start it; /imports/cancel stops it

``/imports/events`` polls the store (``watch``), so it follows a run made by
any process on the same database: another worker of this app, ``importstate
run``, ``importstate serve``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from importstate import (
    BatchCommitted,
    ImportService,
    ImportStateError,
    OperationEvent,
    SQLiteStore,
    StateChanged,
    StatusDocument,
)
from importstate.aio import AsyncImportService
from importstate.steps import TERMINAL_STEPS

#: Seconds between two reads of the store by an event stream.
POLL_INTERVAL = 0.5

_log = logging.getLogger("importer")


def import_user(user: dict[str, Any]) -> None:
    """Create one user in your system; raise to fail just this user."""


def create_app(service: AsyncImportService, *, interval: float = POLL_INTERVAL) -> FastAPI:
    """The app over ``service``; a run started here is a task of the app's event loop."""
    app = FastAPI(title="importer")
    runs: set[asyncio.Task[object]] = set()

    @app.post("/imports")
    async def stage(users: list[dict[str, Any]]) -> StatusDocument:
        """Start a new operation with these users staged."""
        await service.new_operation("api")
        await service.add_users(users)
        return await service.status()

    @app.post("/imports/run", status_code=202)
    async def run() -> StatusDocument:
        """Start importing in the background; the event stream shows how it goes."""
        task: asyncio.Task[object] = asyncio.create_task(service.run())
        runs.add(task)
        task.add_done_callback(lambda done: _ended(runs, done))
        await asyncio.sleep(0)  # let the run start before the answer
        return await service.status()

    @app.post("/imports/cancel")
    async def cancel() -> StatusDocument:
        """Cancel the import: a run of this process stops at its next batch, as any other."""
        for task in list(runs):
            task.cancel()  # AsyncImportService cancels the import, then the task ends
        if not runs:
            await service.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
        return await service.status()

    @app.get("/imports/events")
    async def events() -> StreamingResponse:
        """``text/event-stream``: the status now, then each change until the import ends."""
        return StreamingResponse(stream(service, interval), media_type="text/event-stream")

    @app.exception_handler(ImportStateError)
    async def refused(_request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, 400)

    return app


def _ended(runs: set[asyncio.Task[object]], task: asyncio.Task[object]) -> None:
    runs.discard(task)
    if not task.cancelled() and (error := task.exception()) is not None:
        _log.error("the import could not run: %s", error)


async def stream(service: AsyncImportService, interval: float) -> AsyncIterator[str]:
    """The status now, then an event message per change, until the operation has ended."""
    yield message("status", dict(await service.status()))
    async for event in service.watch(interval=interval):
        yield message(*as_message(event))
        if isinstance(event, StateChanged) and event.after in TERMINAL_STEPS:
            return


def as_message(event: OperationEvent) -> tuple[str, dict[str, object]]:
    """An event's name in the stream (``state`` or ``batch``) and its data."""
    count = event.operation.count
    progress = {name: count.get(name) for name in ("completed", "error", "total")}
    if isinstance(event, BatchCommitted):
        batch = {"dataType": event.data_type.value, "completed": event.completed,
                 "error": event.error}
        return "batch", {"batch": batch, "count": progress}
    return "state", {"operation": event.operation.id, "before": event.before,
                     "after": event.after, "state": event.operation.state, "count": progress}


def message(kind: str, data: dict[str, object]) -> str:
    """One Server-Sent Events message."""
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n"


def main() -> FastAPI:
    """The app on ``$IMPORTSTATE_DB`` (``uvicorn --factory``)."""
    store = SQLiteStore(os.environ.get("IMPORTSTATE_DB", "imports.db"))
    return create_app(AsyncImportService(ImportService(store, {"api": import_user})))
