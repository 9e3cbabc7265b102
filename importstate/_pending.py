"""The downloads of a ``Pending Files`` or ``Pending Avatars`` operation, one file at a time."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import urllib.parse
from pathlib import Path
from typing import Final

from importstate._files import DIRECTORY_MODE, open_private
from importstate._run.ledger import Ledger, get, message
from importstate.errors import ImportStateError
from importstate.machine import Event
from importstate.model import Operation
from importstate.pending import Fetch, PendingDownload, PendingKind, PendingSource
from importstate.steps import ProgressStep

#: The step a pending-download operation runs in (Behaviour: file-api).
DOWNLOADING: Final = ProgressStep.IMPORTING_FILES


def begun(created: Operation, pending: int, at: dt.datetime) -> Operation:
    """``created`` with ``pending`` downloads counted: downloading, or done if there are none."""
    count = created.count.added(total=pending, completed=0, error=0)
    operation = created.fire(Event.DOWNLOAD, at=at, count=count)
    if pending == 0:
        operation = finished(operation, at)
    return operation


def finished(operation: Operation, at: dt.datetime) -> Operation:
    """The downloading operation moved through ``importer_finishing`` to ``importer_done``."""
    return operation.fire(Event.ADVANCE, at=at, step=ProgressStep.FINISHING).fire(
        Event.FINISH, at=at,
    )


def disk_name(import_id: str) -> str:
    """A file name for ``import_id`` that stays in its directory (no ``/``, no leading dot)."""
    name = urllib.parse.quote(import_id, safe="")
    return "%2E" + name[1:] if name.startswith(".") else name


class Downloads:
    """Fetches an operation's pending downloads, writing its counts after each file."""

    def __init__(
        self, ledger: Ledger, source: PendingSource, fetch: Fetch, files_dir: Path,
    ) -> None:
        self.ledger = ledger
        self.source = source
        self.fetch = fetch
        self.files_dir = files_dir

    def run(self, operation_id: str, kind: PendingKind) -> Operation:
        """Fetch up to ``count.total`` downloads; stop before the next file once cancelled."""
        operation = self._read(operation_id)
        try:
            todo = self.source.pending_downloads(kind)[: operation.count.get("total")]
            for item in todo:
                if not _downloading(operation):
                    break
                failed = self._download(item)
                operation = self._count(operation_id, failed=failed)
            return self._end(operation_id)
        except Exception as exc:  # noqa: BLE001 - an error of the store or target fails the operation
            return self.ledger.fail(operation_id, exc)
        except BaseException:  # Ctrl-C: cancelled, as a loading is, and raised again
            self._cancel(operation_id)
            raise

    def _cancel(self, operation_id: str) -> None:
        with self.ledger.transaction() as tx:
            operation = get(tx, operation_id)
            if _downloading(operation):
                tx.update(operation.fire(Event.CANCEL, at=self.ledger.clock()))

    def _download(self, item: PendingDownload) -> bool:
        """Fetch ``item`` to its file and record the outcome in the target; whether it failed."""
        directory = self.files_dir / item.kind.value
        directory.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
        path = directory / disk_name(item.import_id)
        partial = path.with_name(path.name + ".part")
        try:
            with os.fdopen(open_private(partial), "wb") as dest:
                self.fetch(item.url, dest)
            partial.replace(path)
        except (ImportStateError, OSError) as exc:
            with contextlib.suppress(OSError):
                partial.unlink()
            self.source.downloaded(item.kind, item.import_id, error=message(exc))
            return True
        self.source.downloaded(item.kind, item.import_id, path=str(path))
        return False

    def _count(self, operation_id: str, *, failed: bool) -> Operation:
        with self.ledger.transaction() as tx:
            operation = get(tx, operation_id)
            if not _downloading(operation):
                return operation
            counted = operation.count.added(**{"error" if failed else "completed": 1})
            now = self.ledger.clock()
            operation = operation.touched(now, count=counted)
            tx.update(operation)
            tx.set_checkpoint(operation_id, None, now)  # the heartbeat: this worker is alive
        return operation

    def _end(self, operation_id: str) -> Operation:
        """Done if still downloading; failed if replaced meanwhile; cancelled stays cancelled."""
        with self.ledger.transaction() as tx:
            operation = get(tx, operation_id)
            now = self.ledger.clock()
            if _downloading(operation):
                operation = finished(operation, now)
            elif operation.status is DOWNLOADING:  # invalidated while downloading
                operation = operation.fire(Event.FAIL, at=now)
            else:
                return operation
            tx.update(operation)
        return operation

    def _read(self, operation_id: str) -> Operation:
        with self.ledger.store.reading() as tx:
            return get(tx, operation_id)


def _downloading(operation: Operation) -> bool:
    return operation.valid and operation.status is DOWNLOADING
