"""Delivering events to a service's listeners: after each commit, in commit order.

Every transaction that writes operations is opened through
:meth:`Bus.transaction`. With nobody subscribed it is the store's own, and
nothing else happens. With listeners it is observed: each stored change of
an operation's status or validity is noted as a
:class:`~importstate.events.StateChanged` (the run adds its
:class:`~importstate.events.BatchCommitted`), and once the store has
committed, the notes go to every listener in the committing thread. A lock
held from the transaction's start to the end of its delivery keeps the
deliveries of a process's threads in their commit order; it is taken before
the store's write lock, so a listener may itself write through the service
(what it commits is delivered after the events before it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar, cast

from importstate.events import Listener, OperationEvent, StateChanged
from importstate.model import Operation
from importstate.stores import Batch, BatchTransaction, Transaction

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
        """``opening()``, observed for the listeners when there are any."""
        if not self.listeners:
            return opening()
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
    """A transaction that notes the operation changes it stores, for delivery after commit.

    Everything but the operation reads and writes goes to the store's
    transaction as it is (``isinstance`` against the store protocols sees
    what the store's transaction has).
    """

    def __init__(self, tx: Transaction) -> None:
        self._tx = tx
        #: What was committed, in order, once the transaction commits.
        self.journal: list[OperationEvent] = []
        # The last version of each operation this transaction read or wrote.
        self._seen: dict[str, Operation] = {}

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401 - the store transaction's own
        return getattr(self._tx, name)

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
        self.journal.append(StateChanged(operation, None, operation.status))

    def update(self, operation: Operation) -> None:
        before = self._seen.get(operation.id) or self._tx.get(operation.id)
        self._tx.update(operation)
        self._seen[operation.id] = operation
        if before is None or (before.status, before.valid) != (operation.status, operation.valid):
            self.journal.append(
                StateChanged(operation, None if before is None else before.status,
                             operation.status),
            )


class _ObservedBatches(Observed):
    """An observed transaction of a store with batch claims.

    Its batch methods are spelt out: ``isinstance`` against a protocol does
    not look through ``__getattr__``.
    """

    _tx: BatchTransaction

    def cut_batches(self, operation_id: str, data_type: str, size: int) -> int:
        return self._tx.cut_batches(operation_id, data_type, size)

    def batch_count(self, operation_id: str) -> int:
        return self._tx.batch_count(operation_id)

    def finish_batch(self, batch: Batch) -> int | None:
        return self._tx.finish_batch(batch)


def observed(tx: Transaction) -> Observed:
    """``tx``, observed."""
    return _ObservedBatches(tx) if isinstance(tx, BatchTransaction) else Observed(tx)


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
            suppressed = self._inner.__exit__(kind, error, trace)  # type: ignore[arg-type]
            if error is None:
                self._bus.deliver(self._observed.journal)
        finally:
            self._bus._order.release()  # noqa: SLF001
        return suppressed
