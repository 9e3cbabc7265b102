"""Parallel runs: worker threads that lease the batches of one operation and import them.

The store cuts a run's staged users into fixed batches and leases them out
(:class:`~importstate.stores.BatchClaims`); the service commits each batch
(``ImportService._import_batch``). What lives here is the part of a
worker that is not the store's nor the operation's: the claim loop, the
waiting, the threads, and the renewal of the leases in hand.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final, Self

from importstate._ids import new_id
from importstate.model import Operation
from importstate.stores import Batch, BatchClaims, StagedRecord

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


def work(
    claims: BatchClaims,
    operation_id: str,
    leases: Leases,
    import_batch: Callable[[Batch, list[StagedRecord]], None],
    running: Callable[[], Operation | None],
) -> Operation:
    """Claim and import batches of the operation until it has ended; return it as it ended.

    ``import_batch`` imports and commits one batch, given its records. ``running`` returns the
    stored operation once it has ended or must stop, else ``None``; it is
    asked before every claim. A worker that
    finds nothing to claim waits (other workers hold the remaining batches,
    or the last batch waits for them) and claims again: so a batch whose
    worker died is taken over once its lease expires.
    """
    holder = new_id()
    pause = _FIRST_POLL
    while True:
        ended = running()
        if ended is not None:
            return ended
        claimed = claims.claim_batch(operation_id, holder, leases.lease_seconds)
        if claimed is None:
            time.sleep(pause)
            pause = min(pause * 2, MAX_POLL)
            continue
        pause = _FIRST_POLL
        batch, records = claimed
        with leases.holding(batch):
            import_batch(batch, records)


def in_threads(count: int, worker: Callable[[], Operation]) -> None:
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

    threads = [
        threading.Thread(target=guarded, name=f"importstate-worker-{number}", daemon=True)
        for number in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
