"""Importers for tests: one that records what it was given, one that fails chosen users."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class ImportFailed(Exception):
    """The error :class:`FailingImporter` raises for a user it fails."""


class RecordingImporter:
    """A per-user importer that imports nothing and records every user it was handed.

    Attributes:
        calls: each user's ``data``, in the order the run handed them over.
    """

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, user: dict[str, Any]) -> None:
        """Record ``user``."""
        self.calls.append(user)

    @property
    def import_ids(self) -> list[str]:
        """The first ``importIds`` entry of every user handed over, in order."""
        return [user["importIds"][0] for user in self.calls]


class FailingImporter(RecordingImporter):
    """A recording importer that raises :class:`ImportFailed` for the users ``fails`` picks.

    Args:
        fails: decides per user; by default every user fails.
        message: the error's message, which the run records on the user.

    Attributes:
        failed: the users it failed, in order.
    """

    def __init__(
        self,
        fails: Callable[[dict[str, Any]], bool] = lambda _user: True,
        message: str = "import failed",
    ) -> None:
        super().__init__()
        self.fails = fails
        self.message = message
        self.failed: list[dict[str, Any]] = []

    def __call__(self, user: dict[str, Any]) -> None:
        """Record ``user``; raise :class:`ImportFailed` if ``fails(user)``."""
        super().__call__(user)
        if self.fails(user):
            self.failed.append(user)
            raise ImportFailed(self.message)
