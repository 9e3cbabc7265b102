"""The one ledger of a run: how a batch, a phase, a stop, a failure and the end are written.

Both engines (serial and in batches) commit through :class:`Ledger`, so what
a committed batch means (counts, errors with passwords masked, checkpoint and
heartbeat, in one transaction, fenced; Behaviour: counts) and how a run goes from one
kind of record to the next (Behaviour: records) are written once. The engines differ
only in their :class:`Hold` (what entitles a worker to commit) and their
:data:`Opener` (how a phase is readied: a checkpoint rewound, batches cut).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager
from typing import Any, Final, NamedTuple, Protocol, TypeAlias

from importstate import machine
from importstate._bus import Bus, Observed
from importstate._run.claim import Claim, Hold, Turn
from importstate.errors import DatabaseBusy, OperationNotFound
from importstate.events import BatchCommitted
from importstate.importers import BatchCall
from importstate.machine import Event
from importstate.model import Failure, Operation
from importstate.records import RecordKind, kinds_after
from importstate.steps import TERMINAL_STEPS, ProgressStep
from importstate.stores import Store, Transaction

#: Importer error messages longer than this are cut (they are stored per failed user).
MAX_ERROR_MESSAGE: Final = 2000
#: What a user's password is replaced with in stored error messages and failure listings.
PASSWORD_MASK: Final = "[password]"  # noqa: S105 - the placeholder, not a password

_INVALIDATED: Final = "The import operation was cleared or replaced while it was running."
#: A batch finding its operation here has nothing to write: the run ended elsewhere.
_ENDED: Final = frozenset({ProgressStep.DONE, ProgressStep.IMPORT_FAILED})

_log = logging.getLogger("importstate.run")


#: Readies the phase of a kind that has records, in the transaction that enters it; whether
#: there is anything to import (``(tx, operation, kind, now)``).
Opener: TypeAlias = Callable[[Transaction, Operation, RecordKind, dt.datetime], bool]


class Committed(NamedTuple):
    """What :meth:`Ledger.commit` wrote.

    Attributes:
        operation: the operation as the commit left it.
        stop: the worker stops here (cancelled, invalidated, or taken over:
            then nothing of the batch was written).
        last: the batch was its phase's last (a hold in batches): the
            worker moves the run on in the same transaction.
    """

    operation: Operation
    stop: bool
    last: bool = False


class Record(Protocol):
    """What a run needs of a staged record: a ``Pending`` or a ``StagedRecord`` has it."""

    @property
    def position(self) -> int:
        """Its place in the staging order."""

    @property
    def data(self) -> dict[str, Any]:
        """What the importer is handed."""


def must_stop(operation: Operation) -> bool:
    """Whether a run of ``operation`` stops here: cancelled, invalidated or ended elsewhere."""
    return not machine.allows(Event.FINISH, operation.state)


def outcomes(
    call: BatchCall, records: Sequence[Record], kind: RecordKind,
) -> Sequence[BaseException | None]:
    """The importer's verdict per record; an exception for the whole batch fails every record."""
    try:
        results = call([record.data for record in records])
    except DatabaseBusy:
        raise  # the target's database stayed locked: no fault of the records, the run fails
    except Exception as exc:  # noqa: BLE001 - the batch's records fail, not the run
        return [exc] * len(records)
    if len(results) != len(records):
        error = RuntimeError(
            f"importer returned {len(results)} results for {len(records)} {kind.count}",
        )
        return [error] * len(records)
    return results


def failures(
    records: Sequence[Record], results: Sequence[BaseException | None],
) -> list[tuple[int, dict[str, str]]]:
    """``(position, error document)`` of each failed record, its batch's passwords masked."""
    if results.count(None) == len(results):  # the common batch, checked in C
        return []
    failed = [(r, exc) for r, exc in zip(records, results, strict=True) if exc is not None]
    # Any user's password may be echoed in any message of the batch.
    secrets = _secrets(records)
    return [(record.position, _error_doc(exc, secrets)) for record, exc in failed]


class Ledger:
    """Writes a run's progress and its end to the store; the bus tells the listeners."""

    def __init__(self, store: Store, clock: Callable[[], dt.datetime], bus: Bus) -> None:
        self.store = store
        self.clock = clock
        self.bus = bus

    def transaction(self) -> AbstractContextManager[Transaction]:
        """A transaction of the store whose changes its history records and listeners hear of."""
        return self.bus.transaction(self.store.transaction)

    def commit(
        self,
        tx: Transaction,
        hold: Hold,
        kind: RecordKind,
        records: Sequence[Record],
        results: Sequence[BaseException | None],
    ) -> Committed:
        """Write one batch's counts, errors, checkpoint and heartbeat in the transaction ``tx``.

        ``kind`` is the records' kind. Once ``tx`` has committed, the caller
        tells the hold (``stamped``).
        """
        operation = get(tx, hold.operation_id)
        if operation.status in _ENDED:
            return Committed(operation, stop=True)
        turn = hold.turn(tx)
        if turn is Turn.LOST:
            return Committed(operation, stop=True)
        failed = failures(records, results)
        now = self.clock()
        completed, error = len(records) - len(failed), len(failed)
        counted = operation.touched(now, count=operation.count.added(
            completed=completed, error=error,
        ))
        tx.record_errors(hold.operation_id, failed)
        hold.stamp(tx, records[-1].position if records else None, now)
        tx.update(counted)
        if records and isinstance(tx, Observed) and tx.telling:
            tx.journal.append(BatchCommitted(counted, kind.data_type, completed, error))
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug(
                "operation %s: %d %s committed, %d failed", counted.id, len(records),
                kind.count, error, extra=_fields(counted, data_type=kind.data_type.value,
                                                 batch_completed=completed, batch_error=error),
            )
        if must_stop(counted):
            return Committed(self.stop(tx, counted), stop=True)
        return Committed(counted, stop=False, last=turn is Turn.LAST)

    def next_phase(self, tx: Transaction, operation: Operation, opener: Opener) -> Operation:
        """Move the run on from its phase (or its start), in ``tx``; the operation as written.

        Into the next kind's phase that has records (``opener`` readies it),
        passing through the phases of kinds without any; after the last
        phase, to ``importer_finishing``, where :meth:`finished` ends it.
        """
        now = self.clock()
        moved = operation
        for kind in kinds_after(operation.status):
            moved = moved.fire(Event.ADVANCE, at=now, step=kind.step)
            if moved.count.get(kind.count) and opener(tx, moved, kind, now):
                break
        else:
            if moved.status is not ProgressStep.FINISHING:
                moved = moved.fire(Event.ADVANCE, at=now, step=ProgressStep.FINISHING)
        if moved is not operation:
            tx.update(moved)
        return moved

    def stop(self, tx: Transaction, operation: Operation) -> Operation:
        """End a run that must stop: cancelled (or ended) stays so, invalidated fails."""
        if operation.status in TERMINAL_STEPS:
            return operation
        now = self.clock()
        failed = operation.fire(Event.FAIL, at=now, failure=Failure(_INVALIDATED, now))
        tx.update(failed)
        return failed

    def finished(self, tx: Transaction, operation: Operation) -> Operation:
        """Finish a run whose every phase is done: drop the succeeded records, move to done.

        The records its selection left out go with the succeeded ones.
        """
        now = self.clock()
        if operation.status is not ProgressStep.FINISHING:
            operation = operation.fire(Event.ADVANCE, at=now, step=ProgressStep.FINISHING)
        tx.remove_succeeded(operation.id)
        return operation.fire(Event.FINISH, at=now)

    def fail(
        self, operation_id: str, error: BaseException, claim: Claim | None = None,
    ) -> Operation:
        """Fail the run with ``error``'s message, unless it ended or ``claim`` was taken over."""
        now = self.clock()
        with self.transaction() as tx:
            operation = get(tx, operation_id)
            if operation.status in TERMINAL_STEPS:
                return operation
            if claim is not None and not claim.holds(tx):
                return operation
            failed = operation.fire(Event.FAIL, at=now, failure=Failure(message(error), now))
            tx.update(failed)
        return failed


def _fields(operation: Operation, **more: object) -> dict[str, object]:
    """What a log record of ``operation`` carries as ``extra``: its id, status and counts."""
    count = operation.count
    return {
        "operation_id": operation.id, "status": operation.status.value,
        "completed": count.get("completed"), "error": count.get("error"),
        "total": count.get("total"), **more,
    }


def log_event(level: int, what: str, operation: Operation) -> None:
    """Log ``what`` happened to a run of ``operation`` (started, finished, ...), with its counts."""
    if _log.isEnabledFor(level):
        count = operation.count
        _log.log(
            level, "import %s %s: %s, %d of %d done, %d failed", operation.id, what,
            operation.status.value, count.get("completed") + count.get("error"),
            count.get("total"), count.get("error"), extra=_fields(operation),
        )


def valid_current(tx: Transaction) -> Operation:
    """The current operation, which must be valid.

    Raises:
        OperationNotFound: there is none, or it is not valid.
    """
    operation = tx.current()
    if operation is None or not operation.valid:
        raise OperationNotFound
    return operation


def get(tx: Transaction, operation_id: str) -> Operation:
    """The operation a run works on; it never disappears while the run holds it."""
    operation = tx.get(operation_id)
    if operation is None:
        msg = f"operation {operation_id!r} disappeared from the store"
        raise LookupError(msg)
    return operation


def message(error: BaseException, secrets: Collection[str] = ()) -> str:
    """The error's text with every secret masked, then cut to ``MAX_ERROR_MESSAGE``."""
    try:
        text = str(error) or type(error).__name__
    except Exception:  # noqa: BLE001 - a broken __str__ must not lose the failure
        text = type(error).__name__
    # Longest first, so a password that contains another is masked whole.
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, PASSWORD_MASK)
    if len(text) > MAX_ERROR_MESSAGE:
        text = text[:MAX_ERROR_MESSAGE] + "… (truncated)"
    return text


def _secrets(records: Sequence[Record]) -> set[str]:
    """The batch's passwords: an importer's message may echo any user of its batch."""
    return {
        password for record in records
        if isinstance(password := record.data.get("password"), str) and password
    }


def _error_doc(error: BaseException, secrets: Collection[str]) -> dict[str, str]:
    return {"message": message(error, secrets), "type": type(error).__name__}
