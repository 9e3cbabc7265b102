"""What a store must do: the contract every built-in and third-party store meets."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, NamedTuple, Protocol, runtime_checkable

from importstate.history import HistoryEntry
from importstate.model import Operation


class StagedRecord(NamedTuple):
    """One staged record, in staging order.

    Attributes:
        position: the store's staging order; the run loop's checkpoint is the
            position of the last record done.
        id: the record's ``_id``.
        data: the record as given to ``add_users`` (``add_channels``,
            ``add_messages``), plus its merged defaults.
        data_type: ``"user"``, ``"channel"`` or ``"message"``.
        errors: ``[{message, ...}]`` for each failed import attempt.
    """

    position: int
    id: str
    data: dict[str, Any]
    data_type: str
    errors: tuple[dict[str, Any], ...]

    def to_wire(self) -> dict[str, Any]:
        """``{_id, data, dataType, errors?}`` as Rocket.Chat's staging holds it."""
        doc: dict[str, Any] = {"_id": self.id, "data": self.data, "dataType": self.data_type}
        if self.errors:
            doc["errors"] = list(self.errors)
        return doc


class Pending(NamedTuple):
    """A staged record as a run reads it: its position and its data, nothing else.

    The run reads one kind of record at a time, so it knows the type.
    """

    position: int
    data: dict[str, Any]


class NewRecord(NamedTuple):
    """A record to stage: its ``_id``, its data as JSON text, and its ``dataType``.

    The service encodes each record once, before the store's transaction, so
    a store only copies text (and a value JSON cannot hold fails before
    anything is written).
    """

    id: str
    json: str
    data_type: str


class Transaction(Protocol):
    """Reads and writes inside one store transaction.

    Everything a transaction wrote becomes visible to other handles together
    when it commits, or not at all when the ``with`` block raises.

    Staging holds records of three types (``user``, ``channel``,
    ``message``) in one order. :meth:`staged` lists them all; a run reads
    one type at a time with :meth:`pending`, and only the records its
    selection kept (:meth:`deselect`).

    It may also have ``delete(operation_id) -> bool``: remove the operation
    and its staged records (and its history), whether it was there
    (``ImportService.prune`` needs it; every built-in store has it), and be
    a :class:`HistoryTransaction` (``ImportService.history`` needs that).
    """

    def current(self) -> Operation | None:
        """The newest operation by ``ts`` (ties: the later created), valid or not."""

    def get(self, operation_id: str) -> Operation | None:
        """The operation with this ``_id``."""

    def latest(self, limit: int) -> list[Operation]:
        """Up to ``limit`` operations, newest ``_updatedAt`` first.

        Ties go to the newer ``ts``, then to the later created.
        """

    def valid_operations(self) -> list[Operation]:
        """Every operation whose ``valid`` is true, in creation order."""

    def insert(self, operation: Operation) -> None:
        """Add a new operation (its creation order is now)."""

    def update(self, operation: Operation) -> None:
        """Replace the stored operation that has ``operation.id``.

        Raises:
            KeyError: no operation has that id.
        """

    def stage(self, operation_id: str, records: Sequence[NewRecord]) -> None:
        """Append records to ``operation_id``'s staging, in order."""

    def staged(self, operation_id: str, *, after: int | None, limit: int) -> list[StagedRecord]:
        """Up to ``limit`` of the operation's records with a position after ``after``.

        Records of every type, selected or not.
        """

    def pending(
        self, operation_id: str, data_type: str, *, after: int | None, limit: int,
    ) -> list[Pending]:
        """What a run imports: the records of ``data_type`` after ``after``, none deselected.

        Up to ``limit`` of the records :meth:`staged` gives, as position and
        data only (a run needs neither a record's id nor its errors).
        """

    def deselect(self, operation_id: str, positions: Sequence[int]) -> None:
        """Leave the records at ``positions`` out of the operation's run (its selection).

        :meth:`pending` and ``cut_batches`` skip them, :meth:`staged` still
        lists them, and :meth:`remove_succeeded` removes them (they have no
        errors).
        """

    def record_errors(
        self, operation_id: str, errors: Sequence[tuple[int, Mapping[str, Any]]],
    ) -> None:
        """Append each ``(position, error)`` to that record's ``errors``."""

    def remove_succeeded(self, operation_id: str) -> int:
        """Delete the operation's records that have no errors; return how many."""

    def unstage_all(self) -> int:
        """Delete every staged record of every operation; return how many."""

    def checkpoint(self, operation_id: str) -> int | None:
        """The position of the last record the run committed (``None`` before the first batch).

        ``checkpoint``, ``set_checkpoint`` and ``heartbeat`` raise
        :class:`KeyError` for an unknown operation.
        """

    def set_checkpoint(
        self, operation_id: str, position: int | None, heartbeat: dt.datetime,
    ) -> None:
        """Store the run's checkpoint and heartbeat (bookkeeping outside the wire document)."""

    def heartbeat(self, operation_id: str) -> dt.datetime | None:
        """When the operation's run last reported progress.

        It must read back exactly as :meth:`set_checkpoint` stored it (to the
        millisecond): a run compares it with the one it wrote to learn
        whether a ``resume`` elsewhere took its operation over.
        """


@runtime_checkable
class Store(Protocol):
    """A place operations and staged users live; safe to share between threads.

    ``transaction()`` serialises writers (on SQLite across processes too);
    ``reading()`` is a consistent snapshot that does not wait for writers.

    A store may also have an ``int`` attribute ``read_ahead``: how many
    batches the run loop reads per query (1 when absent). A store whose
    queries cross a network sets it higher to save round trips. And it may
    have ``checkpoint()``: make what was deleted leave its files (SQLite's
    write-ahead log); ``importstate serve`` calls it after each run.
    """

    def transaction(self) -> AbstractContextManager[Transaction]:
        """A read-write transaction; writers run one at a time."""

    def reading(self) -> AbstractContextManager[Transaction]:
        """A read-only snapshot; must not write."""

    def close(self) -> None:
        """Release the store's resources; the store is not used afterwards."""


class Batch(NamedTuple):
    """One leased batch of a parallel run: staged records ``first``..``last`` by position.

    Attributes:
        operation_id: the operation whose staging was cut.
        number: the batch's number, 0 first, in staging order.
        first: the position of its first record.
        last: the position of its last record.
        holder: the lease token of the worker holding it.
    """

    operation_id: str
    number: int
    first: int
    last: int
    holder: str


@runtime_checkable
class BatchTransaction(Transaction, Protocol):
    """A transaction of a store with :class:`BatchClaims`: the batch table inside it."""

    def cut_batches(self, operation_id: str, data_type: str, size: int) -> int:
        """Cut the operation's records of ``data_type`` into batches of ``size``; return how many.

        The records :meth:`~Transaction.pending` gives, by position. Called
        once per type of a run, a type's batches only once the batches cut
        before are all done; they are numbered after those. A claim hands out
        a batch's records of its type only.
        """

    def batch_count(self, operation_id: str) -> int:
        """How many batches the operation was cut into, of every type (0: not in batches)."""

    def finish_batch(self, batch: Batch) -> int | None:
        """Mark the batch done if ``batch.holder`` still holds it; how many batches are left.

        ``None`` (and nothing written) when the lease was lost: another
        worker has the batch, or it is done. The batch's row stays locked
        until the transaction ends, so a lease that expires meanwhile is not
        taken over before this commit is decided.
        """


@runtime_checkable
class BatchClaims(Protocol):
    """What a store offers parallel workers (optional): batches claimed under a lease.

    Any number of workers, threads or processes on any machine, claim the
    batches of one run. A batch is claimable when it is not done and nobody
    holds an unexpired lease on it; the last batch only once all others are
    done, so that it commits last (a run cuts a type's batches once every
    batch before is done, so this holds for each type's batches).
    """

    def transaction(self) -> AbstractContextManager[BatchTransaction]:
        """A read-write transaction (as :meth:`Store.transaction`) with the batch table."""

    def claim_batch(
        self, operation_id: str, holder: str, lease_seconds: float,
    ) -> tuple[Batch, list[StagedRecord]] | None:
        """Lease the lowest-numbered claimable batch to ``holder``; it and its staged records.

        ``None`` if no batch is claimable now.

        Its own transaction; claimers never wait for one another.
        """

    def renew_leases(self, batches: Sequence[Batch], lease_seconds: float) -> None:
        """Extend the leases its holders still have on ``batches`` by ``lease_seconds`` from now."""


@runtime_checkable
class HistoryTransaction(Transaction, Protocol):
    """A transaction of a store that keeps history (optional; every built-in store does).

    The service appends the entries of each stored change of an operation's
    status in the transaction that stores it, so they commit or roll back
    with it. ``delete`` (pruning) removes an operation's history with it.
    """

    def append_history(self, entries: Sequence[HistoryEntry]) -> None:
        """Append ``entries`` to their operations' histories, in order."""

    def history(self, operation_id: str) -> list[HistoryEntry]:
        """The operation's entries, oldest first (in the order appended); none: ``[]``."""
