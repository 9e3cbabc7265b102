"""The server's background import: one run per operation, owned by one server, never lost."""

from __future__ import annotations

import contextvars
import datetime as dt
import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Final

from importstate._gate import Gate
from importstate._history import RUN
from importstate.errors import ImportStateError, InvalidOperationStatus, ServerStopping
from importstate.http._lease import RunLease
from importstate.importers import Importer
from importstate.model import Operation
from importstate.selection import WAITING_STEPS, Selection
from importstate.service import ImportService
from importstate.steps import ProgressStep, State

#: Seconds ``stop`` waits for a run to reach a batch boundary.
WIND_DOWN: Final = 30.0
#: Longest pause between two rounds of the watch (renewals, retries, takeovers), in seconds.
_WATCH_EVERY: Final = 5.0
#: Seconds between two prunings.
_PRUNE_EVERY: Final = 3600.0
#: Seconds between two tries to record the failure of a run that died.
_RETRY_EVERY: Final = 0.5

_log = logging.getLogger("importstate.http")

Run = Callable[[Importer | None], Operation]
#: What a loading calls with the operation as it moves on.
Progress = Callable[[Operation], None]


class RunWorker:
    """Runs the service's imports in background threads, one per operation.

    Each run is given the importer registered for its operation's key with a
    gate in front (``service.importers`` is left as it is), so that
    :meth:`stop` can hold the run between two batches.

    With a ``lease``, every run this worker starts or resumes is leased to
    this server (see :mod:`importstate.http._lease`): an import another
    living server runs is never taken over, and one whose server stopped or
    died is (by :meth:`open`'s watch, within a few seconds of its lease
    lapsing). A run that dies of an error after ``start`` answered (the
    store could not even record it) is logged once, and its operation failed
    with the message as soon as the store takes the write.
    """

    def __init__(
        self, service: ImportService, lease: RunLease | None = None, *,
        prune_after: float | None = None,
    ) -> None:
        self.service = service
        self.lease = lease
        self.prune_after = prune_after
        self._gate = Gate()
        self._lock = threading.Lock()
        self._runs: dict[threading.Thread, str | None] = {}
        self._tasks: set[threading.Thread] = set()
        self._stopped = False
        # A dead run's operation and error, while the store refuses the failure.
        self._unrecorded: tuple[str, BaseException] | None = None
        self._wake = threading.Event()  # set once: stop watching
        self._nudge = threading.Event()  # set to start the next round of the watch now
        self._watch: threading.Thread | None = None
        self._told: str | None = None
        self._next_prune = 0.0

    def open(self) -> None:
        """Resume what needs resuming, then watch in a thread of its own until :meth:`stop`.

        The watch renews this server's leases, records the failure of a run
        that died, takes over an import whose server stopped or died, and
        prunes (with ``prune_after``).
        """
        self.resume()
        self._watch = threading.Thread(target=self._watching, name="importstate-watch",
                                       daemon=True)
        self._watch.start()

    def start(self, selection: Selection | None = None) -> None:
        """Start importing the current operation; return once the run has begun.

        With a ``selection``, only what it keeps (``startImport``).

        Answers at once when a run of the operation is going already, here
        or in another server.

        Raises:
            OperationNotFound, InvalidOperationStatus, ImporterNotDefined:
                as ``ImportService.run``; nothing was started.
            ServerStopping: the server is shutting down.
        """
        current = self.service.current_operation()
        operation_id = current.id if current is not None else None
        with self._lock:
            if self._stopped:
                raise ServerStopping
            if operation_id is not None and operation_id in self._runs.values():
                raise InvalidOperationStatus
        if operation_id is not None and self.lease is not None and self.lease.claim(
            operation_id, unowned=True,
        ) is not None:
            raise InvalidOperationStatus
        run: Run = self.service.run
        if selection is not None:
            run = functools.partial(self.service.run, selection=selection)
        self._launch(run, operation_id)

    def resume(self) -> bool:
        """Resume an import whose server stopped or died; whether one was.

        An import that another living server runs, or that a process outside
        any server still sends heartbeats for, is left to it.
        """
        operation = self.service.current_operation()
        if operation is None or not operation.valid or operation.state is not State.IMPORTING:
            return False
        with self._lock:
            if self._stopped or operation.id in self._runs.values():
                return False
        if self.lease is not None:
            holder = self.lease.claim(operation.id, unowned=self._stale(operation))
            if holder is not None:
                if self._told != operation.id:
                    self._told = operation.id
                    _log.info("import %s is run by %s; this server serves reads and takes the"
                              " import over if that stops", operation.id, holder)
                return False
        try:
            self._launch(self.service.resume, operation.id)
        except ImportStateError as exc:  # it ended or was replaced meanwhile
            _log.warning("could not resume import %s: %s", operation.id, exc)
            return False
        _log.info("resumed import %s from its checkpoint", operation.id)
        return True

    def load(
        self, load: Callable[[Progress], Operation], *,
        ended: Callable[[str], None] | None = None,
    ) -> Operation:
        """Load a file in a background thread; the new operation, once a client may poll it.

        ``load`` is ``ImportService.load_file`` with its file and importer
        given, called with the progress callback it must pass on. The call
        returns as soon as the loading's operation is downloading or
        preparing (the client's next ``getImportFileData`` sees it waiting),
        or has ended, or the loading failed before it had an operation.
        ``ended`` is called with the operation's id, in the loading's thread,
        once the loading is over.

        Raises:
            ServerStopping: the server is shutting down.
            Exception: what ``load`` raised before the operation existed.
        """
        loading = _Loading(load, ended)
        self.background(loading.work, "importstate-load")
        return loading.answer()

    def background(self, work: Callable[[], object], name: str) -> None:
        """Do ``work`` in a thread of its own; :meth:`stop` waits for it (up to its timeout).

        Raises:
            ServerStopping: the server is shutting down.
        """
        def task() -> None:
            try:
                work()
            finally:
                with self._lock:
                    self._tasks.discard(threading.current_thread())

        # In a copy of the caller's context: what it writes is recorded as the caller's.
        thread = threading.Thread(target=contextvars.copy_context().run, args=(task,), name=name,
                                  daemon=True)
        with self._lock:
            if self._stopped:
                raise ServerStopping
            self._tasks.add(thread)
            thread.start()

    def _stale(self, operation: Operation) -> bool:
        assert self.lease is not None  # noqa: S101 - only asked with a lease
        older_than = dt.timedelta(seconds=self.lease.takeover_after)
        return any(op.id == operation.id for op in self.service.stale_operations(older_than))

    def _launch(self, run: Run, operation_id: str | None) -> None:
        begun = threading.Event()
        failure: list[BaseException] = []
        thread = threading.Thread(
            target=contextvars.copy_context().run,
            args=(self._work, run, operation_id, begun, failure), name="importstate-run",
            daemon=True,
        )
        with self._lock:
            if self._stopped:
                self._drop(operation_id)
                raise ServerStopping
            self._runs[thread] = operation_id
            thread.start()
        # The run has begun once it hands the importer its first batch, or it ended.
        begun.wait()
        if failure:
            raise failure[0]

    def _work(
        self, run: Run, operation_id: str | None, begun: threading.Event,
        failure: list[BaseException],
    ) -> None:
        self._gate.local.begun = begun
        ended = True
        try:
            operation = run(self._gate.importer_for(self.service))
        except Exception as exc:  # noqa: BLE001 - reported, to the request or to the log
            if begun.is_set() and operation_id is not None:
                ended = self._died(operation_id, exc)
            else:
                failure.append(exc)
        else:
            _ended(operation)
        finally:
            self._checkpoint()
            if ended:
                self._drop(operation_id)
            with self._lock:
                self._runs.pop(threading.current_thread(), None)
            begun.set()  # last: a start refused here may be tried again at once

    def _checkpoint(self) -> None:
        """Empty the store's log: it still holds the staged users the run just deleted."""
        checkpoint = getattr(self.service.store, "checkpoint", None)
        if checkpoint is None:
            return
        try:
            checkpoint()
        except Exception as exc:  # noqa: BLE001 - the store's close() checkpoints again
            _log.debug("could not checkpoint the store after a run: %s", exc)

    def _died(self, operation_id: str, error: BaseException) -> bool:
        """Log a run that died after it began and fail its operation; whether that was written."""
        _log.error("import %s stopped on an error: %s", operation_id, error, exc_info=error)
        if self._record(operation_id, error):
            return True
        with self._lock:
            self._unrecorded = operation_id, error
        self._nudge.set()  # from the watch's thread, whose connection did not fail
        return False

    def _record(self, operation_id: str, error: BaseException) -> bool:
        try:
            with self.service.acting(RUN):  # the run's own end, whoever started it
                self.service.fail(operation_id, error)
        except Exception as exc:  # noqa: BLE001 - the watch tries again
            _log.debug("could not record the failure of import %s yet: %s", operation_id, exc)
            return False
        return True

    def _drop(self, operation_id: str | None) -> None:
        if operation_id is None or self.lease is None:
            return
        try:
            self.lease.drop(operation_id)
        except Exception as exc:  # noqa: BLE001 - a stale lease only delays a takeover
            _log.debug("could not drop the lease on import %s: %s", operation_id, exc)

    def _watching(self) -> None:
        every = _WATCH_EVERY if self.lease is None else min(
            _WATCH_EVERY, self.lease.takeover_after / 4,
        )
        while True:
            # A dead run's failure not written yet is tried again sooner (and at once).
            self._nudge.wait(_RETRY_EVERY if self._unrecorded is not None else every)
            self._nudge.clear()
            if self._wake.is_set():
                return
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - a database failing now is tried next round
                _log.debug("the import watch failed this round: %s", exc)

    def tick(self) -> None:
        """One round of the watch: renew leases, record a dead run's failure, adopt an orphan."""
        if self.lease is not None:
            self.lease.renew()
        with self._lock:
            unrecorded = self._unrecorded
        if unrecorded is not None and self._record(*unrecorded):
            with self._lock:
                self._unrecorded = None
            self._drop(unrecorded[0])
            _log.info("recorded the failure of import %s", unrecorded[0])
        if self.lease is not None:
            self.resume()
        self._prune()

    def _prune(self) -> None:
        """Prune finished operations older than ``prune_after``, once an hour at most."""
        if self.prune_after is None or time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + _PRUNE_EVERY
        pruned = self.service.prune(older_than=dt.timedelta(seconds=self.prune_after))
        if pruned:
            _log.info("pruned %d finished operations last updated over %s ago", pruned,
                      dt.timedelta(seconds=round(self.prune_after)))

    def wait(self, timeout: float | None = None) -> None:
        """Wait until no run of this worker is going (or ``timeout`` seconds per run)."""
        with self._lock:
            threads = list(self._runs)
        for thread in threads:
            thread.join(timeout)

    def stop(self, timeout: float = WIND_DOWN) -> None:
        """Let the batch in hand commit, then hold the run; no new run starts.

        The operation stays ``importing`` at its checkpoint, and its lease is
        released: the next server resumes it at once.
        """
        with self._lock:
            self._stopped = True
            self._gate.close()
            runs = dict(self._runs)
            unrecorded = self._unrecorded
        self._wake.set()
        self._nudge.set()
        if self._watch is not None:
            self._watch.join(_WATCH_EVERY)  # a round in hand ends before its leases go
        deadline = time.monotonic() + timeout
        for thread in runs:
            while thread.is_alive() and thread.ident not in self._gate.parked_threads:
                if time.monotonic() > deadline:
                    _log.warning("the import did not reach a batch boundary in time")
                    break
                time.sleep(0.01)
        with self._lock:
            tasks = list(self._tasks)
        for thread in tasks:  # a loading is one transaction: it commits, or rolls back at exit
            thread.join(max(0.0, deadline - time.monotonic()))
        held = [operation_id for operation_id in runs.values() if operation_id is not None]
        if unrecorded is not None:
            held.append(unrecorded[0])
        for operation_id in held:
            self._release(operation_id)

    def _release(self, operation_id: str) -> None:
        if self.lease is None:
            return
        try:
            self.lease.release(operation_id)
        except Exception as exc:  # noqa: BLE001 - the lease lapses on its own
            _log.warning("could not release the lease on import %s: %s", operation_id, exc)


class _Loading:
    """A loading in the background, and when its request may be answered (see ``load``)."""

    def __init__(
        self, load: Callable[[Progress], Operation], ended: Callable[[str], None] | None,
    ) -> None:
        self.load = load
        self.ended = ended
        self.first: str | None = None  # the operation's id, once it exists
        self.answered: Operation | None = None
        self.failure: BaseException | None = None
        self.begun = threading.Event()

    def progress(self, operation: Operation) -> None:
        if self.first is None:
            self.first = operation.id
        # Not while uploading: a client polling getImportFileData at once must not
        # take the empty selection of an operation still uploading for the file's.
        waiting = operation.status in WAITING_STEPS or operation.state is not State.LOADING
        if self.answered is None and waiting:
            self.answered = operation
            self.begun.set()

    def work(self) -> None:
        try:
            loaded = self.load(self.progress)
        except Exception as exc:  # noqa: BLE001 - reported, to the request or to the log
            if self.answered is not None:
                _log.error("loading %s failed: %s", self.answered.id, exc, exc_info=exc)
            self.failure = exc
        else:
            _log.info("loading %s ended %s", loaded.id, loaded.status)
            if self.answered is None:
                self.answered = loaded
        finally:
            self.begun.set()
            if self.first is not None and self.ended is not None:
                self.ended(self.first)

    def answer(self) -> Operation:
        """The operation the request is answered with, once it may be.

        Raises:
            Exception: what the loading raised before it had an operation.
        """
        self.begun.wait()
        if self.answered is None:
            assert self.failure is not None  # noqa: S101 - work() sets one or the other
            raise self.failure
        return self.answered


def _ended(operation: Operation) -> None:
    # A run of a valid operation fails only on an error (an invalidated one is failed
    # by the clear or new operation that replaced it, which is no error of the server).
    if operation.status is ProgressStep.IMPORT_FAILED and operation.valid:
        reason = operation.failure.message if operation.failure is not None else "no reason"
        _log.error("import %s failed: %s", operation.id, reason)
    else:
        _log.info("import %s ended %s", operation.id, operation.status)
