"""A worker's claim on a running operation, fenced by the heartbeat it last stored.

The store keeps one heartbeat per operation (SPEC §6). The worker that runs
an operation remembers the heartbeat it wrote last; finding another value
there means a later ``resume`` took the operation over, and this worker must
stop without writing. So two workers never both commit one batch, without a
lock held across the importer's calls.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import attrs

from importstate._time import to_millis_precision
from importstate.stores import Transaction

#: The heartbeat a takeover writes is at least this much newer than the one it replaces.
_TICK: Final = dt.timedelta(milliseconds=1)


@attrs.define
class Claim:
    """One worker's hold on one operation.

    Attributes:
        operation_id: the operation being run.
        heartbeat: the heartbeat this worker stored last (its fencing token).
        checkpoint: the position of the last record committed, ``None`` before the first batch.
    """

    operation_id: str
    heartbeat: dt.datetime
    checkpoint: int | None

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

    def renew(self, tx: Transaction, checkpoint: int, now: dt.datetime) -> dt.datetime:
        """Store ``checkpoint`` with a fresh heartbeat (never moving backwards); return it.

        The caller records the new heartbeat with :meth:`renewed` once the
        transaction has committed.
        """
        beat = max(to_millis_precision(now), self.heartbeat)
        tx.set_checkpoint(self.operation_id, checkpoint, beat)
        return beat

    def renewed(self, checkpoint: int, heartbeat: dt.datetime) -> None:
        """Remember a committed :meth:`renew`."""
        self.checkpoint, self.heartbeat = checkpoint, heartbeat
