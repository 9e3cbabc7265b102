"""The serial engine: one worker runs an operation from its checkpoint, batch after batch."""

from __future__ import annotations

from collections.abc import Iterator

from importstate._run.claim import Claim
from importstate._run.ledger import Ledger, get, must_stop, outcomes
from importstate.importers import BatchCall
from importstate.machine import Event
from importstate.model import Operation
from importstate.steps import ProgressStep
from importstate.stores import StagedRecord, Store


class SerialRun:
    """Runs claimed operations in the caller's thread, committing through the ledger."""

    def __init__(self, ledger: Ledger, batch_size: int) -> None:
        self.ledger = ledger
        self.store: Store = ledger.store
        self.batch_size = batch_size

    def drive(self, claim: Claim, call: BatchCall) -> Operation:
        """Run the claimed operation from its checkpoint to the end, or until it must stop."""
        try:
            stopped = self._advance_to(claim, ProgressStep.IMPORTING_USERS)
            if stopped is not None:
                return stopped
            for records in self._batches(claim.operation_id, claim.checkpoint):
                stopped = self.ledger.commit(claim, records, outcomes(call, records))
                if stopped is not None:
                    return stopped
            return self._finish(claim)
        except Exception as exc:  # noqa: BLE001 - a library or store error fails the run, kept
            return self.ledger.fail(claim.operation_id, exc, claim)

    def _advance_to(self, claim: Claim, step: ProgressStep) -> Operation | None:
        """Move to ``step`` unless a resumed run is there already; the operation if it must stop."""
        with self.store.transaction() as tx:
            operation = get(tx, claim.operation_id)
            if not claim.holds(tx):
                return operation
            if must_stop(operation):
                return self.ledger.stop(tx, operation)
            if operation.status.position < step.position:
                tx.update(operation.fire(Event.ADVANCE, at=self.ledger.clock(), step=step))
        return None

    def _batches(self, operation_id: str, after: int | None) -> Iterator[list[StagedRecord]]:
        """Stream the operation's staged records, ``store.read_ahead`` batches per query.

        One batch per query (the default) suits an in-process store: records
        that outlive their batch get promoted by the garbage collector and make
        its full passes costly. A store across the network sets ``read_ahead``
        higher to save round trips.
        """
        size = self.batch_size
        ahead: int = getattr(self.store, "read_ahead", 1)
        while True:
            with self.store.reading() as tx:
                page = tx.staged(operation_id, after=after, limit=size * ahead)
            if not page:
                return
            for start in range(0, len(page), size):
                yield page[start:start + size]
            after = page[-1].position

    def _finish(self, claim: Claim) -> Operation:
        stopped = self._advance_to(claim, ProgressStep.FINISHING)
        if stopped is not None:
            return stopped
        with self.store.transaction() as tx:
            operation = get(tx, claim.operation_id)
            if not claim.holds(tx):
                return operation
            if must_stop(operation):
                return self.ledger.stop(tx, operation)
            done = self.ledger.finished(tx, operation)
            tx.update(done)
        return done
