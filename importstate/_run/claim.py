"""What entitles a worker to commit: a claim on a serial run, or a lease on one batch.

The store keeps one heartbeat per operation (Behaviour: durability). A serial run's
worker remembers the heartbeat it wrote last (:class:`Claim`); finding
another value there means a later ``resume`` took the operation over, and
this worker must stop without writing. So two workers never both commit one
batch, without a lock held across the importer's calls. A parallel run's
worker commits a batch only while it still holds that batch's lease
(:class:`Lease`).
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Final, Protocol

import attrs

from importstate._time import to_millis_precision
from importstate.stores import Batch, BatchTransaction, Transaction

#: The heartbeat a takeover writes is at least this much newer than the one it replaces.
_TICK: Final = dt.timedelta(milliseconds=1)


class Turn(enum.Enum):
    """What a worker's hold says, inside the commit's transaction, about the batch in hand."""

    #: Another worker has the operation or the batch: write nothing.
    LOST = "lost"
    #: Commit it; more batches follow.
    MORE = "more"
    #: Commit it, and its phase with it: every other batch cut so far is done.
    LAST = "last"


class Hold(Protocol):
    """One worker's right to commit a batch of one operation."""

    @property
    def operation_id(self) -> str:
        """The operation being run."""

    def turn(self, tx: Transaction) -> Turn:
        """Check the hold and take the batch's commit: the first write of its transaction."""

    def stamp(self, tx: Transaction, position: int | None, now: dt.datetime) -> None:
        """Store the heartbeat (and checkpoint: ``position``, the batch's last record)."""

    def stamped(self) -> None:
        """The batch's transaction committed."""


@attrs.define
class Claim:
    """One worker's hold on a serial run of one operation.

    Attributes:
        operation_id: the operation being run.
        heartbeat: the heartbeat this worker stored last (its fencing token).
        checkpoint: the position of the last record committed, ``None`` before the first batch.
    """

    operation_id: str
    heartbeat: dt.datetime
    checkpoint: int | None
    _stamping: tuple[int | None, dt.datetime] | None = None

    @classmethod
    def take(cls, tx: Transaction, operation_id: str, now: dt.datetime) -> Claim:
        """Claim the operation from its stored checkpoint; every earlier claim is void.

        The heartbeat written is strictly newer than the stored one, even
        when the clock has not moved, so an earlier worker sees the change.
        """
        stored = tx.heartbeat(operation_id)
        beat = to_millis_precision(now)
        if stored is not None and beat <= stored:
            beat = stored + _TICK
        checkpoint = tx.checkpoint(operation_id)
        tx.set_checkpoint(operation_id, checkpoint, beat)
        return cls(operation_id, beat, checkpoint)

    def holds(self, tx: Transaction) -> bool:
        """Whether no other worker has claimed the operation since this claim's last write."""
        return tx.heartbeat(self.operation_id) == self.heartbeat

    def turn(self, tx: Transaction) -> Turn:
        """:attr:`Turn.MORE` while this claim holds (a serial run finishes on its own)."""
        return Turn.MORE if self.holds(tx) else Turn.LOST

    def stamp(self, tx: Transaction, position: int | None, now: dt.datetime) -> None:
        """Store ``position`` as the checkpoint with a fresh heartbeat (never moving backwards)."""
        if position is None:
            position = self.checkpoint if self._stamping is None else self._stamping[0]
        self._write(tx, position, now)

    def open_phase(
        self, tx: Transaction, _operation: object, _kind: object, now: dt.datetime,
    ) -> bool:
        """Store the start of a phase as the checkpoint: its first record comes next (an opener)."""
        self._write(tx, None, now)
        return True

    def _write(self, tx: Transaction, position: int | None, now: dt.datetime) -> None:
        beat = max(to_millis_precision(now), self.heartbeat)
        tx.set_checkpoint(self.operation_id, position, beat)
        self._stamping = position, beat

    def stamped(self) -> None:
        """Remember the committed checkpoint and heartbeat."""
        if self._stamping is not None:
            self.checkpoint, self.heartbeat = self._stamping
            self._stamping = None


@attrs.frozen
class Lease:
    """One worker's hold on one batch of a parallel run."""

    batch: Batch

    @property
    def operation_id(self) -> str:
        """The operation whose batch this is."""
        return self.batch.operation_id

    def turn(self, tx: Transaction) -> Turn:
        """Mark the batch done if the lease still holds; the last one done ends the run."""
        if not isinstance(tx, BatchTransaction):
            msg = "a leased batch is committed in a transaction of a store with batch claims"
            raise TypeError(msg)
        left = tx.finish_batch(self.batch)
        if left is None:  # its lease expired and another worker has it: that one commits it
            return Turn.LOST
        return Turn.LAST if left == 0 else Turn.MORE

    def stamp(self, tx: Transaction, position: int | None, now: dt.datetime) -> None:  # noqa: ARG002
        """Renew the operation's heartbeat; batches finish in any order, so no checkpoint moves."""
        operation_id = self.operation_id
        tx.set_checkpoint(operation_id, tx.checkpoint(operation_id), to_millis_precision(now))

    def stamped(self) -> None:
        """Nothing to remember: the lease ends with the batch."""
