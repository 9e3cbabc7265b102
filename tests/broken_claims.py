"""PostgreSQL stores whose batch claims are each wrong in one way, for ``test_batch_claims``.

Each one is a :class:`PostgresStore` with one behaviour of
:class:`~importstate.stores.BatchClaims` broken, as a third-party store
might get it wrong; ``BatchClaimsTests`` must fail on each.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from importstate import PostgresStore
from importstate.stores import Batch, StagedRecord


class LeaselessStore(PostgresStore):
    """Claims ignore leases: a batch in another worker's hand is claimed again."""

    def claim_batch(
        self, operation_id: str, holder: str, lease_seconds: float,
    ) -> tuple[Batch, list[StagedRecord]] | None:
        with self._connection() as conn:
            conn.execute(
                "UPDATE batches SET lease_until = '-infinity' WHERE operation = %s AND NOT done",
                (operation_id,),
            )
            conn.commit()
        return super().claim_batch(operation_id, holder, lease_seconds)


class _HolderBlindTransaction:
    """A transaction whose ``finish_batch`` first hands the batch to whoever finishes it."""

    def __init__(self, tx: Any) -> None:
        self._tx = tx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)

    def finish_batch(self, batch: Batch) -> int | None:
        self._tx._execute(
            "UPDATE batches SET holder = %s WHERE operation = %s AND number = %s",
            (batch.holder, batch.operation_id, batch.number),
        )
        return self._tx.finish_batch(batch)


class HolderBlindStore(PostgresStore):
    """``finish_batch`` ignores the holder: a worker whose lease was lost still commits."""

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with super().transaction() as tx:
            yield _HolderBlindTransaction(tx)


class RenewAnyStore(PostgresStore):
    """``renew_leases`` ignores the holder: a lost lease's renewal keeps the new holder's alive."""

    def renew_leases(self, batches: Sequence[Batch], lease_seconds: float) -> None:
        with self._connection() as conn, conn.transaction():
            for batch in batches:
                conn.execute(
                    "UPDATE batches SET lease_until = clock_timestamp()"
                    " + %s * interval '1 second' WHERE operation = %s AND number = %s",
                    (lease_seconds, batch.operation_id, batch.number),
                )


class EagerLastStore(PostgresStore):
    """The last batch is claimable while the others are in hand, not only once they are done."""

    def claim_batch(
        self, operation_id: str, holder: str, lease_seconds: float,
    ) -> tuple[Batch, list[StagedRecord]] | None:
        claimed = super().claim_batch(operation_id, holder, lease_seconds)
        if claimed is not None:
            return claimed
        with self._connection() as conn, conn.transaction():
            row = conn.execute(
                "UPDATE batches SET holder = %s,"
                " lease_until = clock_timestamp() + %s * interval '1 second'"
                " WHERE operation = %s AND NOT done"
                " AND (holder IS NULL OR lease_until < clock_timestamp())"
                " AND number = (SELECT max(number) FROM batches WHERE operation = %s)"
                " RETURNING number, first_position, last_position",
                (holder, lease_seconds, operation_id, operation_id),
            ).fetchone()
        if row is None:
            return None
        number, first, last = row
        with self.reading() as tx:
            records = tx.staged(operation_id, after=first - 1, limit=last - first + 1)
        return Batch(operation_id, number, first, last, holder), records
