"""Every writing transaction of a service: its history recorded, its events delivered.

Every transaction that writes operations is opened through
:meth:`Bus.transaction`. Each stored change of an operation's status or
validity is noted as it is written; just before the store commits, the
changes' :class:`~importstate.history.HistoryEntry` rows are appended in the
same transaction (when the store keeps history), so a change and its history
commit or roll back together. With listeners, the changes are also noted as
:class:`~importstate.events.StateChanged` events (the run adds its
:class:`~importstate.events.BatchCommitted`), and once the store has
committed, the notes go to every listener in the committing thread. A lock
held from the transaction's start to the end of its delivery keeps the
deliveries of a process's threads in their commit order; it is taken before
the store's write lock, so a listener may itself write through the service
(what it commits is delivered after the events before it).

A store without history and a service without listeners get the store's own
transaction, and nothing else happens.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar, cast

from importstate import _history
from importstate.events import Listener, OperationEvent, StateChanged
from importstate.history import HistoryEntry
from importstate.model import Operation
from importstate.stores import (
    Batch,
    BatchTransaction,
    HistoryTransaction,
    NewRecord,
    Pending,
    StagedRecord,
    Transaction,
)

_log = logging.getLogger("importstate.events")

_Tx = TypeVar("_Tx", bound=Transaction)


class Bus:
    """One service's listeners, and the transactions that tell them what was committed."""

    def __init__(self) -> None:
        #: Read once per transaction: a tuple, so a reader never sees it half changed.
        self.listeners: tuple[Listener, ...] = ()
        self._changing = threading.Lock()
        self._order = threading.RLock()
        self._delivering = threading.local()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add ``listener``; the function returned removes it (calling it again does nothing)."""
        entry = _Entry(listener)
        with self._changing:
            self.listeners = (*self.listeners, entry)

        def unsubscribe() -> None:
            with self._changing:
                self.listeners = tuple(e for e in self.listeners if e is not entry)

        return unsubscribe

    def transaction(self, opening: Callable[[], AbstractContextManager[_Tx]]) -> (
        AbstractContextManager[_Tx]
    ):
        """``opening()``, its changes recorded in the store's history and told to listeners."""
        if not self.listeners:
            return _Recording(opening)
        return _Delivering(self, opening)

    def deliver(self, events: Sequence[OperationEvent]) -> None:
        """Call every listener with each event; one that raises is logged and passed over.

        Events a listener's own writes commit wait until the events before
        them are delivered: they were committed after those.
        """
        waiting: list[OperationEvent] | None = getattr(self._delivering, "waiting", None)
        if waiting is not None:
            waiting.extend(events)
            return
        waiting = self._delivering.waiting = list(events)
        try:
            for event in waiting:  # grows while a listener writes
                self._tell(event)
        finally:
            self._delivering.waiting = None

    def _tell(self, event: OperationEvent) -> None:
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - a listener's fault must not break the run
                _log.exception(
                    "an event listener raised on %s of operation %s",
                    type(event).__name__, event.operation.id,
                    extra={"operation_id": event.operation.id},
                )


class _Entry:
    """A subscription: the same listener subscribed twice is two entries."""

    __slots__ = ("listener",)

    def __init__(self, listener: Listener) -> None:
        self.listener = listener

    def __call__(self, event: OperationEvent) -> object:
        return self.listener(event)


class Observed:
    """A transaction that notes the operation changes it stores: their history and events.

    Everything but the operation reads and writes goes to the store's
    transaction as it is (``isinstance`` against the store protocols sees
    what the store's transaction has).

    Args:
        tx: the store's transaction.
        telling: whether to note events for listeners.
        recording: whether to note history (the store keeps it).
    """

    def __init__(self, tx: Transaction, *, telling: bool = True, recording: bool = True) -> None:
        self._tx = tx
        self.telling = telling
        self._recording = recording
        #: What was committed, in order, once the transaction commits.
        self.journal: list[OperationEvent] = []
        #: The history of the changes, in order, appended before the store commits.
        self.entries: list[HistoryEntry] = []
        # The last version of each operation this transaction read or wrote.
        self._seen: dict[str, Operation] = {}

    __slots__ = ("_recording", "_seen", "_tx", "entries", "journal", "telling")

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401 - the store transaction's own
        return getattr(self._tx, name)

    # The rest of the protocol, spelt out: a run calls them every batch, and a call
    # through __getattr__ costs a failed lookup first.

    def stage(self, operation_id: str, records: Sequence[NewRecord]) -> None:
        self._tx.stage(operation_id, records)

    def staged(self, operation_id: str, *, after: int | None, limit: int) -> list[StagedRecord]:
        return self._tx.staged(operation_id, after=after, limit=limit)

    def pending(
        self, operation_id: str, data_type: str, *, after: int | None, limit: int,
    ) -> list[Pending]:
        return self._tx.pending(operation_id, data_type, after=after, limit=limit)

    def deselect(self, operation_id: str, positions: Sequence[int]) -> None:
        self._tx.deselect(operation_id, positions)

    def record_errors(
        self, operation_id: str, errors: Sequence[tuple[int, Mapping[str, Any]]],
    ) -> None:
        self._tx.record_errors(operation_id, errors)

    def remove_succeeded(self, operation_id: str) -> int:
        return self._tx.remove_succeeded(operation_id)

    def unstage_all(self) -> int:
        return self._tx.unstage_all()

    def checkpoint(self, operation_id: str) -> int | None:
        return self._tx.checkpoint(operation_id)

    def set_checkpoint(
        self, operation_id: str, position: int | None, heartbeat: dt.datetime,
    ) -> None:
        self._tx.set_checkpoint(operation_id, position, heartbeat)

    def heartbeat(self, operation_id: str) -> dt.datetime | None:
        return self._tx.heartbeat(operation_id)

    def _saw(self, operation: Operation | None) -> Operation | None:
        if operation is not None:
            self._seen[operation.id] = operation
        return operation

    def current(self) -> Operation | None:
        return self._saw(self._tx.current())

    def get(self, operation_id: str) -> Operation | None:
        return self._saw(self._tx.get(operation_id))

    def latest(self, limit: int) -> list[Operation]:
        return [op for op in self._tx.latest(limit) if self._saw(op)]

    def valid_operations(self) -> list[Operation]:
        return [op for op in self._tx.valid_operations() if self._saw(op)]

    def insert(self, operation: Operation) -> None:
        self._tx.insert(operation)
        self._seen[operation.id] = operation
        self._changed(None, operation)

    def update(self, operation: Operation) -> None:
        before = self._seen.get(operation.id) or self._tx.get(operation.id)
        self._tx.update(operation)
        self._seen[operation.id] = operation
        if before is None or (before.status, before.valid) != (operation.status, operation.valid):
            self._changed(before, operation)

    def _changed(self, before: Operation | None, after: Operation) -> None:
        if self._recording:
            self.entries.extend(_history.entries(before, after, _history.actor()))
        if self.telling:
            self.journal.append(
                StateChanged(after, None if before is None else before.status, after.status),
            )

    def append_history(self, entries: Sequence[HistoryEntry]) -> None:
        """The store's own (called only when it keeps history)."""
        cast("HistoryTransaction", self._tx).append_history(entries)


class _ObservedBatches(Observed):
    """An observed transaction of a store with batch claims.

    Its batch methods are spelt out: ``isinstance`` against a protocol does
    not look through ``__getattr__``.
    """

    __slots__ = ()

    _tx: BatchTransaction

    def cut_batches(self, operation_id: str, data_type: str, size: int) -> int:
        return self._tx.cut_batches(operation_id, data_type, size)

    def batch_count(self, operation_id: str) -> int:
        return self._tx.batch_count(operation_id)

    def finish_batch(self, batch: Batch) -> int | None:
        return self._tx.finish_batch(batch)


def observed(tx: Transaction, *, telling: bool = True) -> Observed:
    """``tx``, observed (``telling``: its events noted for listeners too)."""
    observer, recording = _observer(type(tx))
    return observer(tx, telling=telling, recording=recording)


@functools.cache
def _observer(kind: type) -> tuple[type[Observed], bool]:
    """The observer of a store's transaction class, and whether the store keeps history."""
    # Per class, not per transaction: the checks would cost a run's every batch.
    observer = _ObservedBatches if issubclass(kind, BatchTransaction) else Observed
    return observer, issubclass(kind, HistoryTransaction)


def _commit(
    inner: AbstractContextManager[Any], observer: Observed | None,
    kind: type[BaseException] | None, error: BaseException | None, trace: Any,  # noqa: ANN401
) -> bool | None:
    """Append the history ``observer`` noted, then leave the store's transaction ``inner``.

    An error appending it rolls the transaction back and is raised: a change
    is never committed without its history.
    """
    if error is None and observer is not None and observer.entries:
        try:
            observer.append_history(observer.entries)
        except BaseException as exc:
            inner.__exit__(type(exc), exc, exc.__traceback__)
            raise
    return inner.__exit__(kind, error, trace)


class _Recording(Generic[_Tx]):
    """A transaction whose changes go to the store's history before it commits; no listeners.

    A store without history gets its own transaction back, untouched.
    """

    def __init__(self, opening: Callable[[], AbstractContextManager[_Tx]]) -> None:
        self._opening = opening
        self._observer: Observed | None = None

    def __enter__(self) -> _Tx:
        self._inner = self._opening()
        tx = self._inner.__enter__()
        observer, recording = _observer(type(tx))
        if not recording:
            return tx
        self._observer = observer(tx, telling=False)
        return cast("_Tx", self._observer)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: object) -> bool | None:
        return _commit(self._inner, self._observer, kind, error, trace)


class _Delivering(Generic[_Tx]):
    """The observed transaction: the order lock, the store's transaction, then delivery."""

    def __init__(self, bus: Bus, opening: Callable[[], AbstractContextManager[_Tx]]) -> None:
        self._bus = bus
        self._opening = opening

    def __enter__(self) -> _Tx:
        order = self._bus._order  # noqa: SLF001 - the bus's own transaction
        order.acquire()
        try:
            self._inner = self._opening()
            self._observed = observed(self._inner.__enter__())
        except BaseException:
            order.release()
            raise
        return cast("_Tx", self._observed)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: object) -> bool | None:
        try:
            suppressed = _commit(self._inner, self._observed, kind, error, trace)
            if error is None:
                self._bus.deliver(self._observed.journal)
        finally:
            self._bus._order.release()  # noqa: SLF001
        return suppressed
