"""Rows of the SQL stores: staged rows decoded into :class:`StagedRecord` values, history rows."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Final

from importstate._time import epoch_millis, from_epoch_millis
from importstate.history import HistoryEntry
from importstate.steps import ProgressStep
from importstate.stores._protocol import Pending, StagedRecord

#: A history row: ``(operation, before, after, event, at in epoch ms, actor)``.
HistoryRow = tuple[str, str | None, str, str, int, str]

_DECODER: Final = json.JSONDecoder()


def staged_records(
    rows: Iterable[tuple[int, str, str, str, str | None]],
) -> list[StagedRecord]:
    """Records from rows ``(position, id, data, data_type, errors)``, data and errors JSON text."""
    # The run loop's hot path: decode with the bare decoder, build tuples in C.
    decode, new = _DECODER.raw_decode, tuple.__new__
    return [
        new(StagedRecord, (position, id_, decode(data)[0], kind,
                           tuple(decode(errors)[0]) if errors else ()))
        for position, id_, data, kind, errors in rows
    ]


def pending_records(rows: Iterable[tuple[int, str]]) -> list[Pending]:
    """Records from rows ``(position, data)``, data JSON text."""
    decode, new = _DECODER.raw_decode, tuple.__new__
    return [new(Pending, (position, decode(data)[0])) for position, data in rows]


def pending_page(positions: str | None, data: str | None) -> list[Pending]:
    """Records from a page aggregated by the store: positions joined by commas, data a JSON array.

    The aggregate keeps each position with its data; its order is the
    query's in practice, and is restored here should it ever not be.
    """
    if positions is None or data is None:
        return []
    keys = list(map(int, positions.split(",")))
    new = tuple.__new__
    page = [new(Pending, pair) for pair in zip(keys, _DECODER.decode(data), strict=True)]
    if keys != sorted(keys):
        page.sort(key=_position)
    return page


def _position(record: Pending) -> int:
    return record.position


def history_row(entry: HistoryEntry) -> HistoryRow:
    """The row that stores ``entry``: steps by their wire names, the time in epoch ms."""
    before = None if entry.before is None else entry.before.value
    return (entry.operation_id, before, entry.after.value, entry.event,
            epoch_millis(entry.at), entry.actor)


def history_entry(row: HistoryRow) -> HistoryEntry:
    """The entry a history row stores."""
    operation, before, after, event, at, actor = row
    return HistoryEntry(
        operation, None if before is None else ProgressStep(before), ProgressStep(after),
        event, from_epoch_millis(at), actor,
    )
