"""The import service: Rocket.Chat's import API over a store (SPEC §4-5)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any, Final, Literal

from importstate import _parallel, _users
from importstate._claim import Claim
from importstate._time import format_time, to_millis_precision, utc_now
from importstate.errors import (
    ImporterNotDefined,
    InvalidOperationStatus,
    InvalidTransition,
    OperationAlreadyFinished,
    OperationCannotReceiveData,
    OperationNotFound,
    OperationNotInitialized,
    WorkersUnsupported,
)
from importstate.importers import BatchCall, Importer, batch_call
from importstate.model import Failure, Operation
from importstate.steps import FINISHED_STATES, ProgressStep, State
from importstate.stores import (
    Batch,
    BatchClaims,
    BatchTransaction,
    NewRecord,
    StagedRecord,
    Store,
    Transaction,
)

#: Users handed to the importer, and counted, per batch (SPEC §5).
BATCH_SIZE: Final = 50
#: Seconds a parallel worker's lease on a batch lasts unless renewed.
LEASE_SECONDS: Final = 30.0
#: Operations ``latest_operations`` returns by default.
LATEST_LIMIT: Final = 20
#: Importer error messages longer than this are cut (they are stored per failed user).
MAX_ERROR_MESSAGE: Final = 2000
#: Display names of importer keys (``getImportProgress``'s ``name``).
DEFAULT_NAMES: Final = {"api": "API"}

_TERMINAL_STEPS: Final = frozenset(
    {ProgressStep.DONE, ProgressStep.IMPORT_FAILED, ProgressStep.IMPORT_CANCELLED},
)
_INVALIDATED = "The import operation was cleared or replaced while it was running."
#: What a user's password is replaced with in stored error messages and failure listings.
PASSWORD_MASK: Final = "[password]"  # noqa: S105 - the placeholder, not a password


class ImportService:
    """Create, fill, run, cancel and inspect import operations.

    Every method is safe to call from several threads, and (with a
    :class:`~importstate.SQLiteStore`) from several processes on one file:
    each change is one store transaction.

    Args:
        store: where operations and staged users live.
        importers: importer key → importer (a per-user callable or an object
            with ``import_batch``); ``run`` uses the operation's key.
        names: importer key → display name for ``progress()``; the key
            itself when absent (``api`` is ``API``).
        known_roles: roles a staged user may carry.
        default_roles: roles merged into every staged user.
        clock: returns the current UTC time (tests pass a fake one).
        lease_seconds: how long a parallel worker's batch lease lasts; a
            living worker renews it, a batch whose worker died is taken over
            this long after its last renewal.
    """

    def __init__(  # noqa: PLR0913 - every argument is an optional, keyword-only policy
        self,
        store: Store,
        importers: Mapping[str, Importer] | None = None,
        *,
        names: Mapping[str, str] | None = None,
        known_roles: Collection[str] = _users.KNOWN_ROLES,
        default_roles: Sequence[str] = _users.DEFAULT_ROLES,
        clock: Callable[[], dt.datetime] = utc_now,
        batch_size: int = BATCH_SIZE,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self.store = store
        self.importers: dict[str, Importer] = dict(importers or {})
        self.names = {**DEFAULT_NAMES, **(names or {})}
        self.known_roles = frozenset(known_roles)
        self.default_roles = tuple(default_roles)
        self.clock = clock
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds

    # -- creating and filling --------------------------------------------------------------

    def new_operation(
        self, user_id: str, *, type: str = "api", importer_key: str | None = None,  # noqa: A002
    ) -> Operation:
        """Clear every operation and its staging, then create a new one (``import.new``).

        A run of an older operation stops at its next batch boundary.
        """
        with self.store.transaction() as tx:
            self._clear(tx)
            operation = Operation.create(
                user=user_id, at=self.clock(), type=type, importer_key=importer_key,
            )
            tx.insert(operation)
        return operation

    def clear(self) -> None:
        """Invalidate every valid operation and delete all staged records (``import.clear``)."""
        with self.store.transaction() as tx:
            self._clear(tx)

    def _clear(self, tx: Transaction) -> None:
        now = self.clock()
        for operation in tx.valid_operations():
            tx.update(operation.fire("invalidate", at=now))
        tx.unstage_all()

    def add_users(self, users: Sequence[Any]) -> Operation | None:
        """Stage users for the current operation (``import.addUsers``); all or none.

        Returns the updated operation, or ``None`` for an empty list (which
        does nothing).

        Raises:
            InvalidUserList: ``users`` is not a list.
            OperationNotInitialized: no current valid operation.
            OperationCannotReceiveData: it is loading or importing.
            OperationAlreadyFinished: it is done, failed or cancelled.
            MissingUserData: an entry lacks ``emails`` or ``importIds``.
            InvalidRoles: an entry has an unknown role.
        """
        users = _users.as_user_list(users)
        if not users:
            return None
        with self.store.reading() as tx:
            self._check_receiving(tx.current())
        records = self._prepare(users)
        with self.store.transaction() as tx:
            operation = self._check_receiving(tx.current())
            tx.stage(operation.id, records)
            added = operation.count.added(total=len(records), users=len(records))
            updated = operation.fire("stage", at=self.clock(), count=added)
            tx.update(updated)
        return updated

    @staticmethod
    def _check_receiving(operation: Operation | None) -> Operation:
        if operation is None or not operation.valid:
            raise OperationNotInitialized
        if operation.state in {State.LOADING, State.IMPORTING}:
            raise OperationCannotReceiveData
        if operation.state in FINISHED_STATES:
            raise OperationAlreadyFinished
        return operation

    def _prepare(self, users: Sequence[Any]) -> list[NewRecord]:
        return _users.prepare(
            users, known_roles=self.known_roles, default_roles=self.default_roles,
        )

    # -- file importers: the loading path --------------------------------------------------

    def begin_loading(
        self, *, file: str | None = None, content_type: str | None = None,
    ) -> Operation:
        """Move a new operation to ``importer_uploading``, recording its file.

        Raises:
            OperationNotFound: no current valid operation.
            InvalidTransition: it is not ``new``.
        """
        return self._fire("begin_loading", file=file, content_type=content_type)

    def advance(self, step: ProgressStep) -> Operation:
        """Move a loading or importing operation forward to ``step``.

        Raises:
            OperationNotFound: no current valid operation.
            InvalidTransition: ``step`` is not later in the same state.
        """
        return self._fire("advance", step=ProgressStep(step))

    def finish_loading(self) -> Operation:
        """Move a loading operation to ``importer_user_selection`` (state ``ready``).

        Raises:
            OperationNotFound: no current valid operation.
            InvalidTransition: it is not loading.
        """
        return self._fire("finish_loading")

    def stage(self, users: Sequence[Any]) -> Operation | None:
        """Stage users while loading, with ``add_users``'s checks of the users themselves.

        Raises:
            OperationNotFound: no current valid operation.
            InvalidTransition: it is not loading.
            MissingUserData, InvalidRoles: as for ``add_users``; nothing is staged.
        """
        users = _users.as_user_list(users)
        if not users:
            return None
        with self.store.reading() as tx:  # the operation is checked first, as in add_users
            self._check_loading(tx.current())
        records = self._prepare(users)
        with self.store.transaction() as tx:
            operation = self._check_loading(tx.current())
            tx.stage(operation.id, records)
            updated = operation.touched(
                self.clock(), count=operation.count.added(total=len(records), users=len(records)),
            )
            tx.update(updated)
        return updated

    @staticmethod
    def _check_loading(operation: Operation | None) -> Operation:
        if operation is None or not operation.valid:
            raise OperationNotFound
        if operation.state is not State.LOADING:
            raise InvalidTransition(operation.state, "stage", "only while loading")
        return operation

    def _fire(self, event: str, step: ProgressStep | None = None, **changes: Any) -> Operation:  # noqa: ANN401
        with self.store.transaction() as tx:
            updated = self._valid_current(tx).fire(event, at=self.clock(), step=step, **changes)
            tx.update(updated)
        return updated

    @staticmethod
    def _valid_current(tx: Transaction) -> Operation:
        operation = tx.current()
        if operation is None or not operation.valid:
            raise OperationNotFound
        return operation

    # -- running ---------------------------------------------------------------------------

    def run(self, importer: Importer | None = None, *, workers: int = 1) -> Operation:
        """Import every staged user of the current operation in batches; return the final operation.

        With ``workers`` > 1 the run is parallel (see :meth:`work`): the
        importer is called from that many threads at once and must be
        thread-safe; the store must have :class:`~importstate.stores.BatchClaims`.

        Runs in the caller's thread. Counts are written once per batch,
        together with a checkpoint. The run stops at a batch boundary when
        the operation is cancelled (it stays cancelled) or invalidated (it
        becomes ``importer_import_failed``). A failing user is kept in
        staging with its error; an error of the library or store fails the
        operation with its message. If another process takes the operation
        over with :meth:`resume` meanwhile, this run stops at its next batch boundary
        without committing and returns the operation as stored.

        Raises:
            OperationNotFound: no current valid operation.
            InvalidOperationStatus: it is not waiting in user selection.
            ImporterNotDefined: no ``importer`` given and its key is not registered.
            WorkersUnsupported: ``workers`` > 1 and the store has no batch claims.
            ValueError: ``workers`` is less than 1.
        """
        if workers != 1:
            return self._in_batches(importer, workers, start=True, join=False)
        with self.store.transaction() as tx:
            operation = self._valid_current(tx)
            if operation.status is not ProgressStep.USER_SELECTION:
                raise InvalidOperationStatus
            call = self._call(operation, importer)
            now = self.clock()
            started = operation.fire(
                "start", at=now, count=operation.count.added(completed=0, error=0),
            )
            tx.update(started)
            claim = Claim.take(tx, started.id, now)
        return self._drive(claim, call)

    def _call(self, operation: Operation, importer: Importer | None) -> BatchCall:
        """``importer``, or the one registered for the operation's key, as one call per batch."""
        return batch_call(
            importer if importer is not None else self.importer_for(operation.importer_key),
        )

    def importer_for(self, key: str) -> Importer:
        """The importer registered under ``key``.

        Raises:
            ImporterNotDefined: none is.
        """
        try:
            return self.importers[key]
        except KeyError:
            raise ImporterNotDefined(key) from None

    def _drive(self, claim: Claim, call: BatchCall) -> Operation:
        """Run the claimed operation from its checkpoint to the end, or until it must stop."""
        try:
            stopped = self._advance_to(claim, ProgressStep.IMPORTING_USERS)
            if stopped is not None:
                return stopped
            for records in self._batches(claim.operation_id, claim.checkpoint):
                stopped = self._commit(claim, records, _outcomes(call, records))
                if stopped is not None:
                    return stopped
            return self._finish(claim)
        except Exception as exc:  # noqa: BLE001 - a library or store error fails the run, kept
            return self._fail(claim, exc)

    def _advance_to(self, claim: Claim, step: ProgressStep) -> Operation | None:
        """Move to ``step`` unless a resumed run is there already; the operation if it must stop."""
        with self.store.transaction() as tx:
            operation = _get(tx, claim.operation_id)
            if not claim.holds(tx):
                return operation
            if _should_stop(operation):
                return self._stop(tx, operation)
            if operation.status.position < step.position:
                tx.update(operation.fire("advance", at=self.clock(), step=step))
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

    def _commit(
        self,
        claim: Claim,
        records: list[StagedRecord],
        outcomes: Sequence[BaseException | None],
    ) -> Operation | None:
        """Write one batch's counts, errors, checkpoint and heartbeat in one transaction.

        Returns the operation if the run must stop here (cancelled,
        invalidated, or claimed by another worker: then nothing is written),
        else ``None``.
        """
        failed = [(r, exc) for r, exc in zip(records, outcomes, strict=True) if exc is not None]
        # Any user's password may be echoed in any message of the batch.
        secrets = _secrets(records) if failed else set()
        failures = [(record.position, _error_doc(exc, secrets)) for record, exc in failed]
        now = self.clock()
        operation_id = claim.operation_id
        with self.store.transaction() as tx:
            operation = _get(tx, operation_id)
            if not claim.holds(tx):
                return operation
            counted = operation.touched(now, count=operation.count.added(
                completed=len(records) - len(failures), error=len(failures),
            ))
            tx.update(counted)
            tx.record_errors(operation_id, failures)
            beat = claim.renew(tx, records[-1].position, now)
            if _should_stop(counted):
                return self._stop(tx, counted)
        claim.renewed(records[-1].position, beat)
        return None

    def _stop(self, tx: Transaction, operation: Operation) -> Operation:
        """End a run that was cancelled (stays so) or invalidated (fails)."""
        if operation.status is ProgressStep.IMPORT_CANCELLED:
            return operation
        now = self.clock()
        failed = operation.fire("fail", at=now, failure=Failure(_INVALIDATED, now))
        tx.update(failed)
        return failed

    def _finish(self, claim: Claim) -> Operation:
        stopped = self._advance_to(claim, ProgressStep.FINISHING)
        if stopped is not None:
            return stopped
        operation_id = claim.operation_id
        with self.store.transaction() as tx:
            operation = _get(tx, operation_id)
            if not claim.holds(tx):
                return operation
            if _should_stop(operation):
                return self._stop(tx, operation)
            tx.remove_succeeded(operation_id)
            done = operation.fire("finish", at=self.clock())
            tx.update(done)
        return done

    def _fail(self, claim: Claim, error: Exception) -> Operation:
        now = self.clock()
        with self.store.transaction() as tx:
            operation = _get(tx, claim.operation_id)
            if operation.status in _TERMINAL_STEPS or not claim.holds(tx):
                return operation
            failed = operation.fire("fail", at=now, failure=Failure(_message(error), now))
            tx.update(failed)
        return failed

    def cancel(self) -> Operation:
        """Cancel the current operation at once; a running import stops at its next batch.

        Staged records stay.

        Raises:
            OperationNotFound: no current valid operation.
            OperationAlreadyFinished: it is done, failed or cancelled.
        """
        with self.store.transaction() as tx:
            operation = self._valid_current(tx)
            if operation.state in FINISHED_STATES:
                raise OperationAlreadyFinished
            cancelled = operation.fire("cancel", at=self.clock())
            tx.update(cancelled)
        return cancelled

    # -- running in parallel ---------------------------------------------------------------

    def work(self, importer: Importer | None = None, *, workers: int = 1) -> Operation:
        """Work on the current operation's parallel run until it has ended; return it as it ended.

        Starts the run if the operation is waiting in user selection (its
        staged users are cut into batches of ``batch_size`` by staging
        order), or joins it if it is running in batches; any number of
        threads, processes and machines may work on one run. Each worker
        leases the next batch (``lease_seconds``, renewed while in hand),
        imports it, and commits its counts, errors and done flag in one
        transaction if it still holds the lease. A batch whose worker died
        reaches the importer again after its lease expires (importers are
        idempotent, as for :meth:`resume`). The last batch commits last, so
        ``completed + error`` is only ever a multiple of ``batch_size`` or
        ``total``, and its commit finishes the run. A cancel or invalidation
        stops every worker after at most the batch it has in hand.

        ``workers`` threads run here; with more than one, the importer must
        be thread-safe.

        Raises:
            OperationNotFound: no current valid operation.
            InvalidOperationStatus: it is neither waiting in user selection nor running in batches.
            ImporterNotDefined: no ``importer`` given and its key is not registered.
            WorkersUnsupported: the store has no batch claims.
            ValueError: ``workers`` is less than 1.
        """
        return self._in_batches(importer, workers, start=True, join=True)

    def _in_batches(
        self, importer: Importer | None, workers: int, *, start: bool, join: bool,
    ) -> Operation:
        """Start (``start``) or join (``join``) the current operation's run in batches."""
        if workers < 1:
            msg = f"workers must be at least 1, not {workers}"
            raise ValueError(msg)
        claims = self._claims()
        with claims.transaction() as tx:
            operation = self._valid_current(tx)
            call = self._call(operation, importer)
            if start and operation.status is ProgressStep.USER_SELECTION:
                operation = self._start_in_batches(tx, operation)
            elif not (join and operation.state is State.IMPORTING
                      and tx.batch_count(operation.id)):
                raise InvalidOperationStatus
        operation_id = operation.id

        def worker() -> Operation:
            try:
                return _parallel.work(
                    claims, operation_id, leases,
                    lambda batch, records: self._import_batch(claims, batch, records, call),
                    lambda: self._ended(operation_id),
                )
            except Exception as exc:  # noqa: BLE001 - a library or store error fails the run, kept
                return self._fail_batches(operation_id, exc)

        with _parallel.Leases(claims, self.lease_seconds) as leases:
            if workers == 1:
                worker()
            else:
                _parallel.in_threads(workers, worker)
        with self.store.reading() as reading:
            return _get(reading, operation_id)

    def _claims(self) -> BatchClaims:
        if not isinstance(self.store, BatchClaims):
            raise WorkersUnsupported(type(self.store).__name__)
        return self.store

    def _start_in_batches(self, tx: BatchTransaction, operation: Operation) -> Operation:
        now = self.clock()
        started = operation.fire(
            "start", at=now, count=operation.count.added(completed=0, error=0),
        ).fire("advance", at=now, step=ProgressStep.IMPORTING_USERS)
        # The heartbeat tells stale_operations the run is alive; each batch renews it.
        tx.update(started)
        tx.set_checkpoint(started.id, None, to_millis_precision(now))
        if tx.cut_batches(started.id, self.batch_size) == 0:
            started = self._done(tx, started)
            tx.update(started)
        return started

    def _import_batch(
        self, claims: BatchClaims, batch: Batch, records: list[StagedRecord], call: BatchCall,
    ) -> None:
        """Import one leased batch and commit it if its lease still holds.

        The commit of the last batch finishes the run; one that finds the
        run cancelled or invalidated counts its batch and stops the run.
        """
        outcomes = _outcomes(call, records) if records else []
        failed = [(r, exc) for r, exc in zip(records, outcomes, strict=True) if exc is not None]
        secrets = _secrets(records) if failed else set()
        failures = [(record.position, _error_doc(exc, secrets)) for record, exc in failed]
        now = self.clock()
        with claims.transaction() as tx:
            operation = _get(tx, batch.operation_id)
            if operation.status in {ProgressStep.DONE, ProgressStep.IMPORT_FAILED}:
                return
            left = tx.finish_batch(batch)
            if left is None:
                # Its lease expired and another worker has it: that one commits it.
                return
            counted = operation.touched(now, count=operation.count.added(
                completed=len(records) - len(failures), error=len(failures),
            ))
            tx.record_errors(batch.operation_id, failures)
            tx.set_checkpoint(
                batch.operation_id, tx.checkpoint(batch.operation_id), to_millis_precision(now),
            )
            if _should_stop(counted):
                tx.update(counted)
                self._stop(tx, counted)
                return
            if left == 0:
                counted = self._done(tx, counted)
            tx.update(counted)

    def _done(self, tx: Transaction, operation: Operation) -> Operation:
        """Finish a run whose every batch is done: drop the succeeded records, move to done."""
        now = self.clock()
        finishing = operation.fire("advance", at=now, step=ProgressStep.FINISHING)
        tx.remove_succeeded(operation.id)
        return finishing.fire("finish", at=now)

    def _ended(self, operation_id: str) -> Operation | None:
        """``None`` while the run goes on; else the operation (failed first if invalidated)."""
        with self.store.reading() as reading:
            operation = _get(reading, operation_id)
        if operation.state is State.IMPORTING and operation.valid:
            return None
        if operation.status in _TERMINAL_STEPS or operation.valid:
            return operation
        # Invalidated while importing: the first worker to see it fails the run.
        with self.store.transaction() as tx:
            operation = _get(tx, operation_id)
            if operation.status in _TERMINAL_STEPS:
                return operation
            return self._stop(tx, operation)

    def _fail_batches(self, operation_id: str, error: Exception) -> Operation:
        now = self.clock()
        with self.store.transaction() as tx:
            operation = _get(tx, operation_id)
            if operation.status in _TERMINAL_STEPS:
                return operation
            failed = operation.fire("fail", at=now, failure=Failure(_message(error), now))
            tx.update(failed)
        return failed

    # -- recovering ------------------------------------------------------------------------

    def resume(self, importer: Importer | None = None, *, workers: int = 1) -> Operation:
        """Continue the current importing operation from its checkpoint; return the final operation.

        An operation running in batches (a parallel run) is joined with
        ``workers`` threads instead, as :meth:`work`: only batches not done
        are imported, once their leases are free.

        For a run whose worker died: every committed batch is skipped, the
        batch that was in flight reaches the importer again (at least once
        per batch: importers are idempotent, keyed by the user's first
        ``importIds`` entry), and the final counts are those of an
        uninterrupted run. A worker still running the operation stops at its
        next batch boundary without committing it, so one worker commits.

        Raises:
            OperationNotFound: no current valid operation.
            InvalidOperationStatus: it is not importing.
            ImporterNotDefined: no ``importer`` given and its key is not registered.
            WorkersUnsupported: ``workers`` > 1 and the store has no batch claims.
        """
        if workers != 1:
            return self._in_batches(importer, workers, start=False, join=True)
        with self.store.transaction() as tx:
            operation = self._valid_current(tx)
            if operation.state is not State.IMPORTING:
                raise InvalidOperationStatus
            call = self._call(operation, importer)
            if _batch_count(tx, operation.id):
                claim = None
            else:
                claim = Claim.take(tx, operation.id, self.clock())
        if claim is None:
            return self._in_batches(importer, workers, start=False, join=True)
        return self._drive(claim, call)

    def stale_operations(self, older_than: dt.timedelta) -> list[Operation]:
        """Importing operations whose heartbeat is older than ``older_than``: their worker is gone.

        A run stores a heartbeat with every batch, so ``older_than`` must be
        longer than the importer ever takes for one batch.
        """
        with self.store.reading() as tx:
            return [op for op in tx.valid_operations() if self._is_stale(tx, op, older_than)]

    def _is_stale(self, tx: Transaction, operation: Operation, older_than: dt.timedelta) -> bool:
        if operation.state is not State.IMPORTING:
            return False
        beat = tx.heartbeat(operation.id)
        return beat is None or beat < self.clock() - older_than

    def sweep_stale(
        self,
        older_than: dt.timedelta,
        action: Literal["resume", "fail"] = "resume",
        importer: Importer | None = None,
    ) -> list[Operation]:
        """Resume or fail every stale operation; return each as it ended.

        ``"resume"`` runs each in the caller's thread, as :meth:`resume`;
        ``"fail"`` moves each to ``importer_import_failed`` with the reason
        kept in its ``failure``. Staleness is checked again in the
        transaction that acts, so of several sweepers one acts on an operation.

        Raises:
            ValueError: ``action`` is neither ``"resume"`` nor ``"fail"``.
            ImporterNotDefined: resuming an operation whose key is not
                registered, and no ``importer`` given.
        """
        if action not in {"resume", "fail"}:
            msg = f"action must be 'resume' or 'fail', not {action!r}"
            raise ValueError(msg)
        swept = []
        for stale in self.stale_operations(older_than):
            ended = self._sweep(stale.id, older_than, action, importer)
            if ended is not None:
                swept.append(ended)
        return swept

    def _sweep(
        self, operation_id: str, older_than: dt.timedelta, action: str, importer: Importer | None,
    ) -> Operation | None:
        with self.store.transaction() as tx:
            operation = _get(tx, operation_id)
            if not self._is_stale(tx, operation, older_than):
                return None
            if action == "fail":
                now = self.clock()
                beat = tx.heartbeat(operation_id)
                last = format_time(beat) if beat is not None else "never"
                reason = f"The import stopped: no heartbeat for {older_than} (last: {last})."
                failed = operation.fire("fail", at=now, failure=Failure(reason, now))
                tx.update(failed)
                return failed
            call = self._call(operation, importer)
            if _batch_count(tx, operation_id):
                claim = None
            else:
                claim = Claim.take(tx, operation_id, self.clock())
        if claim is None:
            return self._in_batches(importer, 1, start=False, join=True)
        return self._drive(claim, call)

    # -- reading ---------------------------------------------------------------------------

    def current_operation(self) -> Operation | None:
        """The newest operation, valid or not (``getCurrentImportOperation``)."""
        with self.store.reading() as tx:
            return tx.current()

    def status(self) -> dict[str, Any]:
        """``{"state": "none"}`` or ``{"state", "operation": <wire document>}``."""
        operation = self.current_operation()
        if operation is None:
            return {"state": State.NONE.value}
        return {"state": operation.state.value, "operation": operation.to_wire()}

    def latest_operations(self, limit: int = LATEST_LIMIT) -> list[Operation]:
        """The most recently updated operations, newest first (``getLatestImportOperations``)."""
        with self.store.reading() as tx:
            return tx.latest(limit)

    def progress(self) -> dict[str, Any]:
        """``{key, name, step, count: {completed, total, error}}`` of the current operation.

        Raises:
            OperationNotFound: no operation exists.
            ImporterNotDefined: its importer key is not registered.
        """
        operation = self.current_operation()
        if operation is None:
            raise OperationNotFound
        key = operation.importer_key
        if key not in self.importers:
            raise ImporterNotDefined(key)
        count = operation.count
        return {
            "key": key,
            "name": self.names.get(key, key),
            "step": operation.status.value,
            "count": {name: count.get(name) for name in ("completed", "total", "error")},
        }

    def staged_users(self) -> Iterator[dict[str, Any]]:
        """The current operation's staged records, ``{_id, data, dataType, errors?}``, streamed."""
        operation = self.current_operation()
        if operation is None:
            return
        after: int | None = None
        while True:
            with self.store.reading() as tx:
                page = tx.staged(operation.id, after=after, limit=self.batch_size * 10)
            if not page:
                return
            for record in page:
                yield record.to_wire()
            after = page[-1].position


def _get(tx: Transaction, operation_id: str) -> Operation:
    operation = tx.get(operation_id)
    if operation is None:
        msg = f"operation {operation_id!r} disappeared from the store"
        raise LookupError(msg)
    return operation


def _batch_count(tx: Transaction, operation_id: str) -> int:
    """How many batches the operation's run was cut into; 0 on a store without batch claims."""
    return tx.batch_count(operation_id) if isinstance(tx, BatchTransaction) else 0


def _should_stop(operation: Operation) -> bool:
    return operation.status is ProgressStep.IMPORT_CANCELLED or not operation.valid


def _outcomes(call: BatchCall, records: list[StagedRecord]) -> Sequence[BaseException | None]:
    """The importer's verdict per user; an exception for the whole batch fails every user."""
    try:
        outcomes = call([record.data for record in records])
    except Exception as exc:  # noqa: BLE001 - the batch's users fail, not the run
        return [exc] * len(records)
    if len(outcomes) != len(records):
        error = RuntimeError(f"importer returned {len(outcomes)} results for {len(records)} users")
        return [error] * len(records)
    return outcomes


def _message(error: BaseException, secrets: Collection[str] = ()) -> str:
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


def _secrets(records: Sequence[StagedRecord]) -> set[str]:
    """The batch's passwords: an importer's message may echo any user of its batch."""
    return {
        password for record in records
        if isinstance(password := record.data.get("password"), str) and password
    }


def _error_doc(error: BaseException, secrets: Collection[str] = ()) -> dict[str, str]:
    return {"message": _message(error, secrets), "type": type(error).__name__}
