r"""A store of your own: operations kept as JSON files in a folder, with real transactions.

This is the kind of store an embedder writes when the built-in ones do not
fit (here: no database at all, just files a backup already copies). It meets
the contract of :mod:`importstate.stores` and passes the conformance suite
every built-in store passes, :class:`importstate.testing.StoreTests`::

    class TestFolderStore(StoreTests):
        @pytest.fixture
        def make_store(self, tmp_path):
            return lambda: FolderStore(tmp_path / "imports")

Run it as a script to import three users with it (``python
examples/custom_store.py [folder]``; the folder defaults to a temporary
one), and see ``tests/test_example_custom_store.py`` for the suite run
against it.

The folder holds::

    index.json        every operation, its checkpoint and heartbeat, and
                      the name of the file holding its staged records
    staging/N.json    one operation's staged records (a file is never
                      changed once written: a commit writes new ones)
    writer.lock       held by the transaction that writes (flock), so
                      writers take turns, in threads and in processes
    readers.lock      shared by every reader; old files are deleted only
                      while nobody holds it

A transaction works on its own copy of what it reads and writes nothing
until it commits. The commit writes the changed staging files, then
replaces ``index.json`` in one rename: that rename is the commit, so a crash
or an error before it leaves the store as it was (the files it wrote are
deleted by the next commit), and readers see the whole commit or nothing.
Readers do not wait for a transaction (only, for a moment, for a commit
deleting the files no snapshot needs any more). Each write is flushed to
disk before the rename.

It needs a POSIX system (``fcntl.flock``) and suits imports of thousands of
records: a commit rewrites the staging file of the operation it changed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import itertools
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from importstate import ImportService, Operation
from importstate.stores import NewRecord, Pending, StagedRecord

_INDEX = "index.json"
_STAGING = "staging"


@attrs.define
class _Record:
    """One staged record as the transaction holds it; ``data`` stays JSON text."""

    position: int
    id: str
    data: str
    data_type: str
    errors: list[dict[str, Any]] = attrs.Factory(list)
    selected: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"position": self.position, "_id": self.id, "data": self.data,
                "dataType": self.data_type, "errors": self.errors, "selected": self.selected}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> _Record:
        return cls(doc["position"], doc["_id"], doc["data"], doc["dataType"],
                   list(doc["errors"]), doc["selected"])


@attrs.define
class _Entry:
    """One operation in the index, with the bookkeeping a run keeps beside it."""

    operation: Operation
    created: int
    checkpoint: int | None = None
    heartbeat: dt.datetime | None = None
    staging: str | None = None  # the file of its staged records; None: it has none

    def to_json(self) -> dict[str, Any]:
        heartbeat = self.heartbeat.isoformat() if self.heartbeat is not None else None
        return {"operation": self.operation.to_wire(), "created": self.created,
                "checkpoint": self.checkpoint, "heartbeat": heartbeat, "staging": self.staging}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> _Entry:
        heartbeat = doc["heartbeat"]
        return cls(Operation.from_wire(doc["operation"]), doc["created"], doc["checkpoint"],
                   dt.datetime.fromisoformat(heartbeat) if heartbeat is not None else None,
                   doc["staging"])


class FolderStore:
    """Operations and their staged records in JSON files under ``folder`` (created if missing).

    Any number of handles, in any number of threads and processes of one
    machine, may share a folder; each transaction opens what it needs, so a
    handle holds nothing between transactions.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        (self.folder / _STAGING).mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[_FolderTransaction]:
        """A read-write transaction: committed when the block ends, forgotten if it raises."""
        with _locked(self.folder / "writer.lock", fcntl.LOCK_EX):
            tx = _FolderTransaction(self.folder)
            yield tx
            if tx.commit():
                self._collect_garbage()

    @contextlib.contextmanager
    def reading(self) -> Iterator[_FolderTransaction]:
        """A snapshot of the last commit; it does not wait for a writer's transaction."""
        with _locked(self.folder / "readers.lock", fcntl.LOCK_SH):
            yield _FolderTransaction(self.folder)

    def close(self) -> None:
        """Nothing to release: a handle keeps no file open between transactions."""

    def _collect_garbage(self) -> None:
        """Delete the staging files no commit refers to, unless a reader may still read them."""
        with _locked(self.folder / "readers.lock", fcntl.LOCK_EX | fcntl.LOCK_NB) as got:
            if not got:
                return  # a reader holds an older snapshot: the next commit collects
            kept = {entry["staging"] for entry in _read_index(self.folder)["operations"]}
            for path in (self.folder / _STAGING).iterdir():
                if path.name not in kept:
                    path.unlink()


class _FolderTransaction:
    """What a transaction reads and writes: its own copy of the index and of staging."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        index = _read_index(folder)
        self._counters = {name: index[name] for name in ("created", "position", "files")}
        self._entries = {
            entry.operation.id: entry for entry in map(_Entry.from_json, index["operations"])
        }
        self._staging: dict[str, list[_Record]] = {}  # read on first use
        self._dirty: set[str] = set()  # operations whose staging changed
        self._changed = False

    def commit(self) -> bool:
        """Write what changed: new staging files, then the index in one rename; whether any."""
        if not self._changed:
            return False
        for operation_id in self._dirty & self._entries.keys():
            records = self._staging[operation_id]
            name = None
            if records:
                self._counters["files"] += 1
                name = f"{self._counters['files']}.json"
                _write(self._folder / _STAGING / name, [r.to_json() for r in records])
            self._entries[operation_id].staging = name
        index = {**self._counters, "operations": [e.to_json() for e in self._entries.values()]}
        _write(self._folder / f"{_INDEX}.new", index)
        (self._folder / f"{_INDEX}.new").replace(self._folder / _INDEX)
        _sync_folder(self._folder)
        return True

    # -- operations --------------------------------------------------------------------------

    def current(self) -> Operation | None:
        newest = max(self._entries.values(), key=lambda e: (e.operation.ts, e.created),
                     default=None)
        return newest.operation if newest is not None else None

    def get(self, operation_id: str) -> Operation | None:
        entry = self._entries.get(operation_id)
        return entry.operation if entry is not None else None

    def latest(self, limit: int) -> list[Operation]:
        entries = sorted(self._entries.values(), reverse=True,
                         key=lambda e: (e.operation.updated_at, e.operation.ts, e.created))
        return [entry.operation for entry in entries[:limit]]

    def valid_operations(self) -> list[Operation]:
        entries = sorted(self._entries.values(), key=lambda e: e.created)
        return [entry.operation for entry in entries if entry.operation.valid]

    def insert(self, operation: Operation) -> None:
        if operation.id in self._entries:
            msg = f"operation {operation.id!r} already exists"
            raise ValueError(msg)
        self._counters["created"] += 1
        self._entries[operation.id] = _Entry(operation, self._counters["created"])
        self._changed = True

    def update(self, operation: Operation) -> None:
        self._entry(operation.id).operation = operation
        self._changed = True

    def delete(self, operation_id: str) -> bool:
        if self._entries.pop(operation_id, None) is None:
            return False
        self._changed = True
        return True

    # -- staging -----------------------------------------------------------------------------

    def stage(self, operation_id: str, records: Sequence[NewRecord]) -> None:
        staging = self._records(operation_id, changing=True)
        for record in records:
            self._counters["position"] += 1
            staging.append(
                _Record(self._counters["position"], record.id, record.json, record.data_type),
            )

    def staged(self, operation_id: str, *, after: int | None, limit: int) -> list[StagedRecord]:
        later = (r for r in self._records(operation_id) if after is None or r.position > after)
        return [
            StagedRecord(r.position, r.id, json.loads(r.data), r.data_type,
                         tuple(json.loads(json.dumps(r.errors))))
            for r in itertools.islice(later, limit)
        ]

    def pending(
        self, operation_id: str, data_type: str, *, after: int | None, limit: int,
    ) -> list[Pending]:
        wanted = (r for r in self._records(operation_id)
                  if (after is None or r.position > after)
                  and r.data_type == data_type and r.selected)
        return [Pending(r.position, json.loads(r.data)) for r in itertools.islice(wanted, limit)]

    def deselect(self, operation_id: str, positions: Sequence[int]) -> None:
        left_out = set(positions)
        for record in self._records(operation_id, changing=True):
            if record.position in left_out:
                record.selected = False

    def record_errors(
        self, operation_id: str, errors: Sequence[tuple[int, Mapping[str, Any]]],
    ) -> None:
        by_position = {r.position: r for r in self._records(operation_id, changing=True)}
        for position, error in errors:
            if position in by_position:
                by_position[position].errors.append(json.loads(json.dumps(error)))

    def remove_succeeded(self, operation_id: str) -> int:
        records = self._records(operation_id, changing=True)
        kept = [record for record in records if record.errors]
        self._staging[operation_id] = kept
        return len(records) - len(kept)

    def unstage_all(self) -> int:
        removed = 0
        for operation_id in self._entries:
            removed += len(self._records(operation_id))
            self._staging[operation_id] = []
            self._dirty.add(operation_id)
            self._changed = True
        return removed

    # -- checkpoint and heartbeat ------------------------------------------------------------

    def checkpoint(self, operation_id: str) -> int | None:
        return self._entry(operation_id).checkpoint

    def set_checkpoint(
        self, operation_id: str, position: int | None, heartbeat: dt.datetime,
    ) -> None:
        entry = self._entry(operation_id)
        entry.checkpoint, entry.heartbeat = position, heartbeat
        self._changed = True

    def heartbeat(self, operation_id: str) -> dt.datetime | None:
        return self._entry(operation_id).heartbeat

    # -- reading the files -------------------------------------------------------------------

    def _entry(self, operation_id: str) -> _Entry:
        try:
            return self._entries[operation_id]
        except KeyError:
            msg = f"no operation {operation_id!r}"
            raise KeyError(msg) from None

    def _records(self, operation_id: str, *, changing: bool = False) -> list[_Record]:
        """The operation's staged records, read from its file the first time."""
        if operation_id not in self._staging:
            entry = self._entries.get(operation_id)
            name = entry.staging if entry is not None else None
            docs = json.loads((self._folder / _STAGING / name).read_text()) if name else []
            self._staging[operation_id] = [_Record.from_json(doc) for doc in docs]
        if changing:
            self._dirty.add(operation_id)
            self._changed = True
        return self._staging[operation_id]


@contextlib.contextmanager
def _locked(path: Path, operation: int) -> Iterator[bool]:
    """Hold ``flock(operation)`` on ``path`` for the block; whether it was got (``LOCK_NB``).

    Each call opens the file anew: flock locks belong to an open file, so two
    threads of one process exclude each other as two processes do.
    """
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, operation)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_index(folder: Path) -> dict[str, Any]:
    try:
        index: dict[str, Any] = json.loads((folder / _INDEX).read_text())
    except FileNotFoundError:
        return {"created": 0, "position": 0, "files": 0, "operations": []}
    return index


def _write(path: Path, doc: object) -> None:
    """Write ``doc`` as JSON to ``path`` and flush it to the disk."""
    with path.open("w") as handle:
        json.dump(doc, handle)
        handle.flush()
        os.fsync(handle.fileno())


def _sync_folder(folder: Path) -> None:
    """Flush the folder's entries, so that a rename survives a power cut."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def import_user(user: dict[str, Any]) -> None:
    """Create one user in your system; raise to fail just this user."""
    if not user["emails"][0].endswith("@example.com"):
        msg = f"{user['emails'][0]} is not one of ours"
        raise ValueError(msg)


def main(folder: str) -> Operation:
    """Stage three users in a new operation on ``folder`` and import them; the ended operation."""
    service = ImportService(FolderStore(folder), {"api": import_user})
    service.new_operation("admin")
    service.add_users([
        {"username": "ann", "emails": ["ann@example.com"], "importIds": ["1"]},
        {"username": "bob", "emails": ["bob@example.com"], "importIds": ["2"]},
        {"username": "eve", "emails": ["eve@elsewhere.test"], "importIds": ["3"]},
    ])
    return service.run()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as scratch:
        ended = main(sys.argv[1] if len(sys.argv) > 1 else scratch)
        sys.stdout.write(f"{ended.state.value}: {ended.count.completed} imported, "
                         f"{ended.count.error} failed\n")
