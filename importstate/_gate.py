"""Holding a run between two batches, without changing its operation's state.

``ImportService.run`` has no pause, and a cancel would change the operation's
state; a process that is stopping (``importstate serve`` on SIGTERM, ``run``
on SIGTERM) must instead leave it ``importing`` at its last checkpoint. So
once closed, a :class:`Gate` holds the next batch before the importer sees
it, with no transaction open, until the process exits; ``resume`` redoes the
work from the checkpoint.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import attrs

from importstate.errors import ImporterNotDefined
from importstate.importers import BatchCall, Importer, batch_calls, from_calls
from importstate.service import ImportService


class Gate:
    """Lets batches through until closed; then holds the next one for good.

    Attributes:
        local: per-thread state; a run's thread may keep a ``begun`` event
            there, set when it first reaches the gate.
        closed: set by :meth:`close`.
        parked: set once a run is held at the gate.
        parked_threads: the ids (``threading.get_ident``) of the threads held there.
    """

    def __init__(self) -> None:
        self.local = threading.local()
        self.closed = threading.Event()
        self.parked = threading.Event()
        self.parked_threads: set[int] = set()
        self._never = threading.Event()

    def close(self) -> None:
        """Hold every batch from now on (the one in hand still commits)."""
        self.closed.set()

    def guard(self, importer: Importer) -> Importer:
        """``importer`` with this gate in front of every batch, of each type it imports."""
        return from_calls({
            data_type: _Gated(self, call) for data_type, call in batch_calls(importer).items()
        })

    def importer_for(self, service: ImportService) -> Importer | None:
        """The current operation's importer behind the gate; ``None`` when there is none to run.

        With ``None``, the service looks the importer up itself and so raises
        its errors in their order (no operation, wrong status, unknown key).
        The key is read before ``run`` reads the operation again: an
        operation of another key made current in between would get this
        importer.
        """
        operation = service.current_operation()
        if operation is None:
            return None
        try:
            importer = service.importer_for(operation.importer_key)
        except ImporterNotDefined:
            return None
        return self.guard(importer)

    def pass_batch(self) -> None:
        """Called before each batch: returns at once while open, never once closed."""
        begun: threading.Event | None = getattr(self.local, "begun", None)
        if begun is not None:
            begun.set()
        if self.closed.is_set():
            self.parked_threads.add(threading.get_ident())
            self.parked.set()
            self._never.wait()


@attrs.frozen
class _Gated:
    gate: Gate
    call: BatchCall

    def __call__(self, records: list[dict[str, Any]]) -> Sequence[BaseException | None]:
        self.gate.pass_batch()
        return self.call(records)
