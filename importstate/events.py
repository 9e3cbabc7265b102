"""What an embedder is told about operations: a state changed, a batch committed.

:meth:`ImportService.subscribe <importstate.ImportService.subscribe>` delivers
these values to a listener after the transaction that stored them has
committed, in commit order, in the thread that committed;
:meth:`ImportService.watch <importstate.ImportService.watch>` yields the same
types for changes made anywhere (another thread, process or machine), by
polling the store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

import attrs

from importstate.model import Operation
from importstate.records import DataType
from importstate.steps import ProgressStep

__all__ = ["BatchCommitted", "Listener", "OperationEvent", "StateChanged"]


@attrs.frozen
class StateChanged:
    """An operation's stored status or validity changed.

    Attributes:
        operation: the operation as stored by the change.
        before: its status before (``None``: the operation was created).
        after: its status now (``operation.status``); equal to ``before``
            when only its validity changed (cleared or replaced).
    """

    operation: Operation
    before: ProgressStep | None
    after: ProgressStep


@attrs.frozen
class BatchCommitted:
    """A run committed a batch of records.

    Attributes:
        operation: the operation as the batch left it (its counts include the batch).
        data_type: the type of the batch's records.
        completed: records of the batch imported.
        error: records of the batch that failed (they stay staged with their errors).
    """

    operation: Operation
    data_type: DataType
    completed: int
    error: int


#: Every event a listener is given, or ``watch()`` yields.
OperationEvent: TypeAlias = StateChanged | BatchCommitted
#: What ``subscribe`` takes: called with each event; what it returns is ignored.
Listener: TypeAlias = Callable[[OperationEvent], object]
