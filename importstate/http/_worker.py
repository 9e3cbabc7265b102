"""The server's background import: one run at a time, stoppable at a batch boundary."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final

from importstate._gate import Gate
from importstate.errors import ImportStateError, ServerStopping
from importstate.importers import Importer
from importstate.model import Operation
from importstate.service import ImportService
from importstate.steps import State

#: Seconds ``start`` waits for a run that is winding down (cancelled or replaced).
WIND_DOWN: Final = 30.0

_log = logging.getLogger("importstate.http")


class RunWorker:
    """Runs the service's imports in a background thread, one at a time.

    Each run is given the importer registered for its operation's key with a
    gate in front (``service.importers`` is left as it is), so that
    :meth:`stop` can hold the run between two batches.
    """

    def __init__(self, service: ImportService) -> None:
        self.service = service
        self._gate = Gate()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def start(self) -> None:
        """Start importing the current operation; return once the run has begun.

        Raises:
            OperationNotFound, InvalidOperationStatus, ImporterNotDefined:
                as ``ImportService.run``; nothing was started.
        """
        self._launch(self.service.run)

    def resume(self) -> bool:
        """Resume an operation left ``importing`` by a server that stopped; whether one was."""
        operation = self.service.current_operation()
        if operation is None or not operation.valid or operation.state is not State.IMPORTING:
            return False
        try:
            self._launch(self.service.resume)
        except ImportStateError as exc:  # it ended or was replaced meanwhile
            _log.warning("could not resume import %s: %s", operation.id, exc)
            return False
        _log.info("resumed import %s from its checkpoint", operation.id)
        return True

    def _launch(self, run: Callable[[Importer | None], Operation]) -> None:
        with self._lock:
            if self._stopped:
                raise ServerStopping
            # A previous run still alive was cancelled or replaced: it stops within a batch.
            if self._thread is not None:
                self._thread.join(WIND_DOWN)
            begun = threading.Event()
            failure: list[BaseException] = []
            thread = threading.Thread(
                target=self._work, args=(run, begun, failure), name="importstate-run", daemon=True,
            )
            thread.start()
            self._thread = thread
            # The run has begun once it hands the importer its first batch, or it ended.
            begun.wait()
        if failure:
            raise failure[0]

    def _work(
        self,
        run: Callable[[Importer | None], Operation],
        begun: threading.Event,
        failure: list[BaseException],
    ) -> None:
        self._gate.local.begun = begun
        try:
            operation = run(self._gated_importer())
        except Exception as exc:  # noqa: BLE001 - handed back to the request that started it
            failure.append(exc)
        else:
            _log.info("import %s ended %s", operation.id, operation.status)
        finally:
            begun.set()

    def _gated_importer(self) -> Importer | None:
        return self._gate.importer_for(self.service)

    def stop(self, timeout: float = WIND_DOWN) -> None:
        """Let the batch in hand commit, then hold the run; no new run starts.

        The operation stays ``importing`` at its checkpoint, to be resumed.
        """
        with self._lock:
            self._stopped = True
            self._gate.close()
            thread = self._thread
        if thread is None:
            return
        deadline = time.monotonic() + timeout
        while thread.is_alive() and not self._gate.parked.wait(0.01):
            if time.monotonic() > deadline:
                _log.warning("the import did not reach a batch boundary in time")
                return
