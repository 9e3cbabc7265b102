"""What an importer is, and how the run loop calls one.

An importer takes staged users and creates them in the target system. It is
either a callable taking one user's ``data`` (returns on success, raises to
fail that user) or an object with ``import_batch(users)`` returning one
``BaseException | None`` per user, called with at most 50 users.

A batch may reach an importer more than once (a run resumed after a crash
redoes the batch that was in flight), so importers should be idempotent,
keyed by the user's first ``importIds`` entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeAlias, runtime_checkable

from importstate.errors import ImporterNotDefined

__all__ = [
    "BatchCall",
    "BatchImporter",
    "Importer",
    "UserImporter",
    "batch_call",
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


def batch_call(importer: Importer) -> BatchCall:
    """The importer as one call per batch, whichever shape it has."""
    if isinstance(importer, BatchImporter):
        return importer.import_batch
    return _per_user(importer)


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
