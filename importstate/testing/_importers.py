"""Importers for tests: one that records what it was given, one that fails chosen records."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class ImportFailed(Exception):
    """The error :class:`FailingImporter` raises for a record it fails."""


class RecordingImporter:
    """An importer of users, channels and messages that imports nothing and records them.

    Users come one at a time (it is a per-user callable), channels and
    messages a batch at a time (``import_channels``, ``import_messages``).

    Attributes:
        calls: each user's ``data``, in the order the run handed them over.
        channels: each channel's ``data``, in order.
        messages: each message's ``data``, in order.
    """

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.channels: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []

    def __call__(self, user: dict[str, Any]) -> None:
        """Record ``user``."""
        self.calls.append(user)

    def import_channels(self, channels: list[dict[str, Any]]) -> list[BaseException | None]:
        """Record each channel; the verdict on each (``None``: imported)."""
        return [self._take(self.channels, channel) for channel in channels]

    def import_messages(self, messages: list[dict[str, Any]]) -> list[BaseException | None]:
        """Record each message; the verdict on each (``None``: imported)."""
        return [self._take(self.messages, message) for message in messages]

    def _take(self, into: list[dict[str, Any]], record: dict[str, Any]) -> BaseException | None:
        into.append(record)
        return None

    @property
    def import_ids(self) -> list[str]:
        """The first ``importIds`` entry of every user handed over, in order."""
        return [user["importIds"][0] for user in self.calls]


class FailingImporter(RecordingImporter):
    """A recording importer that fails, with :class:`ImportFailed`, the records ``fails`` picks.

    Args:
        fails: decides per record (user, channel or message); by default
            every record fails.
        message: the error's message, which the run records on the record.

    Attributes:
        failed: the records it failed, in order.
    """

    def __init__(
        self,
        fails: Callable[[dict[str, Any]], bool] = lambda _record: True,
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

    def _take(self, into: list[dict[str, Any]], record: dict[str, Any]) -> BaseException | None:
        super()._take(into, record)
        if not self.fails(record):
            return None
        self.failed.append(record)
        return ImportFailed(self.message)
