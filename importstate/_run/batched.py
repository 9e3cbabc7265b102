"""The engine in batches: workers that lease the batches of one operation and import them.

The store cuts a phase's staged records into fixed batches when the phase
begins (users when the run starts; channels, then messages, as the commit
of the phase before's last batch moves the run on) and leases them out
(:class:`~importstate.stores.BatchClaims`); any number of threads, processes
and machines work on one run. Each batch commits through the ledger under
its :class:`~importstate._run.claim.Lease`; what lives here is the rest of a
worker: starting or joining the run, the claim loop, the waiting, the
threads, and the renewal of the leases in hand.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Final, Self

from importstate._ids import new_id
from importstate._run.claim import Lease
from importstate._run.ledger import Ledger, get, must_stop, outcomes
from importstate._time import to_millis_precision
from importstate.errors import WorkersUnsupported
from importstate.importers import BatchCall
from importstate.model import Operation
from importstate.records import DataType, RecordKind, kind_of
from importstate.steps import TERMINAL_STEPS, ProgressStep
from importstate.stores import (
    Batch,
    BatchClaims,
    BatchTransaction,
    StagedRecord,
    Store,
    Transaction,
)

#: Longest pause, in seconds, of a worker that found no batch to claim.
MAX_POLL: Final = 0.25
_FIRST_POLL: Final = 0.005


class Leases:
    """The batches this process's workers hold, renewed in the background while in hand.

    A lease is renewed every third of ``lease_seconds``, so a batch whose
    importer takes longer than the lease stays with its worker; only a
    worker that died (its process gone) loses its batches.
    """

    def __init__(self, claims: BatchClaims, lease_seconds: float) -> None:
        self.claims = claims
        self.lease_seconds = lease_seconds
        self._held: set[Batch] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._renewer = threading.Thread(
            target=self._renew, name="importstate-leases", daemon=True,
        )

    def __enter__(self) -> Self:
        self._renewer.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopped.set()
        self._renewer.join()

    @contextmanager
    def holding(self, batch: Batch) -> Iterator[Batch]:
        """Keep ``batch``'s lease renewed while the ``with`` block runs."""
        with self._lock:
            self._held.add(batch)
        try:
            yield batch
        finally:
            with self._lock:
                self._held.discard(batch)

    def _renew(self) -> None:
        while not self._stopped.wait(self.lease_seconds / 3):
            with self._lock:
                held = list(self._held)
            try:
                self.claims.renew_leases(held, self.lease_seconds)
            except Exception:  # noqa: BLE001, S112 - a lost renewal only risks a redo; next round
                continue


def in_threads(count: int, worker: Callable[[], object]) -> None:
    """Run ``worker`` on ``count`` threads at once, until every one has returned.

    The threads are daemons: a process ended by Ctrl-C does not wait for
    them, and the leases of their batches expire as if the process had died.

    Raises:
        Exception: the first exception a worker raised, once all have returned.
    """
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            worker()
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            errors.append(exc)

    # Each thread in a copy of the caller's context: its history actor goes along.
    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(guarded,),
                         name=f"importstate-worker-{number}", daemon=True)
        for number in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def claims_of(store: Store) -> BatchClaims:
    """``store`` as a store with batch claims.

    Raises:
        WorkersUnsupported: it has none.
    """
    if not isinstance(store, BatchClaims):
        raise WorkersUnsupported(type(store).__name__)
    return store


def batch_count(tx: object, operation_id: str) -> int:
    """How many batches the operation's run was cut into; 0 on a store without batch claims."""
    return tx.batch_count(operation_id) if isinstance(tx, BatchTransaction) else 0


class BatchedRun:
    """Starts an operation's run in batches, and works on it with threads.

    Args:
        ledger: where the run's progress is written.
        sizes: records per batch, by ``dataType``.
        lease_seconds: how long a batch lease lasts unless renewed.
    """

    def __init__(self, ledger: Ledger, sizes: Mapping[str, int], lease_seconds: float) -> None:
        self.ledger = ledger
        self.claims = claims_of(ledger.store)
        self.sizes = sizes
        self.lease_seconds = lease_seconds

    def start(self, tx: BatchTransaction, started: Operation) -> Operation:
        """Begin the ``started`` run in ``tx``: cut its first phase's batches; done if none."""
        # The heartbeat tells stale_operations the run is alive; each batch renews it.
        tx.update(started)
        tx.set_checkpoint(started.id, None, to_millis_precision(self.ledger.clock()))
        return self._move_on(tx, started)

    def _move_on(self, tx: BatchTransaction, operation: Operation) -> Operation:
        """Cut the next phase's batches, or end the run when no phase is left, in ``tx``.

        In the transaction of the phase's last batch, so it commits last and once.
        """
        moved = self.ledger.next_phase(tx, operation, self._cut)
        if moved.status is not ProgressStep.FINISHING:
            return moved
        done = self.ledger.finished(tx, moved)
        tx.update(done)
        return done

    def _cut(
        self, tx: Transaction, operation: Operation, kind: RecordKind, _now: dt.datetime,
    ) -> bool:
        """Cut the phase's records into batches (an opener); whether there were any."""
        if not isinstance(tx, BatchTransaction):
            msg = "a run in batches moves on in a transaction of a store with batch claims"
            raise TypeError(msg)
        return tx.cut_batches(operation.id, kind.data_type, self.sizes[kind.data_type]) > 0

    def work(self, operation_id: str, calls: Mapping[str, BatchCall], workers: int) -> Operation:
        """Work on the run with ``workers`` threads until it has ended; return it as it ended."""
        with Leases(self.claims, self.lease_seconds) as leases:
            if workers == 1:
                self._worker(operation_id, calls, leases)
            else:
                in_threads(workers, lambda: self._worker(operation_id, calls, leases))
        with self.ledger.store.reading() as tx:
            return get(tx, operation_id)

    def _worker(
        self, operation_id: str, calls: Mapping[str, BatchCall], leases: Leases,
    ) -> None:
        """Claim and import batches of the operation until it has ended.

        A worker that finds nothing to claim waits (other workers hold the
        remaining batches, or the last batch waits for them) and claims again:
        so a batch whose worker died is taken over once its lease expires.
        """
        try:
            holder = new_id()
            pause = _FIRST_POLL
            while not self._ended(operation_id):
                claimed = self.claims.claim_batch(operation_id, holder, leases.lease_seconds)
                if claimed is None:
                    time.sleep(pause)
                    pause = min(pause * 2, MAX_POLL)
                    continue
                pause = _FIRST_POLL
                batch, records = claimed
                with leases.holding(batch):
                    kind, results = self._import(calls, records)
                    with self.ledger.bus.transaction(self.claims.transaction) as tx:
                        committed = self.ledger.commit(tx, Lease(batch), kind, records, results)
                        if committed.last:
                            self._move_on(tx, committed.operation)
        except Exception as exc:  # noqa: BLE001 - a library or store error fails the run, kept
            self.ledger.fail(operation_id, exc)

    @staticmethod
    def _import(
        calls: Mapping[str, BatchCall], records: list[StagedRecord],
    ) -> tuple[RecordKind, Sequence[BaseException | None]]:
        """The records' kind and the importer's verdicts on them (all of one type, the phase's)."""
        if not records:  # the batch's records went (a clear): the commit finds the run stopped
            return kind_of(DataType.USER), []
        kind = kind_of(records[0].data_type)
        return kind, outcomes(calls[kind.data_type], records, kind)

    def _ended(self, operation_id: str) -> bool:
        """Whether the run has ended; the first worker to see it invalidated fails it."""
        with self.ledger.store.reading() as reading:
            operation = get(reading, operation_id)
        if not must_stop(operation):
            return False
        if operation.status in TERMINAL_STEPS or operation.valid:
            return True
        with self.ledger.transaction() as tx:
            self.ledger.stop(tx, get(tx, operation_id))
        return True
