"""The serial engine: one worker runs an operation from its checkpoint, batch after batch."""

from __future__ import annotations

from collections.abc import Sequence

from importstate._run.claim import Claim
from importstate._run.ledger import Ledger, Record, get, must_stop, outcomes
from importstate.importers import BatchCall
from importstate.machine import Event
from importstate.model import Operation
from importstate.steps import ProgressStep
from importstate.stores import Store, Transaction


class SerialRun:
    """Runs claimed operations in the caller's thread, committing through the ledger."""

    def __init__(self, ledger: Ledger, batch_size: int) -> None:
        self.ledger = ledger
        self.store: Store = ledger.store
        self.batch_size = batch_size
        # One batch per query (the default) suits an in-process store: records that
        # outlive their batch get promoted by the garbage collector and make its full
        # passes costly. A store across the network sets read_ahead higher.
        self.page_size = batch_size * getattr(self.store, "read_ahead", 1)

    def drive(self, claim: Claim, call: BatchCall) -> Operation:
        """Run the claimed operation from its checkpoint to the end, or until it must stop.

        Each batch commits in one transaction, which also reads the records
        that follow once the batches in hand are used up: a batch costs one
        transaction, not a read and a write.
        """
        try:
            stopped = self._advance_to(claim, ProgressStep.IMPORTING_USERS)
            if stopped is not None:
                return stopped
            with self.store.reading() as tx:
                page = self._page(tx, claim.operation_id, claim.checkpoint)
            while page:
                stopped, page = self._import(claim, call, page)
                if stopped is not None:
                    return stopped
            return self._finish(claim)
        except Exception as exc:  # noqa: BLE001 - a library or store error fails the run, kept
            return self.ledger.fail(claim.operation_id, exc, claim)

    def _import(
        self, claim: Claim, call: BatchCall, page: Sequence[Record],
    ) -> tuple[Operation | None, Sequence[Record]]:
        """Import and commit a page's batches; the operation if the run stops, and the next page."""
        size = self.batch_size
        following: Sequence[Record] = ()
        for start in range(0, len(page), size):
            records = page if len(page) <= size else page[start:start + size]
            results = outcomes(call, records)
            last = start + size >= len(page)
            with self.store.transaction() as tx:
                stopped = self.ledger.commit(tx, claim, records, results)
                if stopped is not None:
                    return stopped, ()
                following = self._page(tx, claim.operation_id, records[-1].position) if last else ()
            claim.stamped()
        return None, following

    def _page(self, tx: Transaction, operation_id: str, after: int | None) -> Sequence[Record]:
        """The records after position ``after``, ``store.read_ahead`` batches of them."""
        read = getattr(tx, "pending", None) or tx.staged
        page: Sequence[Record] = read(operation_id, after=after, limit=self.page_size)
        return page

    def _advance_to(self, claim: Claim, step: ProgressStep) -> Operation | None:
        """Move to ``step`` unless a resumed run is there already; the operation if it must stop."""
        with self.store.transaction() as tx:
            operation, stopped = self._held(tx, claim)
            if stopped is not None:
                return stopped
            if operation.status.position < step.position:
                tx.update(operation.fire(Event.ADVANCE, at=self.ledger.clock(), step=step))
        return None

    def _finish(self, claim: Claim) -> Operation:
        stopped = self._advance_to(claim, ProgressStep.FINISHING)
        if stopped is not None:
            return stopped
        with self.store.transaction() as tx:
            operation, stopped = self._held(tx, claim)
            if stopped is not None:
                return stopped
            done = self.ledger.finished(tx, operation)
            tx.update(done)
        return done

    def _held(self, tx: Transaction, claim: Claim) -> tuple[Operation, Operation | None]:
        """The operation, and how it ends if the run stops here: taken over, or must stop."""
        operation = get(tx, claim.operation_id)
        if not claim.holds(tx):
            return operation, operation
        if must_stop(operation):
            return operation, self.ledger.stop(tx, operation)
        return operation, None
