"""The serial engine: one worker runs an operation from its checkpoint, batch after batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from importstate._run.claim import Claim
from importstate._run.ledger import Ledger, Record, get, must_stop, outcomes
from importstate.importers import BatchCall
from importstate.model import Operation
from importstate.records import RecordKind, phase_of
from importstate.steps import ProgressStep
from importstate.stores import Store, Transaction

#: What a serial run does next: the operation, and the kind and records it imports next
#: (``None`` and none once the run is finishing, or stopped).
_Next = tuple[Operation, RecordKind | None, Sequence[Record]]


class SerialRun:
    """Runs claimed operations in the caller's thread, committing through the ledger.

    Args:
        ledger: where the run's progress is written.
        sizes: records per batch, by ``dataType``.
    """

    def __init__(self, ledger: Ledger, sizes: Mapping[str, int]) -> None:
        self.ledger = ledger
        self.store: Store = ledger.store
        self.sizes = sizes
        # One batch per query (the default) suits an in-process store: records that
        # outlive their batch get promoted by the garbage collector and make its full
        # passes costly. A store across the network sets read_ahead higher.
        read_ahead: int = getattr(self.store, "read_ahead", 1)
        self.page_sizes = {data_type: size * read_ahead for data_type, size in sizes.items()}

    def drive(self, claim: Claim, calls: Mapping[str, BatchCall]) -> Operation:
        """Run the claimed operation from its checkpoint to the end, or until it must stop.

        Phase by phase (users, channels, messages), each from its start or,
        resumed, from the checkpoint. Each batch commits in one transaction,
        which also reads the records that follow once the batches in hand are
        used up, and at the end of a phase moves the run on to the next: a
        batch costs one transaction, not a read and a write.
        """
        try:
            with self.ledger.transaction() as tx:
                operation, stopped = self._held(tx, claim)
                if stopped is not None:
                    return stopped
                operation, kind, page = self._next_records(
                    tx, claim, operation, claim.checkpoint,
                )
            claim.stamped()
            while kind is not None:
                operation, kind, page = self._import(claim, calls[kind.data_type], kind, page)
            if operation.status is ProgressStep.FINISHING:
                return self._finish(claim)
        except Exception as exc:  # noqa: BLE001 - a library or store error fails the run, kept
            return self.ledger.fail(claim.operation_id, exc, claim)
        return operation

    def _finish(self, claim: Claim) -> Operation:
        """End the run in a transaction of its own (see :meth:`Ledger.finished`).

        Not in the last batch's: SQLite commits the staging's delete faster
        in a transaction that did nothing before it (a fifth of the end of a
        100,000-user run, measured).
        """
        with self.ledger.transaction() as tx:
            operation, stopped = self._held(tx, claim)
            if stopped is not None:
                return stopped
            done = self.ledger.finished(tx, operation)
            tx.update(done)
        return done

    def _import(
        self, claim: Claim, call: BatchCall, kind: RecordKind, page: Sequence[Record],
    ) -> _Next:
        """Import and commit a page's batches; what follows them (as :meth:`_next_records`)."""
        size = self.sizes[kind.data_type]
        following: _Next | None = None
        for start in range(0, len(page), size):
            records = page if len(page) <= size else page[start:start + size]
            results = outcomes(call, records, kind)
            last = start + size >= len(page)
            with self.ledger.transaction() as tx:
                committed = self.ledger.commit(tx, claim, kind, records, results)
                if committed.stop:
                    return committed.operation, None, ()
                if last:
                    following = self._next_records(
                        tx, claim, committed.operation, records[-1].position,
                    )
            claim.stamped()
        assert following is not None  # noqa: S101 - a page has records, so a last batch
        return following

    def _next_records(
        self, tx: Transaction, claim: Claim, operation: Operation, after: int | None,
    ) -> _Next:
        """The records after ``after`` in the operation's phase, or the next phase's first ones.

        The operation, the kind of the records, and the records; at the end
        of a phase the run moves on in ``tx`` (see :meth:`Ledger.next_phase`),
        and the kind is ``None`` once it is finishing.
        """
        while operation.status is not ProgressStep.FINISHING:
            kind = phase_of(operation.status)
            if kind is not None:
                page: Sequence[Record] = tx.pending(
                    operation.id, kind.data_type, after=after,
                    limit=self.page_sizes[kind.data_type],
                )
                if page:
                    return operation, kind, page
            operation = self.ledger.next_phase(tx, operation, claim.open_phase)
            after = None
        return operation, None, ()

    def _held(self, tx: Transaction, claim: Claim) -> tuple[Operation, Operation | None]:
        """The operation, and how it ends if the run stops here: taken over, or must stop."""
        operation = get(tx, claim.operation_id)
        if not claim.holds(tx):
            return operation, operation
        if must_stop(operation):
            return operation, self.ledger.stop(tx, operation)
        return operation, None

