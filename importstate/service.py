"""The import service: Rocket.Chat's import API over a store (SPEC §4-5)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any, Final

from importstate import _users
from importstate.errors import (
    ImporterNotDefined,
    InvalidOperationStatus,
    InvalidTransition,
    OperationAlreadyFinished,
    OperationCannotReceiveData,
    OperationNotFound,
    OperationNotInitialized,
)
from importstate.importers import BatchCall, Importer, batch_call
from importstate.model import Failure, Operation, utc_now
from importstate.steps import FINISHED_STATES, ProgressStep, State
from importstate.stores import NewRecord, StagedRecord, Store, Transaction

#: Users handed to the importer, and counted, per batch (SPEC §5).
BATCH_SIZE: Final = 50
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
    ) -> None:
        self.store = store
        self.importers: dict[str, Importer] = dict(importers or {})
        self.names = {**DEFAULT_NAMES, **(names or {})}
        self.known_roles = frozenset(known_roles)
        self.default_roles = tuple(default_roles)
        self.clock = clock
        self.batch_size = batch_size

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
        records = self._prepare(users)
        with self.store.transaction() as tx:
            operation = self._valid_current(tx)
            if operation.state is not State.LOADING:
                raise InvalidTransition(operation.state, "stage", "only while loading")
            tx.stage(operation.id, records)
            updated = operation.touched(
                self.clock(), count=operation.count.added(total=len(records), users=len(records)),
            )
            tx.update(updated)
        return updated

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

    def run(self, importer: Importer | None = None) -> Operation:
        """Import every staged user of the current operation in batches; return the final operation.

        Runs in the caller's thread. Counts are written once per batch,
        together with a checkpoint. The run stops at a batch boundary when
        the operation is cancelled (it stays cancelled) or invalidated (it
        becomes ``importer_import_failed``). A failing user is kept in
        staging with its error; an error of the library or store fails the
        operation with its message.

        Raises:
            OperationNotFound: no current valid operation.
            InvalidOperationStatus: it is not waiting in user selection.
            ImporterNotDefined: no ``importer`` given and its key is not registered.
        """
        with self.store.transaction() as tx:
            operation = self._valid_current(tx)
            if operation.status is not ProgressStep.USER_SELECTION:
                raise InvalidOperationStatus
            call = batch_call(importer if importer is not None else self._importer(operation))
            now = self.clock()
            started = operation.fire(
                "start", at=now, count=operation.count.added(completed=0, error=0),
            )
            tx.update(started)
            tx.set_checkpoint(started.id, None, now)
        return self._drive(started.id, call)

    def _importer(self, operation: Operation) -> Importer:
        try:
            return self.importers[operation.importer_key]
        except KeyError:
            raise ImporterNotDefined(operation.importer_key) from None

    def _drive(self, operation_id: str, call: BatchCall, after: int | None = None) -> Operation:
        try:
            self._advance_to(operation_id, ProgressStep.IMPORTING_USERS)
            for records in self._batches(operation_id, after):
                stopped = self._commit(operation_id, records, _outcomes(call, records))
                if stopped is not None:
                    return stopped
            return self._finish(operation_id)
        except Exception as exc:  # noqa: BLE001 - a library or store error fails the run, kept
            return self._fail(operation_id, exc)

    def _advance_to(self, operation_id: str, step: ProgressStep) -> Operation | None:
        with self.store.transaction() as tx:
            operation = _get(tx, operation_id)
            if _should_stop(operation):
                return self._stop(tx, operation)
            tx.update(operation.fire("advance", at=self.clock(), step=step))
        return None

    def _batches(self, operation_id: str, after: int | None) -> Iterator[list[StagedRecord]]:
        """Stream the operation's staged records in batches, reading ten batches per query."""
        size = self.batch_size
        while True:
            with self.store.reading() as tx:
                page = tx.staged(operation_id, after=after, limit=size * 10)
            if not page:
                return
            for start in range(0, len(page), size):
                yield page[start:start + size]
            after = page[-1].position

    def _commit(
        self,
        operation_id: str,
        records: list[StagedRecord],
        outcomes: Sequence[BaseException | None],
    ) -> Operation | None:
        """Write one batch's counts, errors and checkpoint in one transaction.

        Returns the operation if the run must stop here, else ``None``.
        """
        failures = [
            (record.position, _error_doc(exc))
            for record, exc in zip(records, outcomes, strict=True)
            if exc is not None
        ]
        now = self.clock()
        with self.store.transaction() as tx:
            operation = _get(tx, operation_id)
            counted = operation.touched(now, count=operation.count.added(
                completed=len(records) - len(failures), error=len(failures),
            ))
            tx.update(counted)
            tx.record_errors(operation_id, failures)
            tx.set_checkpoint(operation_id, records[-1].position, now)
            if _should_stop(counted):
                return self._stop(tx, counted)
        return None

    def _stop(self, tx: Transaction, operation: Operation) -> Operation:
        """End a run that was cancelled (stays so) or invalidated (fails)."""
        if operation.status is ProgressStep.IMPORT_CANCELLED:
            return operation
        now = self.clock()
        failed = operation.fire("fail", at=now, failure=Failure(_INVALIDATED, now))
        tx.update(failed)
        return failed

    def _finish(self, operation_id: str) -> Operation:
        stopped = self._advance_to(operation_id, ProgressStep.FINISHING)
        if stopped is not None:
            return stopped
        with self.store.transaction() as tx:
            operation = _get(tx, operation_id)
            if _should_stop(operation):
                return self._stop(tx, operation)
            tx.remove_succeeded(operation_id)
            done = operation.fire("finish", at=self.clock())
            tx.update(done)
        return done

    def _fail(self, operation_id: str, error: Exception) -> Operation:
        now = self.clock()
        with self.store.transaction() as tx:
            operation = _get(tx, operation_id)
            if operation.status in _TERMINAL_STEPS:
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


def _message(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if len(text) > MAX_ERROR_MESSAGE:
        text = text[:MAX_ERROR_MESSAGE] + "… (truncated)"
    return text


def _error_doc(error: BaseException) -> dict[str, str]:
    return {"message": _message(error), "type": type(error).__name__}
