"""Running imports: what :class:`~importstate.ImportService` delegates ``run`` and its kin to.

- :mod:`.claim`: what entitles a worker to commit (a serial claim, a batch lease);
- :mod:`.ledger`: the one place a batch, a phase, a stop, a failure and the end are written;
- :mod:`.serial`: one worker, batch after batch from the checkpoint;
- :mod:`.batched`: batches leased to any number of workers (stores with batch claims).

:class:`Runner` decides which engine runs: it starts (with the selection,
if any), resumes or joins the current operation in one transaction, then
hands it to the engine. The engine's own steps are recorded in the history
as the run's (``run``; ``resume`` and ``sweep`` for a run they continue), the
start as the caller's.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Final, Literal

from importstate import _history, machine
from importstate._bus import Bus
from importstate._run.batched import BatchedRun, batch_count
from importstate._run.claim import Claim
from importstate._run.ledger import (
    MAX_ERROR_MESSAGE,
    PASSWORD_MASK,
    Ledger,
    get,
    log_event,
    valid_current,
)
from importstate._run.serial import SerialRun
from importstate._time import format_time
from importstate.errors import ImporterCannotImport, InvalidOperationStatus
from importstate.importers import BatchCall, Importer, batch_calls, registered
from importstate.machine import Event
from importstate.model import Failure, Operation
from importstate.pending import PENDING_NAMES
from importstate.records import RECORD_KINDS, DataType
from importstate.selection import Selection, narrow
from importstate.steps import ProgressStep
from importstate.stores import Store, Transaction

__all__ = ["MAX_ERROR_MESSAGE", "PASSWORD_MASK", "Runner", "valid_current"]


#: Why pending downloads whose worker died are failed rather than resumed.
_DOWNLOADS_STOPPED: Final = (
    "The downloads stopped before the end; what was not fetched is still pending:"
    " ask for the downloads again."
)


class Runner:
    """Runs, resumes, joins and sweeps the imports of one store.

    Args:
        store: where the operations live.
        importers: importer key → importer, looked up by the operation's key
            when no ``importer`` is given.
        importer: the importer to use instead of the registered one.
        clock: the current UTC time.
        bus: the service's listeners, told of each commit.
        batch_size: users and channels per batch.
        message_batch_size: messages per batch.
        lease_seconds: how long a batch lease lasts unless renewed.
    """

    def __init__(  # noqa: PLR0913 - the service's run settings, passed through by keyword
        self,
        store: Store,
        importers: Mapping[str, Importer],
        importer: Importer | None,
        *,
        clock: Callable[[], dt.datetime],
        bus: Bus,
        batch_size: int,
        message_batch_size: int,
        lease_seconds: float,
    ) -> None:
        self.ledger = Ledger(store, clock, bus)
        self.importers = importers
        self.importer = importer
        self.sizes: dict[str, int] = {
            DataType.USER: batch_size,
            DataType.CHANNEL: batch_size,
            DataType.MESSAGE: message_batch_size,
        }
        self.lease_seconds = lease_seconds

    def run(self, workers: int, selection: Selection | None = None) -> Operation:
        """Start the current operation's run (see ``ImportService.run``)."""
        if workers != 1:
            return self._in_batches(workers, start=True, join=False, selection=selection)
        with self.ledger.transaction() as tx:
            operation = valid_current(tx)
            if not machine.allows(Event.START, operation.state):
                raise InvalidOperationStatus
            calls = self._calls(operation)
            started = self._start(tx, operation, selection)
            claim = Claim.take(tx, started.id, self.ledger.clock())
        log_event(logging.INFO, "started", started)
        with _history.acting(_history.RUN):
            return _ended(self._serial().drive(claim, calls))

    def _start(
        self, tx: Transaction, operation: Operation, selection: Selection | None,
    ) -> Operation:
        """Start the run in ``tx``: counts narrowed to the selection, completed and error at 0."""
        count = operation.count
        if selection is not None:
            count = narrow(tx, operation.id, count, selection)
        started = operation.fire(
            Event.START, at=self.ledger.clock(), count=count.added(completed=0, error=0),
        )
        tx.update(started)
        return started

    def work(self, workers: int) -> Operation:
        """Start or join the current operation's run in batches (see ``ImportService.work``)."""
        return self._in_batches(workers, start=True, join=True)

    def resume(self, workers: int) -> Operation:
        """Continue the current importing operation (see ``ImportService.resume``)."""
        with _history.acting(_history.RESUME):
            return self._resume(workers)

    def _resume(self, workers: int) -> Operation:
        if workers != 1:
            return self._in_batches(workers, start=False, join=True, driver=_history.RESUME)
        with self.ledger.transaction() as tx:
            operation = valid_current(tx)
            if not _importing(operation):
                raise InvalidOperationStatus
            if operation.importer_key in PENDING_NAMES:
                return self._end_downloads(tx, operation)
            calls = self._calls(operation)
            claim = self._claim_or_join(tx, operation.id)
        return self._continue(claim, calls, operation)

    def stale_operations(self, older_than: dt.timedelta) -> list[Operation]:
        """Importing operations whose heartbeat is older than ``older_than``."""
        with self.ledger.store.reading() as tx:
            return [op for op in tx.valid_operations() if self._is_stale(tx, op, older_than)]

    def sweep(
        self, operation_id: str, older_than: dt.timedelta, action: Literal["resume", "fail"],
    ) -> Operation | None:
        """Resume or fail one operation if it is still stale; ``None`` if it no longer is."""
        with _history.acting(_history.SWEEP):
            return self._sweep(operation_id, older_than, action)

    def _sweep(
        self, operation_id: str, older_than: dt.timedelta, action: Literal["resume", "fail"],
    ) -> Operation | None:
        with self.ledger.transaction() as tx:
            operation = get(tx, operation_id)
            if not self._is_stale(tx, operation, older_than):
                return None
            if action == "fail":
                return self._fail_stale(tx, operation, older_than)
            if operation.importer_key in PENDING_NAMES:
                return self._end_downloads(tx, operation)
            calls = self._calls(operation)
            claim = self._claim_or_join(tx, operation_id)
        return self._continue(claim, calls, operation)

    def _calls(self, operation: Operation) -> dict[str, BatchCall]:
        """The importer given, or the one registered for the operation's key, as calls per batch.

        Raises:
            ImporterNotDefined: neither is there.
            ImporterCannotImport: it cannot import a type the operation has staged.
        """
        importer = self.importer
        if importer is None:
            importer = registered(self.importers, operation.importer_key)
        calls = batch_calls(importer)
        for kind in RECORD_KINDS:
            if operation.count.get(kind.count) and kind.data_type not in calls:
                raise ImporterCannotImport(operation.importer_key, kind.data_type)
        return calls

    def _claim_or_join(self, tx: Transaction, operation_id: str) -> Claim | None:
        """A claim on a serial run, or ``None`` for a run in batches (joined instead)."""
        if batch_count(tx, operation_id):
            return None
        return Claim.take(tx, operation_id, self.ledger.clock())

    def _continue(
        self, claim: Claim | None, calls: Mapping[str, BatchCall], operation: Operation,
    ) -> Operation:
        """Drive a resumed (swept) run, as the actor already set (``resume``, ``sweep``)."""
        if claim is None:
            return self._in_batches(1, start=False, join=True, driver=_history.actor())
        log_event(logging.INFO, "resumed", operation)
        return _ended(self._serial().drive(claim, calls))

    def _serial(self) -> SerialRun:
        return SerialRun(self.ledger, self.sizes)

    def _in_batches(
        self, workers: int, *, start: bool, join: bool, selection: Selection | None = None,
        driver: str = _history.RUN,
    ) -> Operation:
        """Start (``start``) or join (``join``) the current operation's run in batches.

        The start is recorded as the caller's, the batches' steps as ``driver``'s.
        """
        if workers < 1:
            msg = f"workers must be at least 1, not {workers}"
            raise ValueError(msg)
        batched = BatchedRun(self.ledger, self.sizes, self.lease_seconds)
        with self.ledger.bus.transaction(batched.claims.transaction) as tx:
            operation = valid_current(tx)
            if start and machine.allows(Event.START, operation.state):
                calls = self._calls(operation)
                started = self._start(tx, operation, selection)
                with _history.acting(driver):  # the phase it begins in is the run's step
                    operation = batched.start(tx, started)
                how = "started in batches"
            elif join and _importing(operation) and tx.batch_count(operation.id):
                calls = self._calls(operation)
                how = "joined"
            else:
                raise InvalidOperationStatus
        log_event(logging.INFO, how, operation)
        with _history.acting(driver):
            return _ended(batched.work(operation.id, calls, workers))

    def _is_stale(self, tx: Transaction, operation: Operation, older_than: dt.timedelta) -> bool:
        if not _importing(operation):
            return False
        beat = tx.heartbeat(operation.id)
        return beat is None or beat < self.ledger.clock() - older_than

    def _end_downloads(self, tx: Transaction, operation: Operation) -> Operation:
        """Fail pending downloads whose worker is gone: they cannot go on without its fetcher."""
        now = self.ledger.clock()
        failed = operation.fire(Event.FAIL, at=now, failure=Failure(_DOWNLOADS_STOPPED, now))
        tx.update(failed)
        return failed

    def _fail_stale(
        self, tx: Transaction, operation: Operation, older_than: dt.timedelta,
    ) -> Operation:
        now = self.ledger.clock()
        beat = tx.heartbeat(operation.id)
        last = format_time(beat) if beat is not None else "never"
        reason = f"The import stopped: no heartbeat for {older_than} (last: {last})."
        failed = operation.fire(Event.FAIL, at=now, failure=Failure(reason, now))
        tx.update(failed)
        log_event(logging.INFO, "failed: its heartbeat stopped", failed)
        return failed


#: How a run's end is logged, by the step it ended at; a run that stopped elsewhere is left
#: to that worker (a takeover) or to the caller that cancelled it.
_ENDINGS: Final = {
    ProgressStep.DONE: "finished",
    ProgressStep.IMPORT_FAILED: "failed",
    ProgressStep.IMPORT_CANCELLED: "cancelled",
}


def _ended(operation: Operation) -> Operation:
    """Log how the run of ``operation`` ended, and return it."""
    what = _ENDINGS.get(operation.status, "stopped")
    if operation.status is ProgressStep.IMPORT_FAILED and operation.failure is not None:
        what = f"failed ({operation.failure.message})"
    log_event(logging.INFO, what, operation)
    return operation


def _importing(operation: Operation) -> bool:
    """Whether a run of the operation is under way (it can still finish)."""
    return machine.allows(Event.FINISH, operation.state)

