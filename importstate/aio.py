"""The import service for asyncio (and any AnyIO event loop): the same methods, awaited.

:class:`AsyncImportService` wraps an :class:`~importstate.ImportService`:
each method runs the service's in a worker thread (``anyio.to_thread``), so
the event loop never waits on the store or the importer. A run awaited
(``await svc.run()``) and then cancelled (its task cancelled, a timeout)
cancels the import: the run stops at its next batch boundary, with the
batch in hand committed, and the cancellation is raised once it has.

Needs the ``aio`` extra (AnyIO: ``pip install 'importstate[aio]'``; the
``server`` extra brings it too); without it, importing this module raises
:class:`~importstate.MissingExtra`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import itertools
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, Literal, ParamSpec, TypeVar

from importstate._extras import needs

with needs("aio", "importstate.aio"):
    import anyio
    import anyio.to_thread

from importstate._polling import Poller
from importstate.documents import ProgressDocument, StatusDocument
from importstate.errors import OperationAlreadyFinished, OperationNotFound
from importstate.events import Listener, OperationEvent
from importstate.history import HistoryEntry
from importstate.importers import Importer
from importstate.model import Operation
from importstate.records import DataType
from importstate.selection import Offer, Selection
from importstate.service import LATEST_LIMIT, ImportService
from importstate.steps import ProgressStep

__all__ = ["AsyncImportService"]

_P = ParamSpec("_P")
_T = TypeVar("_T")

#: Staged records fetched per trip to the worker thread.
_PAGE: Final = 500


class AsyncImportService:
    """:class:`~importstate.ImportService`'s methods as coroutines, over ``service``.

    Every method is the service's of the same name (see its documentation
    for what it does and raises), awaited; ``subscribe``, ``importer_for``
    and the attributes (``service.store``, ``service.batch_size``, ...) stay
    synchronous. Listeners are called in the worker thread that commits.

    Args:
        service: the service to run in worker threads.
    """

    def __init__(self, service: ImportService) -> None:
        self.service = service

    async def _call(self, function: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        return await anyio.to_thread.run_sync(functools.partial(function, *args, **kwargs))

    # -- creating and filling --------------------------------------------------------------

    async def new_operation(
        self, user_id: str, *, type: str = "api", importer_key: str | None = None,  # noqa: A002
    ) -> Operation:
        """``ImportService.new_operation``."""
        return await self._call(
            self.service.new_operation, user_id, type=type, importer_key=importer_key,
        )

    async def clear(self) -> None:
        """``ImportService.clear``."""
        await self._call(self.service.clear)

    async def add_users(self, users: Sequence[Any]) -> Operation | None:
        """``ImportService.add_users``."""
        return await self._call(self.service.add_users, users)

    async def add_channels(self, channels: Sequence[Any]) -> Operation | None:
        """``ImportService.add_channels``."""
        return await self._call(self.service.add_channels, channels)

    async def add_messages(self, messages: Sequence[Any]) -> Operation | None:
        """``ImportService.add_messages``."""
        return await self._call(self.service.add_messages, messages)

    async def add_users_from(self, chunks: Iterable[Sequence[Any]]) -> Operation | None:
        """``ImportService.add_users_from``; ``chunks`` is iterated in the worker thread."""
        return await self._call(self.service.add_users_from, chunks)

    # -- file importers: the loading path --------------------------------------------------

    async def begin_loading(
        self, *, file: str | None = None, content_type: str | None = None,
    ) -> Operation:
        """``ImportService.begin_loading``."""
        return await self._call(self.service.begin_loading, file=file, content_type=content_type)

    async def advance(self, step: ProgressStep) -> Operation:
        """``ImportService.advance``."""
        return await self._call(self.service.advance, step)

    async def finish_loading(self) -> Operation:
        """``ImportService.finish_loading``."""
        return await self._call(self.service.finish_loading)

    async def stage(
        self, records: Sequence[Any], data_type: DataType | str = DataType.USER,
    ) -> Operation | None:
        """``ImportService.stage``."""
        return await self._call(self.service.stage, records, data_type)

    # -- running ---------------------------------------------------------------------------

    async def run(
        self,
        importer: Importer | None = None,
        *,
        workers: int = 1,
        selection: Selection | Mapping[str, Any] | None = None,
    ) -> Operation:
        """``ImportService.run``; cancelling the call cancels the import at its next batch."""
        return await self._cancellable(functools.partial(
            self.service.run, importer, workers=workers, selection=selection,
        ))

    async def work(self, importer: Importer | None = None, *, workers: int = 1) -> Operation:
        """``ImportService.work``; cancelling the call cancels the import at its next batch."""
        return await self._cancellable(functools.partial(
            self.service.work, importer, workers=workers,
        ))

    async def resume(self, importer: Importer | None = None, *, workers: int = 1) -> Operation:
        """``ImportService.resume``; cancelling the call cancels the import at its next batch."""
        return await self._cancellable(functools.partial(
            self.service.resume, importer, workers=workers,
        ))

    async def _cancellable(self, run: Callable[[], Operation]) -> Operation:
        """``run()`` in a worker thread; cancelled, cancel the operation and wait for the run."""
        current = await self._call(self.service.current_operation)
        ended = threading.Event()

        def running() -> Operation:
            try:
                return run()
            finally:
                ended.set()

        try:
            return await anyio.to_thread.run_sync(running, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                if current is not None:
                    await self._call(self._stop, current.id, ended)
            raise

    def _stop(self, operation_id: str, ended: threading.Event) -> None:
        """Cancel the operation of a cancelled call, if it is still current; wait for the run."""
        current = self.service.current_operation()
        if current is not None and current.id == operation_id:
            # It may have ended (or been replaced) meanwhile: then the run stops of itself.
            with contextlib.suppress(OperationAlreadyFinished, OperationNotFound):
                self.service.cancel()
        ended.wait()

    async def cancel(self) -> Operation:
        """``ImportService.cancel``."""
        return await self._call(self.service.cancel)

    async def stale_operations(self, older_than: dt.timedelta) -> list[Operation]:
        """``ImportService.stale_operations``."""
        return await self._call(self.service.stale_operations, older_than)

    async def sweep_stale(
        self,
        older_than: dt.timedelta,
        action: Literal["resume", "fail"] = "resume",
        importer: Importer | None = None,
    ) -> list[Operation]:
        """``ImportService.sweep_stale``."""
        return await self._call(self.service.sweep_stale, older_than, action, importer)

    async def fail(self, operation_id: str, error: BaseException) -> Operation:
        """``ImportService.fail``."""
        return await self._call(self.service.fail, operation_id, error)

    async def prune(self, *, keep: int = 0, older_than: dt.timedelta | None = None) -> int:
        """``ImportService.prune``."""
        return await self._call(self.service.prune, keep=keep, older_than=older_than)

    # -- reading ---------------------------------------------------------------------------

    @staticmethod
    def acting(actor: str) -> contextlib.AbstractContextManager[None]:
        """``ImportService.acting``: holds in this task, and the worker threads it awaits."""
        return ImportService.acting(actor)

    async def history(self, operation_id: str | None = None) -> list[HistoryEntry]:
        """``ImportService.history``."""
        return await self._call(self.service.history, operation_id)

    async def current_operation(self) -> Operation | None:
        """``ImportService.current_operation``."""
        return await self._call(self.service.current_operation)

    async def status(self) -> StatusDocument:
        """``ImportService.status``."""
        return await self._call(self.service.status)

    async def latest_operations(self, limit: int = LATEST_LIMIT) -> list[Operation]:
        """``ImportService.latest_operations``."""
        return await self._call(self.service.latest_operations, limit)

    async def progress(self) -> ProgressDocument:
        """``ImportService.progress``."""
        return await self._call(self.service.progress)

    async def selection(self) -> Offer:
        """``ImportService.selection``."""
        return await self._call(self.service.selection)

    async def staged_records(
        self, data_type: DataType | str | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """``ImportService.staged_records``, fetched a page at a time in the worker thread."""
        records = self.service.staged_records(data_type)  # nothing is read until iterated
        while page := await self._call(_take, records, _PAGE):
            for record in page:
                yield record

    def staged_users(self) -> AsyncIterator[dict[str, Any]]:
        """``ImportService.staged_users``, as :meth:`staged_records`."""
        return self.staged_records(DataType.USER)

    def importer_for(self, key: str) -> Importer:
        """``ImportService.importer_for`` (no store work: not a coroutine)."""
        return self.service.importer_for(key)

    # -- events ----------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """``ImportService.subscribe``: ``listener`` is called in the committing worker thread."""
        return self.service.subscribe(listener)

    async def watch(self, interval: float = 1.0) -> AsyncIterator[OperationEvent]:
        """``ImportService.watch``: the store read every ``interval`` seconds in a worker thread.

        It starts from what is stored when iteration begins.
        """
        poller = await self._call(Poller, self.service.store)
        while True:
            await anyio.sleep(interval)
            for event in await self._call(poller.poll):
                yield event


def _take(records: Iterator[_T], count: int) -> list[_T]:
    return list(itertools.islice(records, count))
