"""Running an import with a live progress display that follows the persisted counts.

``ImportService.run`` works in a worker thread while the caller's thread
reads the operation back from the store, so the display shows what a second
process would see: counts that move once per batch.

How a run is stopped early (:class:`Stop`): Ctrl-C cancels the operation
(a person at the keyboard chose to stop this import; ``worker`` only leaves
it, as the other workers go on); SIGTERM (a service manager, a container, a
CI job ending the process) holds the run at its next batch boundary with
:class:`~importstate._gate.Gate`, leaving it ``importing`` at its checkpoint
for ``importstate resume``, as ``importstate serve`` does on SIGTERM.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import threading
from collections.abc import Callable
from typing import Final

import attrs
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column
from rich.text import Text

from importstate._gate import Gate
from importstate.cli._context import INTERRUPTED, TERMINATED, Terminated
from importstate.errors import ImportStateError, OperationAlreadyFinished, OperationNotFound
from importstate.importers import Importer
from importstate.model import Operation
from importstate.records import phase_of
from importstate.service import ImportService

#: Seconds between two reads of the operation while the run works.
POLL_INTERVAL: Final = 0.1
#: Narrower consoles get the one-line display.
WIDE: Final = 100


class Stop(enum.Enum):
    """How a watched run was stopped before it ended by itself."""

    #: Ctrl-C: the operation was cancelled; the run committed its batch and stopped.
    CANCELLED = "cancelled"
    #: SIGTERM: the run was held at a batch boundary; the operation stays importing.
    HELD = "held"
    #: Ctrl-C of ``worker``: this worker was held; the run goes on elsewhere.
    LEFT = "left"


#: The exit status of a command whose run was stopped so.
EXIT_STATUS: Final = {Stop.CANCELLED: INTERRUPTED, Stop.HELD: TERMINATED, Stop.LEFT: INTERRUPTED}


@attrs.frozen
class Outcome:
    """How a watched run ended.

    Attributes:
        operation: the operation as the run left it.
        stop: how it was stopped early, if it was.
    """

    operation: Operation
    stop: Stop | None = None


class _Done(ProgressColumn):
    """Records done (imported or failed) of the total, with thousands separators."""

    def render(self, task: Task) -> Text:
        total = "?" if task.total is None else f"{int(task.total):,}"
        return Text(f"{int(task.completed):,}/{total}")


class _Rate(ProgressColumn):
    """Records per second, from the bar's own speed estimate, named for the phase."""

    def render(self, task: Task) -> Text:
        return Text(f"{_rate(task)} {task.fields.get('noun', 'records')}/s")


def _rate(task: Task) -> str:
    speed = task.finished_speed or task.speed
    if speed is None and task.elapsed and task.completed:
        # Too few updates for rich's estimate (a short run): the average will do.
        speed = task.completed / task.elapsed
    return "--" if speed is None else f"{speed:,.0f}"


class _Errors(ProgressColumn):
    """Records that failed so far."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.fields.get('errors', 0):,} failed", style="red")


class _Line(ProgressColumn):
    """The whole display in one short line, cut to the console's width, for narrow terminals."""

    def __init__(self) -> None:
        super().__init__(table_column=Column(no_wrap=True, overflow="ellipsis"))

    def render(self, task: Task) -> Text:
        total = "?" if task.total is None else f"{int(task.total):,}"
        return Text(
            f"importing {int(task.completed):,}/{total}, {task.fields.get('errors', 0):,} failed,"
            f" {_rate(task)}/s", no_wrap=True, overflow="ellipsis",
        )


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
    start: Callable[[Importer | None], Operation] | None = None,
    on_ctrl_c: Stop = Stop.CANCELLED,
    poll: float = POLL_INTERVAL,
) -> Outcome:
    """Run the current operation's import, drawing progress on ``console``.

    The display appears once the run has started, so a refused run draws
    none. ``start`` is the call that imports, given the importer to use
    (``service.run`` unless given, e.g. ``service.resume``); ``on_ctrl_c``
    is what Ctrl-C does (SIGTERM always holds the run).

    Raises:
        ImportStateError: the run refused to start (no operation, wrong status,
            unknown importer), unless it was stopped first.
    """
    gate = Gate()
    importer = gate.importer_for(service)
    run = start if start is not None else service.run
    watch = _Watch(service, _Worker(lambda: run(importer)), gate, on_ctrl_c, poll)
    return watch.outcome(watch.follow(console))


@attrs.define
class _Watch:
    """One watched run: the worker thread importing, and the gate in front of its importer."""

    service: ImportService
    worker: _Worker
    gate: Gate
    on_ctrl_c: Stop
    poll: float

    def follow(self, console: Console) -> Stop | None:
        """Start the run and draw it until it ends; how it was stopped, if it was."""
        before = self.service.current_operation()
        # In this context's copy: the run's start is recorded as the command's user's.
        threading.Thread(target=contextvars.copy_context().run, args=(self.worker,),
                         name="importstate-run", daemon=True).start()
        try:
            while not self.worker.wait(self.poll) and self.service.current_operation() == before:
                pass
        except KeyboardInterrupt:
            return self.stop(self.on_ctrl_c)
        except Terminated:
            return self.stop(Stop.HELD)
        if self.worker.error is not None:
            return None
        with _progress(console) as progress:
            task = progress.add_task("importing", total=None, errors=0, noun="records")
            stopped: Stop | None = None
            try:
                while not self.worker.wait(self.poll):
                    _show(progress, task, self.service.current_operation())
            except KeyboardInterrupt:
                stopped = self.stop(self.on_ctrl_c)
            except Terminated:
                stopped = self.stop(Stop.HELD)
            _show(progress, task, self.service.current_operation())
        return stopped

    def stop(self, how: Stop) -> Stop:
        """Stop the run at its batch boundary, as ``how`` says; wait until it is there."""
        if how is Stop.CANCELLED:
            # The run may have ended (or been replaced) between the key press and the cancel.
            with contextlib.suppress(OperationAlreadyFinished, OperationNotFound):
                self.service.cancel()
            self.worker.wait()
            return how
        # The batch in hand commits; the next waits at the gate for good.
        self.gate.close()
        while not self.worker.wait(self.poll) and not self.gate.parked.is_set():
            pass
        return how

    def outcome(self, stop: Stop | None) -> Outcome:
        """How the run ended, or the operation as it was left when it was held."""
        error = self.worker.error
        if error is not None:
            if stop is not None and isinstance(error, ImportStateError):
                latest = self.service.current_operation()
                if latest is not None:
                    return Outcome(latest, stop)
            raise error
        if self.worker.result is not None:
            return Outcome(self.worker.result, stop)
        latest = self.service.current_operation()  # held at the gate: the run never returned
        if latest is None:  # cleared meanwhile by another process
            raise OperationNotFound
        return Outcome(latest, stop)


def _progress(console: Console) -> Progress:
    if console.width < WIDE:
        return Progress(_Line(), console=console)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=30),
        _Done(),
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
    phase = phase_of(operation.status)
    noun = phase.count if phase is not None else "records"  # users, channels, messages
    progress.update(
        task,
        description=f"importing {noun}",
        completed=count.get("completed") + count.get("error"),
        total=count.get("total"),
        errors=count.get("error"),
        noun=noun,
    )
