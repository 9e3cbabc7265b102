"""Running an import with a live progress bar that follows the persisted counts.

``ImportService.run`` works in a worker thread while the caller's thread
reads the operation back from the store, so the bar shows what a second
process would see: counts that move once per batch. Ctrl-C in the caller's
thread cancels the operation; the run stops at its next batch boundary.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Final

import attrs
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from importstate.errors import ImportStateError, OperationAlreadyFinished, OperationNotFound
from importstate.model import Operation
from importstate.service import ImportService

#: Seconds between two reads of the operation while the run works.
POLL_INTERVAL: Final = 0.1


@attrs.frozen
class Outcome:
    """How a watched run ended.

    Attributes:
        operation: the operation as the run left it.
        interrupted: Ctrl-C asked for a cancel.
    """

    operation: Operation
    interrupted: bool


class _Rate(ProgressColumn):
    """Users per second, from the bar's own speed estimate."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- users/s" if speed is None else f"{speed:,.0f} users/s")


class _Errors(ProgressColumn):
    """Users that failed so far."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.fields.get('errors', 0):,} failed", style="red")


@attrs.define
class _Worker:
    start: Callable[[], Operation]
    result: Operation | None = None
    error: BaseException | None = None
    # An event, not Thread.join: a join interrupted by Ctrl-C can leave the thread
    # looking finished while it still runs.
    done: threading.Event = attrs.Factory(threading.Event)

    def __call__(self) -> None:
        try:
            self.result = self.start()
        except BaseException as exc:  # noqa: BLE001 - handed back to the watching thread
            self.error = exc
        finally:
            self.done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the run to end (at most ``timeout`` seconds); whether it has."""
        return self.done.wait(timeout)


def run_with_progress(
    service: ImportService,
    console: Console,
    *,
    poll: float = POLL_INTERVAL,
    start: Callable[[], Operation] | None = None,
) -> Outcome:
    """Run the current operation's import, drawing progress on ``console``.

    The bar appears once the run has started, so a refused run draws none.
    ``start`` is the call that imports (``service.run`` unless given, e.g.
    ``service.resume``).

    Raises:
        ImportStateError: ``run`` refused to start (no operation, wrong status,
            unknown importer), unless Ctrl-C cancelled it first.
    """
    before = service.current_operation()
    worker = _Worker(start if start is not None else service.run)
    thread = threading.Thread(target=worker, name="importstate-run", daemon=True)
    thread.start()
    try:
        while not worker.wait(poll) and service.current_operation() == before:
            pass
        interrupted = False if worker.error is not None else _follow(service, worker, console, poll)
    except KeyboardInterrupt:
        interrupted = True
        _cancel(service, worker)
    if worker.error is not None:
        if interrupted and isinstance(worker.error, ImportStateError):
            latest = service.current_operation()
            if latest is not None:
                return Outcome(latest, interrupted=True)
        raise worker.error
    assert worker.result is not None  # noqa: S101 - the worker sets one of the two
    return Outcome(worker.result, interrupted=interrupted)


def _follow(service: ImportService, worker: _Worker, console: Console, poll: float) -> bool:
    """Draw the bar until the run ends; whether Ctrl-C cancelled it."""
    interrupted = False
    with _progress(console) as progress:
        task = progress.add_task("importing users", total=None, errors=0)
        try:
            while not worker.wait(poll):
                _show(progress, task, service.current_operation())
        except KeyboardInterrupt:
            interrupted = True
            _cancel(service, worker)
        _show(progress, task, service.current_operation())
    return interrupted


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _Errors(),
        _Rate(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )


def _show(progress: Progress, task: TaskID, operation: Operation | None) -> None:
    if operation is None:
        return
    count = operation.count
    progress.update(
        task,
        completed=count.get("completed") + count.get("error"),
        total=count.get("total"),
        errors=count.get("error"),
    )


def _cancel(service: ImportService, worker: _Worker) -> None:
    """Cancel the operation and wait for the run to stop at its batch boundary."""
    # The run may have ended (or been replaced) between the key press and the cancel.
    with contextlib.suppress(OperationAlreadyFinished, OperationNotFound):
        service.cancel()
    worker.wait()
