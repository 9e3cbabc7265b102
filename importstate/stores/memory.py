"""A store in the process's memory, for tests and short-lived embeddings."""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import itertools
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import attrs

from importstate.history import HistoryEntry
from importstate.model import Operation
from importstate.stores._protocol import NewRecord, Pending, StagedRecord

__all__ = [
    "MemoryStore",
]


@attrs.define
class _Row:
    operation: Operation
    created: int
    checkpoint: int | None = None
    heartbeat: dt.datetime | None = None


@attrs.define
class _Staged:
    id: str
    data: str  # JSON text: stored data is isolated from the caller's objects, as on SQLite
    data_type: str
    errors: list[dict[str, Any]] = attrs.Factory(list)
    selected: bool = True


@attrs.define
class _Staging:
    """One operation's staged records by position, with a sorted index for paging."""

    records: dict[int, _Staged] = attrs.Factory(dict)
    _positions: list[int] | None = None

    def positions(self) -> list[int]:
        if self._positions is None:
            self._positions = sorted(self.records)
        return self._positions

    def changed(self) -> None:
        self._positions = None


class MemoryStore:
    """Operations and staging in dictionaries, guarded by one lock.

    Behaves like :class:`~importstate.SQLiteStore` within one process: a
    transaction that raises leaves nothing behind, and data goes through JSON
    on the way in (a value JSON cannot hold fails the same way).
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.rows: dict[str, _Row] = {}
        self.staging: dict[str, _Staging] = {}
        self.history: dict[str, list[HistoryEntry]] = {}
        self.created = 0
        self.position = 0

    @contextmanager
    def transaction(self) -> Iterator[_MemoryTransaction]:
        """A read-write transaction; rolled back if the block raises."""
        with self._lock:
            tx = _MemoryTransaction(self)
            try:
                yield tx
            except BaseException:
                tx.roll_back()
                raise

    @contextmanager
    def reading(self) -> Iterator[_MemoryTransaction]:
        """A read-only snapshot (the writers' lock: reads of memory are short)."""
        with self.transaction() as tx:
            yield tx

    def close(self) -> None:
        """Nothing to release."""


class _MemoryTransaction:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._undo: list[Callable[[], object]] = []

    def roll_back(self) -> None:
        for undo in reversed(self._undo):
            undo()

    def current(self) -> Operation | None:
        rows = self._store.rows.values()
        newest = max(rows, key=lambda r: (r.operation.ts, r.created), default=None)
        return newest.operation if newest else None

    def get(self, operation_id: str) -> Operation | None:
        row = self._store.rows.get(operation_id)
        return row.operation if row else None

    def latest(self, limit: int) -> list[Operation]:
        rows = sorted(
            self._store.rows.values(),
            key=lambda r: (r.operation.updated_at, r.operation.ts, r.created),
            reverse=True,
        )
        return [r.operation for r in rows[:limit]]

    def valid_operations(self) -> list[Operation]:
        rows = sorted(self._store.rows.values(), key=lambda r: r.created)
        return [r.operation for r in rows if r.operation.valid]

    def insert(self, operation: Operation) -> None:
        store = self._store
        if operation.id in store.rows:
            msg = f"operation {operation.id!r} already exists"
            raise ValueError(msg)
        store.created += 1
        store.rows[operation.id] = _Row(operation, store.created)
        self._undo.append(lambda: store.rows.pop(operation.id))

    def update(self, operation: Operation) -> None:
        row = self._row(operation.id)
        old = row.operation
        row.operation = operation
        self._undo.append(lambda: setattr(row, "operation", old))

    def stage(self, operation_id: str, records: Sequence[NewRecord]) -> None:
        store = self._store
        staging = store.staging.setdefault(operation_id, _Staging())
        first = store.position + 1
        for record in records:
            store.position += 1
            staging.records[store.position] = _Staged(record.id, record.json, record.data_type)
        staging.changed()
        added = range(first, store.position + 1)

        def undo() -> None:
            for position in added:
                staging.records.pop(position, None)
            staging.changed()

        self._undo.append(undo)

    def staged(self, operation_id: str, *, after: int | None, limit: int) -> list[StagedRecord]:
        staging = self._store.staging.get(operation_id)
        if staging is None:
            return []
        positions = staging.positions()
        start = bisect.bisect_right(positions, after) if after is not None else 0
        return [_record(p, staging.records[p]) for p in positions[start:start + limit]]

    def pending(
        self, operation_id: str, data_type: str, *, after: int | None, limit: int,
    ) -> list[Pending]:
        staging = self._store.staging.get(operation_id)
        if staging is None:
            return []
        positions = staging.positions()
        start = bisect.bisect_right(positions, after) if after is not None else 0
        found: list[Pending] = []
        for position in itertools.islice(positions, start, None):
            if len(found) >= limit:
                break
            rec = staging.records[position]
            if rec.selected and rec.data_type == data_type:
                found.append(Pending(position, json.loads(rec.data)))
        return found

    def deselect(self, operation_id: str, positions: Sequence[int]) -> None:
        staging = self._store.staging.get(operation_id)
        records = staging.records if staging is not None else {}
        for position in positions:
            rec = records.get(position)
            if rec is not None and rec.selected:
                rec.selected = False
                self._undo.append(functools.partial(_reselect, rec))

    def record_errors(
        self, operation_id: str, errors: Sequence[tuple[int, Mapping[str, Any]]],
    ) -> None:
        staging = self._store.staging.get(operation_id)
        for position, error in errors:
            rec = staging.records.get(position) if staging else None
            if rec is None:
                continue
            rec.errors.append(json.loads(json.dumps(error)))
            self._undo.append(rec.errors.pop)

    def remove_succeeded(self, operation_id: str) -> int:
        staging = self._store.staging.get(operation_id)
        if staging is None:
            return 0
        removed = {p: rec for p, rec in staging.records.items() if not rec.errors}
        for position in removed:
            del staging.records[position]
        staging.changed()

        def undo() -> None:
            staging.records.update(removed)
            staging.changed()

        self._undo.append(undo)
        return len(removed)

    def unstage_all(self) -> int:
        store = self._store
        old = store.staging
        store.staging = {}
        self._undo.append(lambda: setattr(store, "staging", old))
        return sum(len(s.records) for s in old.values())

    def delete(self, operation_id: str) -> bool:
        store = self._store
        row = store.rows.pop(operation_id, None)
        if row is None:
            return False
        staging = store.staging.pop(operation_id, None)
        history = store.history.pop(operation_id, None)

        def undo() -> None:
            store.rows[operation_id] = row
            if staging is not None:
                store.staging[operation_id] = staging
            if history is not None:
                store.history[operation_id] = history

        self._undo.append(undo)
        return True

    def append_history(self, entries: Sequence[HistoryEntry]) -> None:
        for entry in entries:
            kept = self._store.history.setdefault(entry.operation_id, [])
            kept.append(entry)
            self._undo.append(kept.pop)

    def history(self, operation_id: str) -> list[HistoryEntry]:
        return list(self._store.history.get(operation_id, ()))

    def checkpoint(self, operation_id: str) -> int | None:
        return self._row(operation_id).checkpoint

    def set_checkpoint(
        self, operation_id: str, position: int | None, heartbeat: dt.datetime,
    ) -> None:
        row = self._row(operation_id)
        old = (row.checkpoint, row.heartbeat)
        row.checkpoint, row.heartbeat = position, heartbeat

        def undo() -> None:
            row.checkpoint, row.heartbeat = old

        self._undo.append(undo)

    def heartbeat(self, operation_id: str) -> dt.datetime | None:
        return self._row(operation_id).heartbeat

    def _row(self, operation_id: str) -> _Row:
        try:
            return self._store.rows[operation_id]
        except KeyError:
            msg = f"no operation {operation_id!r}"
            raise KeyError(msg) from None


def _reselect(rec: _Staged) -> None:
    rec.selected = True


def _record(position: int, rec: _Staged) -> StagedRecord:
    return StagedRecord(position, rec.id, json.loads(rec.data), rec.data_type, tuple(rec.errors))
