"""What an importer is, and how the run loop calls one.

An importer takes staged records and creates them in the target system.
For users it is either a callable taking one user's ``data`` (returns on
success, raises to fail that user) or an object with ``import_batch(users)``
returning one ``BaseException | None`` per user, called with at most 50
users. An object imports channels with ``import_channels(channels)`` and
messages with ``import_messages(messages)`` (batches of at most 50 and 500),
of the same shape; an importer without one of these methods cannot import
that type, and a run refuses to start while staging holds any
(:data:`~importstate.records.RECORD_KINDS` names the methods).

A batch may reach an importer more than once (a run resumed after a crash
redoes the batch that was in flight), so importers should be idempotent,
keyed by the record's first ``importIds`` entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeAlias, cast, runtime_checkable

from importstate.errors import ImporterNotDefined
from importstate.records import RECORD_KINDS, DataType, kind_of

__all__ = [
    "BatchCall",
    "BatchImporter",
    "Importer",
    "UserImporter",
    "batch_calls",
    "from_calls",
    "registered",
]


@runtime_checkable
class BatchImporter(Protocol):
    """An importer that takes a whole batch at once."""

    def import_batch(self, users: list[dict[str, Any]]) -> Sequence[BaseException | None]:
        """Import ``users``; return, per user in order, the error that failed it or ``None``."""


UserImporter: TypeAlias = Callable[[dict[str, Any]], object]
Importer: TypeAlias = UserImporter | BatchImporter
BatchCall: TypeAlias = Callable[[list[dict[str, Any]]], Sequence[BaseException | None]]


def registered(importers: Mapping[str, Importer], key: str) -> Importer:
    """The importer registered under ``key``.

    Raises:
        ImporterNotDefined: none is.
    """
    try:
        return importers[key]
    except KeyError:
        raise ImporterNotDefined(key) from None


def batch_calls(importer: Importer) -> dict[str, BatchCall]:
    """The importer as one call per batch of each record type it can import, whichever shape."""
    calls: dict[str, BatchCall] = {}
    for kind in RECORD_KINDS:
        method = getattr(importer, kind.importer_method, None)
        if callable(method):
            calls[kind.data_type] = method
    if DataType.USER not in calls and callable(importer):
        calls[DataType.USER] = _per_user(importer)
    return calls


class _Calls:
    """An importer built of calls: each one is the method its record type names."""

    def __init__(self, calls: Mapping[str, BatchCall]) -> None:
        for data_type, call in calls.items():
            setattr(self, kind_of(data_type).importer_method, call)


def from_calls(calls: Mapping[str, BatchCall]) -> Importer:
    """An importer whose batches of each ``dataType`` in ``calls`` go to that call.

    The shape for a wrapper: ``from_calls({t: wrap(c) for t, c in batch_calls(inner).items()})``
    imports exactly the types ``inner`` imports.
    """
    importer: Any = _Calls(calls)  # its methods are set per type: no static type has them
    return cast("Importer", importer)


def _per_user(importer: UserImporter) -> BatchCall:
    def import_batch(users: list[dict[str, Any]]) -> list[BaseException | None]:
        outcomes: list[BaseException | None] = [None] * len(users)
        for index, user in enumerate(users):
            try:
                importer(user)
            except Exception as exc:  # noqa: BLE001 - any importer error fails only this user
                outcomes[index] = exc
        return outcomes

    return import_batch
