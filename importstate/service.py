"""The import service: Rocket.Chat's import API over a store (Behaviour: service to selection)."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Any, Final, Literal, TypeVar

from importstate import _history, _loading, _pending, _run, _staging, machine
from importstate._bus import Bus
from importstate._ids import new_id
from importstate._polling import Poller
from importstate._run import MAX_ERROR_MESSAGE, PASSWORD_MASK, valid_current
from importstate._run.ledger import Ledger
from importstate._time import utc_now
from importstate.documents import ProgressDocument, StatusDocument
from importstate.errors import (
    HistoryUnsupported,
    InvalidImportOperation,
    InvalidRoles,
    InvalidTransition,
    MissingUserData,
    OperationAlreadyFinished,
    OperationCannotReceiveData,
    OperationNotFound,
    OperationNotInitialized,
    PruneUnsupported,
    SelectionNotReady,
)
from importstate.events import Listener, OperationEvent
from importstate.history import HistoryEntry
from importstate.importers import Importer, registered
from importstate.loaders import (
    BUILTIN_LOADERS,
    MAX_LINE,
    MAX_RATIO,
    MAX_UNPACKED_SIZE,
    FileLimits,
    Loader,
    available,
    loader_for,
)
from importstate.machine import Event
from importstate.model import Count, Operation
from importstate.pending import PENDING_NAMES, Fetch, PendingKind, PendingSource
from importstate.records import DataType, RecordKind, kind_of
from importstate.selection import WAITING_STEPS, Offer, Selection
from importstate.steps import FINISHED_STATES, ProgressStep, State
from importstate.stores import (
    HistoryTransaction,
    NewRecord,
    Pending,
    StagedRecord,
    Store,
    Transaction,
)

__all__ = [
    "BATCH_SIZE",
    "DEFAULT_NAMES",
    "LATEST_LIMIT",
    "LEASE_SECONDS",
    "MAX_ERROR_MESSAGE",
    "MESSAGE_BATCH_SIZE",
    "PASSWORD_MASK",
    "ImportService",
]

#: Users and channels handed to the importer, and counted, per batch (Behaviour: counts, records).
BATCH_SIZE: Final = 50
#: Messages handed to the importer, and counted, per batch (Rocket.Chat's flush rule,
#: Behaviour: records).
MESSAGE_BATCH_SIZE: Final = 500
#: Seconds a parallel worker's lease on a batch lasts unless renewed.
LEASE_SECONDS: Final = 30.0
#: Operations ``latest_operations`` returns by default.
LATEST_LIMIT: Final = 20
#: A record that a paged read of staging gives.
_Paged = TypeVar("_Paged", StagedRecord, Pending)
#: Display names of importer keys (``getImportProgress``'s ``name``): the API's and the loaders'.
DEFAULT_NAMES: Final = {
    "api": "API", **{key: ld.name for key, ld in BUILTIN_LOADERS.items()}, **PENDING_NAMES,
}


class ImportService:
    """Create, fill, run, cancel and inspect import operations.

    Every method is safe to call from several threads, and (with a
    :class:`~importstate.SQLiteStore`) from several processes on one file:
    each change is one store transaction.

    Args:
        store: where operations and staged records live.
        importers: importer key → importer (a per-user callable, or an
            object with ``import_batch`` and, for channels and messages,
            ``import_channels`` and ``import_messages``); ``run`` uses the
            operation's key.
        names: importer key → display name for ``progress()`` and
            ``selection()``; else the loader's name, else the key itself
            (``api`` is ``API``, ``slack-users`` is ``Slack_Users``).
        loaders: importer key → file importer for ``load_file``, beside
            the built-in ones and those of entry points
            (:mod:`importstate.loaders`).
        known_roles: roles a staged user may carry.
        default_roles: roles merged into every staged user.
        clock: returns the current UTC time (tests pass a fake one).
        batch_size: users and channels per batch.
        message_batch_size: messages per batch.
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
        known_roles: Collection[str] = _staging.KNOWN_ROLES,
        default_roles: Sequence[str] = _staging.DEFAULT_ROLES,
        clock: Callable[[], dt.datetime] = utc_now,
        batch_size: int = BATCH_SIZE,
        message_batch_size: int = MESSAGE_BATCH_SIZE,
        lease_seconds: float = LEASE_SECONDS,
        loaders: Mapping[str, Loader] | None = None,
    ) -> None:
        self.store = store
        self.loaders: dict[str, Loader] = dict(loaders or {})
        self.importers: dict[str, Importer] = dict(importers or {})
        self.names = {
            **DEFAULT_NAMES, **{key: ld.name for key, ld in self.loaders.items()}, **(names or {}),
        }
        self.known_roles = frozenset(known_roles)
        self.default_roles = tuple(default_roles)
        self.clock = clock
        self.batch_size = batch_size
        self.message_batch_size = message_batch_size
        self.lease_seconds = lease_seconds
        self._bus = Bus()

    # -- events ----------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with each event of this service's commits; return the unsubscribe.

        The events are :class:`~importstate.events.StateChanged` (every
        stored change of an operation's status or validity) and
        :class:`~importstate.events.BatchCommitted` (every batch a run
        commits). They are delivered once the transaction that stored them
        has committed, in commit order, in the thread that committed (the
        run's, for a run), before that thread goes on: a listener holds up
        the run, and the commits of this service's other threads, while it
        runs. A listener that raises is logged (``importstate.events``) and
        the others still get the event. It may call the service, writes
        included (``cancel``, say), from its own thread (one that waits for a
        write of this service in another thread waits forever: the commits of
        this service take turns). Changes made through another service object,
        or another process, are not delivered: :meth:`watch` sees them.
        """
        return self._bus.subscribe(listener)

    def watch(self, interval: float = 1.0) -> Iterator[OperationEvent]:
        """The events of changes made anywhere, found by reading the store every ``interval`` s.

        For a process that follows runs made by others (another worker
        process, ``importstate serve``, another machine on PostgreSQL): it
        yields the types :meth:`subscribe` delivers, from the current
        operation and from an older one a run may still write to. What
        happened between two reads comes together: the steps passed as one
        :class:`~importstate.events.StateChanged` (``before`` the step last
        read), the batches committed as one
        :class:`~importstate.events.BatchCommitted` with their counts added
        up. It starts from what is stored when ``watch`` is called, never
        ends on its own (stop iterating when you have seen enough), and
        holds no transaction between reads.
        """
        poller = Poller(self.store)
        return _polled(poller, interval)

    def _transaction(self) -> AbstractContextManager[Transaction]:
        return self._bus.transaction(self.store.transaction)

    # -- history ---------------------------------------------------------------------------

    @staticmethod
    def acting(actor: str) -> AbstractContextManager[None]:
        """Record the changes made inside the ``with`` block as caused by ``actor``.

        Context-local (a :mod:`contextvars` variable): it holds in this
        thread or asyncio task, and in the threads this service starts for
        the calls made inside it (``AsyncImportService`` calls included). The
        steps a run then takes on its own are recorded as ``run`` (``resume``,
        ``sweep``), an invalidation by a newer operation as
        ``operation:<its id>``; with no actor set a change is ``library``'s.

        Raises:
            ValueError: ``actor`` is empty.
        """
        return _history.acting(actor)

    def history(self, operation_id: str | None = None) -> list[HistoryEntry]:
        """Every stored change of the operation's status, oldest first (the current one's).

        Raises:
            OperationNotFound: there is no such operation (no operation at all).
            HistoryUnsupported: the store keeps no history.
        """
        with self.store.reading() as tx:
            if not isinstance(tx, HistoryTransaction):
                raise HistoryUnsupported(type(self.store).__name__)
            operation = tx.current() if operation_id is None else tx.get(operation_id)
            if operation is None:
                raise OperationNotFound
            return tx.history(operation.id)

    # -- creating and filling --------------------------------------------------------------

    def new_operation(
        self, user_id: str, *, type: str = "api", importer_key: str | None = None,  # noqa: A002
    ) -> Operation:
        """Clear every operation and its staging, then create a new one (``import.new``).

        A run of an older operation stops at its next batch boundary.
        """
        newer = new_id()
        with self._transaction() as tx:
            self._clear(tx, by=newer)
            operation = Operation.create(
                user=user_id, at=self.clock(), type=type, importer_key=importer_key,
                operation_id=newer,
            )
            tx.insert(operation)
        return operation

    def clear(self) -> None:
        """Invalidate every valid operation and delete all staged records (``import.clear``)."""
        with self._transaction() as tx:
            self._clear(tx)

    def _clear(self, tx: Transaction, by: str | None = None) -> None:
        """Invalidate every valid operation, as the newer operation ``by`` if there is one."""
        now = self.clock()
        with _history.acting(_history.invalidated_by(by)) if by else contextlib.nullcontext():
            for operation in tx.valid_operations():
                tx.update(operation.fire(Event.INVALIDATE, at=now))
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
        return self._add(kind_of(DataType.USER), users)

    def add_channels(self, channels: Sequence[Any]) -> Operation | None:
        """Stage channels (rooms) for the current operation; all or none (Behaviour: records).

        The checks and their order are those of ``add_users``; each channel gets
        ``t`` (``c``, public) and ``users`` (none) when it has none. Adds to
        ``count.channels`` and ``count.total``.

        Raises:
            InvalidChannelList: ``channels`` is not a list.
            OperationNotInitialized: as for ``add_users``.
            OperationCannotReceiveData: as for ``add_users``.
            OperationAlreadyFinished: as for ``add_users``.
            MissingChannelData: an entry lacks ``importIds`` or ``name``, or
                has a ``t`` other than ``c``, ``p``, ``d`` or ``users`` that
                is not a list of import ids.
        """
        return self._add(kind_of(DataType.CHANNEL), channels)

    def add_messages(self, messages: Sequence[Any]) -> Operation | None:
        """Stage messages for the current operation; all or none (Behaviour: records).

        The checks and their order are those of ``add_users``. Adds to
        ``count.messages`` and ``count.total``.

        Raises:
            InvalidMessageList: ``messages`` is not a list.
            OperationNotInitialized: as for ``add_users``.
            OperationCannotReceiveData: as for ``add_users``.
            OperationAlreadyFinished: as for ``add_users``.
            MissingMessageData: an entry lacks ``importIds``, ``rid``,
                ``u._id`` or ``msg`` (a string, maybe empty), or its ``ts``
                is not ISO-8601 or epoch milliseconds.
        """
        return self._add(kind_of(DataType.MESSAGE), messages)

    def _add(self, kind: RecordKind, given: Sequence[Any]) -> Operation | None:
        given = _staging.as_list(given, kind)
        if not given:
            return None
        with self.store.reading() as tx:
            self._check_receiving(tx.current())
        records = self._prepare(kind, given)
        with self._transaction() as tx:
            operation = self._check_receiving(tx.current())
            tx.stage(operation.id, records)
            added = _added(operation, kind, records)
            updated = operation.fire(Event.STAGE, at=self.clock(), count=added)
            tx.update(updated)
        return updated

    @staticmethod
    def _check_receiving(operation: Operation | None) -> Operation:
        if operation is None or not operation.valid:
            raise OperationNotInitialized
        if not machine.allows(Event.STAGE, operation.state):
            if operation.state in FINISHED_STATES:
                raise OperationAlreadyFinished
            raise OperationCannotReceiveData
        return operation

    def _prepare(self, kind: RecordKind, records: Sequence[Any]) -> Sequence[NewRecord]:
        return _staging.prepare(
            kind, records, known_roles=self.known_roles, default_roles=self.default_roles,
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
        return self._fire(Event.BEGIN_LOADING, file=file, content_type=content_type)

    def advance(self, step: ProgressStep) -> Operation:
        """Move a loading or importing operation forward to ``step``.

        Raises:
            OperationNotFound: no current valid operation.
            InvalidTransition: ``step`` is not later in the same state.
        """
        return self._fire(Event.ADVANCE, step=ProgressStep(step))

    def finish_loading(self) -> Operation:
        """Move a loading operation to ``importer_user_selection`` (state ``ready``).

        Raises:
            OperationNotFound: no current valid operation.
            InvalidTransition: it is not loading.
        """
        return self._fire(Event.FINISH_LOADING)

    def stage(
        self, records: Sequence[Any], data_type: DataType | str = DataType.USER,
    ) -> Operation | None:
        """Stage records of ``data_type`` while loading, checked as ``add_users`` checks them.

        (Channels as ``add_channels``, messages as ``add_messages`` do.)

        Raises:
            ValueError: ``data_type`` is not ``user``, ``channel`` or ``message``.
            OperationNotFound: no current valid operation.
            InvalidTransition: it is not loading.
            MissingRecordData, InvalidRoles: as for ``add_users``; nothing is staged.
        """
        kind = kind_of(data_type)
        given = _staging.as_list(records, kind)
        if not given:
            return None
        with self.store.reading() as tx:  # the operation is checked first, as in add_users
            self._check_loading(tx.current())
        prepared = self._prepare(kind, given)
        with self._transaction() as tx:
            operation = self._check_loading(tx.current())
            tx.stage(operation.id, prepared)
            updated = operation.touched(self.clock(), count=_added(operation, kind, prepared))
            tx.update(updated)
        return updated

    @staticmethod
    def _check_loading(operation: Operation | None) -> Operation:
        if operation is None or not operation.valid:
            raise OperationNotFound
        if not machine.allows(Event.FINISH_LOADING, operation.state):  # i.e. while loading
            raise InvalidTransition(operation.state, Event.STAGE, "only while loading")
        return operation

    def _fire(self, event: Event, step: ProgressStep | None = None, **changes: Any) -> Operation:  # noqa: ANN401
        with self._transaction() as tx:
            updated = valid_current(tx).fire(event, at=self.clock(), step=step, **changes)
            tx.update(updated)
        return updated

    def load_file(  # noqa: PLR0913 - every argument after the importer is an optional keyword
        self,
        file: str | os.PathLike[str] | IO[bytes],
        importer: str = "csv",
        *,
        user_id: str = "importstate",
        file_name: str | None = None,
        content_type: str | None = None,
        max_unpacked_size: int = MAX_UNPACKED_SIZE,
        max_ratio: float = MAX_RATIO,
        max_line: int = MAX_LINE,
        progress: Callable[[Operation], None] | None = None,
        download: Callable[[IO[bytes]], object] | None = None,
    ) -> Operation:
        """Load a file with the file importer ``importer`` in a new operation (Behaviour: files).

        Creates the operation (clearing every other, as :meth:`new_operation`;
        ``type`` the importer's name), records ``file`` (``file_name``, else
        the file's own) and ``contentType`` (else the importer's), then moves
        through ``importer_uploading``, ``_file_loaded`` and
        ``_preparing_started``, each committed. The file is then parsed as it
        is read and staged a chunk at a time in one transaction, which also
        writes the preparing steps, the counts and ``importer_user_selection``:
        other readers see the operation preparing, then ready. ``progress``
        is called with the operation as each step and chunk goes by.

        Returns the operation ready with its selection, or failed: a bad file
        (:class:`~importstate.errors.FileFormatError`, naming the member and
        line) or any other error while parsing stages nothing and fails the
        operation with the message in ``failure``. Ctrl-C (any
        ``BaseException``) cancels it, nothing staged, and is raised again.

        ``file`` is a path or a binary file; an archive that cannot seek is
        spooled to a temporary file. With ``download``, ``file`` is the path
        the file is fetched to first: the operation moves on to
        ``importer_downloading_file`` (committed), ``download`` is called with
        the path open for writing, and an error it raises fails the
        operation with its message (as ``downloadPublicImportFile``). The
        limits are the spec's: the bytes an archive unpacks to, the ratio of
        a member's unpacked to compressed size (members over 1 MiB), the
        bytes of a line.

        Raises:
            ImporterNotDefined: no loader, or no importer to run it, has the key.
            ValueError: a limit is not positive.
            OSError: the path cannot be opened (nothing is changed).
        """
        limits = FileLimits(max_unpacked_size, max_ratio, max_line)
        loader = loader_for(importer, self.loaders)
        registered(self.importers, importer)
        loading = _loading.Loading(self._transaction, self._prepare, self.clock)
        if download is not None:
            if not isinstance(file, str | os.PathLike):
                msg = "a download is fetched to a path, not to an open file"
                raise TypeError(msg)
            self.new_operation(user_id, type=loader.name, importer_key=importer)
            operation = self.begin_loading(
                file=file_name or Path(file).name,
                content_type=content_type or loader.content_type,
            )
            _loading.report(progress, operation)
            operation = self.advance(ProgressStep.DOWNLOADING_FILE)
            _loading.report(progress, operation)
            fetched = loading.fetch(operation, file, download)
            if fetched is not operation:
                _loading.report(progress, fetched)
                return fetched
        with _loading.opened(file) as (handle, own_name):
            name = file_name or own_name
            if download is None:
                self.new_operation(user_id, type=loader.name, importer_key=importer)
                operation = self.begin_loading(
                    file=name, content_type=content_type or loader.content_type,
                )
            for step in _loading.BEFORE_PARSING:
                _loading.report(progress, operation)
                operation = self.advance(step)
            _loading.report(progress, operation)
            return loading.load(
                operation, loader, handle, name, limits=limits, progress=progress,
            )

    # -- pending downloads: files and avatars the target still has to fetch ---------------

    def begin_pending(
        self, kind: PendingKind | str, source: PendingSource, *, user_id: str = "importstate",
    ) -> Operation:
        """Create the operation that fetches what ``source`` has still to fetch.

        Behaviour: file-api.

        As :meth:`new_operation` (every other operation is cleared, a running
        one stops at its next batch), with ``type`` ``Pending Files`` or
        ``Pending Avatars`` and ``importerKey`` ``pending-files`` or
        ``pending-avatars``. Its ``count.total`` is the number of pending
        downloads (``completed`` and ``error`` at 0); with none it is
        ``importer_done`` at once, otherwise ``importer_importing_files``
        until :meth:`fetch_pending` has fetched them. Fast: a server answers
        with the count, then fetches in the background.

        Raises:
            ValueError: ``kind`` is neither ``files`` nor ``avatars``.
        """
        kind = PendingKind(kind)
        pending = len(source.pending_downloads(kind))
        now = self.clock()
        newer = new_id()
        with self._transaction() as tx:
            self._clear(tx, by=newer)
            created = Operation.create(
                user=user_id, at=now, type=kind.importer_name, importer_key=kind.importer_key,
                operation_id=newer,
            )
            operation = _pending.begun(created, pending, now)
            tx.insert(operation)
            tx.set_checkpoint(operation.id, None, now)  # the heartbeat, as a run's first
        return operation

    def fetch_pending(
        self, operation: Operation, source: PendingSource, fetch: Fetch,
        files_dir: str | os.PathLike[str],
    ) -> Operation:
        """Fetch the downloads of an operation :meth:`begin_pending` made; return it as it ended.

        Runs in the caller's thread, one file at a time: each goes to
        ``files_dir/<kind>/<import id, %-quoted>`` (written as ``.part``,
        then renamed) and is recorded in ``source`` with its path, or with
        its error (a refused URL, a failed download), which counts in
        ``count.error`` and leaves it pending for a later attempt. The counts
        are written after each file. A cancel, or a new operation, stops the
        downloads before the next file: cancelled stays cancelled, replaced
        becomes ``importer_import_failed``; otherwise the operation ends
        ``importer_done``. An error of the store or of ``source`` fails it
        with the message in ``failure``; Ctrl-C (any ``BaseException``)
        cancels it and is raised again.

        Raises:
            ValueError: ``operation`` is not a pending-download operation.
            LookupError: it is not in the store.
        """
        kind = PendingKind(operation.importer_key.removeprefix("pending-"))
        ledger = Ledger(self.store, self.clock, self._bus)
        downloads = _pending.Downloads(ledger, source, fetch, Path(files_dir))
        with _history.acting(_history.RUN):  # the downloads' steps are the loop's own
            return downloads.run(operation.id, kind)

    def download_pending(
        self,
        kind: PendingKind | str,
        *,
        source: PendingSource,
        fetch: Fetch,
        files_dir: str | os.PathLike[str],
        user_id: str = "importstate",
    ) -> Operation:
        """:meth:`begin_pending`, then :meth:`fetch_pending` here; the operation as it ended.

        Raises:
            ValueError: ``kind`` is neither ``files`` nor ``avatars``.
        """
        operation = self.begin_pending(kind, source, user_id=user_id)
        if operation.status is not _pending.DOWNLOADING:
            return operation
        return self.fetch_pending(operation, source, fetch, files_dir)

    # -- running ---------------------------------------------------------------------------

    def run(
        self,
        importer: Importer | None = None,
        *,
        workers: int = 1,
        selection: Selection | Mapping[str, Any] | None = None,
    ) -> Operation:
        """Import the current operation's staged records in batches; return the final operation.

        Users first, then channels, then messages (the status shows the
        phase; a phase without records is passed through); users and
        channels in batches of ``batch_size``, messages of
        ``message_batch_size``. With a ``selection`` (a
        :class:`~importstate.selection.Selection`, say
        ``selection().choose(users=[...])``, or its wire form, ``startImport``'s
        ``{users?: {all?, list?}, channels?: {all?, list?}}``) only what it
        keeps is imported, and the counts are narrowed to it when the run starts.

        With ``workers`` > 1 the run is parallel (see :meth:`work`): the
        importer is called from that many threads at once and must be
        thread-safe; the store must have :class:`~importstate.stores.BatchClaims`.

        Runs in the caller's thread. Counts are written once per batch,
        together with a checkpoint. The run stops at a batch boundary when
        the operation is cancelled (it stays cancelled) or invalidated (it
        becomes ``importer_import_failed``). A failing record is kept in
        staging with its error; an error of the library or store fails the
        operation with its message. If another process takes the operation
        over with :meth:`resume` meanwhile, this run stops at its next batch boundary
        without committing and returns the operation as stored.

        Raises:
            InvalidSelection: ``selection`` does not fit (checked first).
            OperationNotFound: no current valid operation.
            InvalidOperationStatus: it is not waiting in user selection.
            ImporterNotDefined: no ``importer`` given and its key is not registered.
            ImporterCannotImport: the importer has no method for a type staged.
            WorkersUnsupported: ``workers`` > 1 and the store has no batch claims.
            ValueError: ``workers`` is less than 1.
        """
        if selection is not None and not isinstance(selection, Selection):
            selection = Selection.from_wire(selection)
        return self._runner(importer).run(workers, selection)

    def importer_for(self, key: str) -> Importer:
        """The importer registered under ``key``.

        Raises:
            ImporterNotDefined: none is.
        """
        return registered(self.importers, key)

    def _runner(self, importer: Importer | None) -> _run.Runner:
        # Built per call: clock, batch_size and lease_seconds are settings a caller may change.
        return _run.Runner(
            self.store, self.importers, importer, clock=self.clock,
            bus=self._bus, batch_size=self.batch_size,
            message_batch_size=self.message_batch_size, lease_seconds=self.lease_seconds,
        )

    def cancel(self) -> Operation:
        """Cancel the current operation at once; a running import stops at its next batch.

        Staged records stay.

        Raises:
            OperationNotFound: no current valid operation.
            OperationAlreadyFinished: it is done, failed or cancelled.
        """
        with self._transaction() as tx:
            operation = valid_current(tx)
            if not machine.allows(Event.CANCEL, operation.state):
                raise OperationAlreadyFinished
            cancelled = operation.fire(Event.CANCEL, at=self.clock())
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
            ImporterCannotImport: the importer has no method for a type staged.
            WorkersUnsupported: the store has no batch claims.
            ValueError: ``workers`` is less than 1.
        """
        return self._runner(importer).work(workers)

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
        return self._runner(importer).resume(workers)

    def stale_operations(self, older_than: dt.timedelta) -> list[Operation]:
        """Importing operations whose heartbeat is older than ``older_than``: their worker is gone.

        A run stores a heartbeat with every batch, so ``older_than`` must be
        longer than the importer ever takes for one batch.
        """
        return self._runner(None).stale_operations(older_than)

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
        runner = self._runner(importer)
        swept = []
        for stale in runner.stale_operations(older_than):
            ended = runner.sweep(stale.id, older_than, action)
            if ended is not None:
                swept.append(ended)
        return swept

    # -- reading ---------------------------------------------------------------------------

    def current_operation(self) -> Operation | None:
        """The newest operation, valid or not (``getCurrentImportOperation``)."""
        with self.store.reading() as tx:
            return tx.current()

    def status(self) -> StatusDocument:
        """``{"state": "none"}`` or ``{"state", "operation": <wire document>}``."""
        operation = self.current_operation()
        if operation is None:
            return {"state": State.NONE.value}
        return {"state": operation.state.value, "operation": operation.to_wire()}

    def latest_operations(self, limit: int = LATEST_LIMIT) -> list[Operation]:
        """The most recently updated operations, newest first (``getLatestImportOperations``)."""
        with self.store.reading() as tx:
            return tx.latest(limit)

    def progress(self) -> ProgressDocument:
        """``{key, name, step, count: {completed, total, error}}`` of the current operation.

        Raises:
            OperationNotFound: no operation exists.
            ImporterNotDefined: its importer key is not registered (the two
                pending-download keys need no importer).
        """
        operation = self.current_operation()
        if operation is None:
            raise OperationNotFound
        key = operation.importer_key
        self._known(key)
        count = operation.count
        return {
            "key": key,
            "name": self._name(key),
            "step": operation.status.value,
            "count": {"completed": count.get("completed"), "total": count.get("total"),
                      "error": count.get("error")},
        }

    def selection(self) -> Offer:
        """What the current operation offers to import (``getImportFileData``).

        Behaviour: selection.

        Built from its staging: an entry per staged user and channel, and the
        message count; ``.to_wire()`` is the REST document and
        ``.choose(users=..., channels=...)`` the :class:`Selection` to
        :meth:`run` with. Reading it changes nothing.

        Raises:
            OperationNotFound: no operation exists.
            ImporterNotDefined: its importer key is not registered.
            InvalidImportOperation: it is preparing but no longer valid.
            SelectionNotReady: it is downloading or preparing (there is no
                selection yet; the REST API answers ``{waiting: true}``).
        """
        operation = self.current_operation()
        if operation is None:
            raise OperationNotFound
        key = operation.importer_key
        self._known(key)
        if operation.status in WAITING_STEPS:
            if not operation.valid:
                raise InvalidImportOperation
            raise SelectionNotReady(operation.status)
        if operation.status is ProgressStep.USER_SELECTION and operation.valid:
            # Before a run nothing is left out, and the counts are the staging's (a
            # cleared operation's staging is gone):
            # its users and channels are read by type, its messages counted, not read.
            records = itertools.chain.from_iterable(
                self._pending(operation.id, data_type)
                for data_type in (DataType.USER, DataType.CHANNEL)
            )
            return Offer.of(records, self._name(key), message_count=operation.count.get("messages"))
        return Offer.of(self._staged(operation.id), self._name(key))

    def _pending(self, operation_id: str, data_type: DataType) -> Iterator[StagedRecord]:
        """The operation's records of one type, as :meth:`_staged` reads them."""
        for record in self._paged(lambda tx, after, limit: tx.pending(
            operation_id, data_type, after=after, limit=limit,
        )):
            yield StagedRecord(record.position, "", record.data, data_type, ())

    def _known(self, key: str) -> None:
        """Raise :class:`ImporterNotDefined` unless ``key`` is registered or a pending key."""
        if key not in PENDING_NAMES:
            registered(self.importers, key)

    def _name(self, key: str) -> str:
        name = self.names.get(key)
        if name is None:
            loader = available().get(key)
            name = loader.name if loader is not None else key
        return name

    def staged_records(
        self, data_type: DataType | str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The current operation's staged records, ``{_id, data, dataType, errors?}``, streamed.

        Every type in staging order, or ``data_type``'s only.
        """
        wanted = None if data_type is None else kind_of(data_type).data_type
        operation = self.current_operation()
        if operation is None:
            return
        for record in self._staged(operation.id):
            if wanted is None or record.data_type == wanted:
                yield record.to_wire()

    def staged_users(self) -> Iterator[dict[str, Any]]:
        """The current operation's staged users, ``{_id, data, dataType, errors?}``, streamed."""
        return self.staged_records(DataType.USER)

    def failed_records(
        self, data_type: DataType | str | None = None, *, masked: bool = True,
    ) -> Iterator[dict[str, Any]]:
        """The current operation's staged records that failed, with their ``errors``, streamed.

        Every type, or ``data_type``'s only. A record's ``data.password`` is
        :data:`PASSWORD_MASK` unless ``masked`` is false (a retry needs it).
        """
        for record in self.staged_records(data_type):
            if record.get("errors"):
                yield _without_password(record) if masked else record

    def _staged(self, operation_id: str) -> Iterator[StagedRecord]:
        """The operation's staging in order, a page per snapshot (a reader may take its time)."""
        return self._paged(lambda tx, after, limit: tx.staged(
            operation_id, after=after, limit=limit,
        ))

    def _paged(self, read: Callable[[Transaction, int | None, int], Sequence[_Paged]]) -> (
        Iterator[_Paged]
    ):
        """What ``read(tx, after, limit)`` gives, page after page, each in a snapshot of its own."""
        after: int | None = None
        while True:
            with self.store.reading() as tx:
                page = read(tx, after, self.batch_size * 10)
            if not page:
                return
            yield from page
            after = page[-1].position

    # -- staging a stream ------------------------------------------------------------------

    def add_users_from(self, chunks: Iterable[Sequence[Any]]) -> Operation | None:
        """Stage a stream of users, chunk by chunk, in one transaction; all or none.

        For input too large to hold as one list (a file read as it is
        parsed): each chunk is checked and staged as it arrives, so memory
        holds one chunk at a time; the counts and the move to
        ``importer_user_selection`` are written once, at the end. The first
        bad user rolls back every chunk staged before it, and so does an
        exception raised by the iterable itself. The checks are those of
        :meth:`add_users`, with one difference a stream imposes: a chunk is
        checked for data and roles before the next one is read, so the first
        bad user of the stream is the one reported.

        The store's write lock is held from the first non-empty chunk to the
        last: other writers wait for the whole stream (up to the store's
        timeout).

        Returns the updated operation, or ``None`` when there is no user at
        all (the operation is then not looked at).

        Raises:
            InvalidUserList: a chunk is not a list.
            OperationNotInitialized: no current valid operation.
            OperationCannotReceiveData: it is loading or importing.
            OperationAlreadyFinished: it is done, failed or cancelled.
            MissingUserData: as for ``add_users``; ``index`` counts from the stream's first user.
            InvalidRoles: same.
        """
        users_kind = kind_of(DataType.USER)
        lists = (users for chunk in chunks if (users := _staging.as_list(chunk, users_kind)))
        first = next(lists, None)
        if first is None:
            return None
        with self.store.reading() as tx:  # a refused stream takes no write lock
            self._check_receiving(tx.current())
        with self._transaction() as tx:
            operation = self._check_receiving(tx.current())
            staged = 0
            for users in itertools.chain([first], lists):
                tx.stage(operation.id, self._prepare_at(users, staged))
                staged += len(users)
            added = operation.count.added(total=staged, users=staged)
            updated = operation.fire(Event.STAGE, at=self.clock(), count=added)
            tx.update(updated)
        return updated

    def _prepare_at(self, users: Sequence[Any], offset: int) -> Sequence[NewRecord]:
        """``_prepare`` of a chunk whose first user is the stream's ``offset``-th."""
        try:
            return self._prepare(kind_of(DataType.USER), users)
        except MissingUserData as exc:
            raise MissingUserData(offset + exc.index) from None
        except InvalidRoles as exc:
            raise InvalidRoles(offset + exc.index, exc.role) from None

    # -- a run that died -------------------------------------------------------------------

    def fail(self, operation_id: str, error: BaseException) -> Operation:
        """Fail an importing operation with ``error``'s message in its ``failure``.

        For a host whose run died of an error that the store could not even
        record at the time (``run`` records every error it can). An
        operation that has ended is returned as it is.

        Raises:
            LookupError: no operation has that id.
        """
        return self._runner(None).ledger.fail(operation_id, error)

    # -- pruning ---------------------------------------------------------------------------

    def prune(self, *, keep: int = 0, older_than: dt.timedelta | None = None) -> int:
        """Delete finished operations with their staging; return how many went.

        The ``keep`` most recently updated operations stay (as
        ``latest_operations`` lists them), and so does the current one; with
        ``older_than``, so do those updated since then. Only operations that
        have finished go (done, failed, cancelled, or invalidated once no run
        or loading of them can still be writing).

        Raises:
            PruneUnsupported: the store cannot delete operations.
            ValueError: ``keep`` is negative.
        """
        if keep < 0:
            msg = f"keep must not be negative, not {keep}"
            raise ValueError(msg)
        cutoff = self.clock() - older_than if older_than is not None else None
        with self._transaction() as tx:
            delete = getattr(tx, "delete", None)
            if delete is None:
                raise PruneUnsupported(type(self.store).__name__)
            current = tx.current()
            pruned = 0
            for operation in tx.latest(_EVERY)[keep:]:
                if (current is not None and operation.id == current.id) or not _finished(operation):
                    continue
                if cutoff is None or operation.updated_at < cutoff:
                    pruned += bool(delete(operation.id))
        return pruned


#: More operations than a store holds: ``latest`` with it lists them all.
_EVERY: Final = 2**62


def _polled(poller: Poller, interval: float) -> Iterator[OperationEvent]:
    while True:
        time.sleep(interval)
        yield from poller.poll()


def _finished(operation: Operation) -> bool:
    """Whether nothing can still write to ``operation``: it finished, and no run is under way."""
    return (
        operation.state in FINISHED_STATES
        and operation.status.state not in {State.LOADING, State.IMPORTING}
    )


def _added(operation: Operation, kind: RecordKind, records: Sequence[NewRecord]) -> Count:
    """The operation's counts with ``records`` of ``kind`` staged: the kind's and the total."""
    return operation.count.added(total=len(records), **{kind.count: len(records)})


def _without_password(record: dict[str, Any]) -> dict[str, Any]:
    # Failure listings end up in terminals, pages and tickets: a user's password stays out.
    data = record["data"]
    if "password" not in data:
        return record
    return {**record, "data": {**data, "password": PASSWORD_MASK}}
