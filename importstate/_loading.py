"""Loading a file (Behaviour: files): a loader's records staged in one transaction, or none of them.

:class:`Loading` is what :meth:`ImportService.load_file
<importstate.ImportService.load_file>` delegates to once the operation is
``importer_preparing_started``: the loader stages through a :class:`_Sink`
inside one store transaction, a chunk at a time; the preparing steps and
counts are written with the move to ``importer_user_selection`` when the
transaction commits. A fault rolls the staging back, then fails the
operation with its message in a transaction of its own.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Any, Final

import attrs

from importstate._files import open_file_private
from importstate._run.ledger import message
from importstate.errors import FileFormatError, InvalidRoles, MissingRecordData
from importstate.loaders import FileLimits, Loader, Placed
from importstate.machine import Event
from importstate.model import Failure, Operation
from importstate.records import DataType, RecordKind, kind_of
from importstate.steps import ProgressStep, State
from importstate.stores import NewRecord, Transaction

#: Records checked and staged at a time: memory holds one chunk.
CHUNK: Final = 1000
#: The steps an operation takes, committed one by one, before its file is parsed.
BEFORE_PARSING: Final = (ProgressStep.FILE_LOADED, ProgressStep.PREPARING_STARTED)
#: What a loader's staging is checked with: ``prepare(kind, records)``.
Prepare = Callable[[RecordKind, Sequence[Any]], Sequence[NewRecord]]
#: Called with the operation as loading moves on (its step and counts so far).
Progress = Callable[[Operation], None]


@contextlib.contextmanager
def opened(file: str | os.PathLike[str] | IO[bytes]) -> Iterator[tuple[IO[bytes], str]]:
    """``file`` open for binary reading, with the name to record; a path is opened here.

    Raises:
        OSError: the path cannot be opened.
    """
    if isinstance(file, str | os.PathLike):
        path = Path(file)
        with path.open("rb") as handle:
            yield handle, path.name
        return
    name = getattr(file, "name", None)
    yield file, Path(name).name if isinstance(name, str) and name else "upload"


@attrs.define
class _Sink:
    """Stages a loader's records into one transaction and follows the operation's step."""

    tx: Transaction
    operation: Operation
    prepare: Prepare
    clock: Callable[[], dt.datetime]
    progress: Progress | None
    staged: int = 0

    def preparing(self, data_type: DataType) -> None:
        step = kind_of(data_type).preparing
        if step.position > self.operation.status.position:
            self.operation = self.operation.fire(Event.ADVANCE, at=self.clock(), step=step)
            self._report()

    def stage(self, data_type: DataType, member: str, records: Iterable[Placed]) -> int:
        kind = kind_of(data_type)
        self.preparing(kind.data_type)
        staged = 0
        placed = iter(records)
        while chunk := list(itertools.islice(placed, CHUNK)):
            lines, values = zip(*chunk, strict=True)
            try:
                prepared = self.prepare(kind, values)
            except (MissingRecordData, InvalidRoles) as exc:
                raise FileFormatError(member, lines[exc.index], str(exc)) from None
            self.tx.stage(self.operation.id, prepared)
            staged += len(prepared)
            count = self.operation.count.added(total=len(prepared), **{kind.count: len(prepared)})
            self.operation = self.operation.touched(self.clock(), count=count)
            self._report()
        self.staged += staged
        return staged

    def _report(self) -> None:
        report(self.progress, self.operation)


def report(progress: Progress | None, operation: Operation) -> None:
    """Tell ``progress`` (if any) where ``operation`` is."""
    if progress is not None:
        progress(operation)


@attrs.frozen
class Loading:
    """Runs loaders against one store, through ``transaction`` (whose commits listeners hear of)."""

    transaction: Callable[[], AbstractContextManager[Transaction]]
    prepare: Prepare
    clock: Callable[[], dt.datetime]

    def load(  # noqa: PLR0913 - the file, its name and how to read it
        self,
        operation: Operation,
        loader: Loader,
        file: IO[bytes],
        name: str,
        *,
        limits: FileLimits,
        progress: Progress | None,
    ) -> Operation:
        """Stage ``file`` for ``operation`` (preparing); the operation ready, or failed.

        An exception other than an :class:`Exception` (Ctrl-C) cancels the
        operation, nothing staged, and is raised again.
        """
        try:
            with self.transaction() as tx:
                current = tx.get(operation.id)
                if current is None or current.state is not State.LOADING:
                    return current or operation  # replaced or cancelled meanwhile
                sink = _Sink(tx, current, self.prepare, self.clock, progress)
                loader.load(file, name, sink, limits)
                _check_staged(name, sink)
                ready = sink.operation.fire(Event.FINISH_LOADING, at=self.clock())
                tx.update(ready)
        except Exception as exc:  # noqa: BLE001 - any fault of the file or the loader fails it
            failed = self._end(operation.id, Event.FAIL, exc)
            report(progress, failed)
            return failed
        except BaseException:
            self._end(operation.id, Event.CANCEL, None)
            raise
        report(progress, ready)
        return ready

    def fetch(
        self, operation: Operation, path: str | os.PathLike[str],
        download: Callable[[IO[bytes]], object],
    ) -> Operation:
        """Fetch the file to ``path`` with ``download``; ``operation``, or it failed (or ended).

        An exception other than an :class:`Exception` cancels the operation
        and is raised again.
        """
        try:
            with open_file_private(path) as out:
                download(out)
        except Exception as exc:  # noqa: BLE001 - any fault of the download fails the loading
            return self._end(operation.id, Event.FAIL, exc)
        except BaseException:
            self._end(operation.id, Event.CANCEL, None)
            raise
        return operation

    def _end(self, operation_id: str, event: Event, error: BaseException | None) -> Operation:
        now = self.clock()
        with self.transaction() as tx:
            current = tx.get(operation_id)
            if current is None or current.state is not State.LOADING:
                return current if current is not None else _gone(operation_id)
            if error is None:
                ended = current.fire(event, at=now)
            else:
                ended = current.fire(event, at=now, failure=Failure(message(error), now))
            tx.update(ended)
        return ended


def _check_staged(name: str, sink: _Sink) -> None:
    if not sink.staged:
        raise FileFormatError(name, None, "holds no users, channels or messages")


def _gone(operation_id: str) -> Operation:
    msg = f"operation {operation_id!r} disappeared from the store"
    raise LookupError(msg)

