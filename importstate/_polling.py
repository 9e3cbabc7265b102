"""Following a store from outside: what changed between two reads, told as events.

A :class:`Poller` remembers the operations it follows as it last read them
(the current one, and an older one while a run or a loading of it may still
write), and turns each difference it reads next into the events
:meth:`ImportService.subscribe <importstate.ImportService.subscribe>` would
have delivered, coarser: the steps passed between two reads are one
:class:`~importstate.events.StateChanged`, and the batches committed
between them one :class:`~importstate.events.BatchCommitted` with their
counts together.
"""

from __future__ import annotations

from typing import Final

from importstate.events import BatchCommitted, OperationEvent, StateChanged
from importstate.model import Operation
from importstate.records import DataType, RecordKind, phase_of
from importstate.steps import State
from importstate.stores import Store

#: The steps of an operation something may still write to, though it is no longer current.
_WRITING: Final = frozenset({State.LOADING, State.IMPORTING})


class Poller:
    """Reads ``store`` and tells what changed since the last read (the first: since created)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._followed: dict[str, Operation] = {}
        # The phase each followed operation was last read in: a batch committed after a
        # cancel (the step no longer says which) is of that phase.
        self._phases: dict[str, RecordKind] = {}
        self.poll()  # the starting point: what is there now is not news

    def poll(self) -> list[OperationEvent]:
        """The events of what changed since the last poll, in the order they happened."""
        with self.store.reading() as tx:
            current = tx.current()
            older = [tx.get(operation_id) for operation_id in self._followed
                     if current is None or operation_id != current.id]
        seen = [op for op in (*older, current) if op is not None]
        events: list[OperationEvent] = []
        for operation in sorted(seen, key=lambda op: op.updated_at):
            phase = phase_of(operation.status) or self._phases.get(operation.id)
            events += _changes(self._followed.get(operation.id), operation, phase)
            if phase is not None:
                self._phases[operation.id] = phase
        self._followed = {
            op.id: op for op in seen
            if (current is not None and op.id == current.id) or op.status.state in _WRITING
        }
        self._phases = {
            op_id: phase for op_id, phase in self._phases.items() if op_id in self._followed
        }
        return events


def _changes(
    before: Operation | None, after: Operation, phase: RecordKind | None,
) -> list[OperationEvent]:
    """What happened to an operation between two reads of it (``None``: it was not there).

    ``phase`` is the phase it is in, or was last read in, if any.
    """
    if before is None:
        return [StateChanged(after, None, after.status)]
    completed = after.count.get("completed") - before.count.get("completed")
    error = after.count.get("error") - before.count.get("error")
    moved = (before.status, before.valid) != (after.status, after.valid)
    events: list[OperationEvent] = []
    if moved:
        events.append(StateChanged(after, before.status, after.status))
    if completed > 0 or error > 0:
        # The batches went before the move when they were of the phase left behind.
        left = phase_of(before.status)
        kind = left or phase
        batch = BatchCommitted(after, kind.data_type if kind else DataType.USER, completed, error)
        events.insert(0 if left is not None else len(events), batch)
    return events
