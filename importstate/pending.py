"""What a target still has to fetch after an import: avatars of users, files of messages.

Behaviour: file-api.

An import stages records that name files by URL (a user's ``avatarUrl``, a
message's ``_importFile.downloadUrl``); the target keeps them as pending
downloads, and :meth:`~importstate.ImportService.download_pending` fetches
them later in an operation of their own (``Pending Files`` or ``Pending
Avatars``). :class:`PendingSource` is what such a target offers;
:class:`~importstate.UsersTableImporter` is one.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import BinaryIO, Final, NamedTuple, Protocol, TypeAlias, runtime_checkable

__all__ = [
    "PENDING_NAMES",
    "Fetch",
    "PendingDownload",
    "PendingKind",
    "PendingSource",
]


class PendingKind(enum.StrEnum):
    """What a pending download is: a file attached to a message, or a user's avatar."""

    FILES = "files"
    AVATARS = "avatars"

    @property
    def importer_key(self) -> str:
        """The operation's ``importerKey``: ``pending-files`` or ``pending-avatars``."""
        return f"pending-{self.value}"

    @property
    def importer_name(self) -> str:
        """The operation's ``type`` and the importer's display name: ``Pending Files``, ..."""
        return f"Pending {self.value.capitalize()}"


#: Importer key → display name of the two pending-download importers (Behaviour: files).
PENDING_NAMES: Final = {kind.importer_key: kind.importer_name for kind in PendingKind}


class PendingDownload(NamedTuple):
    """One file the target still has to fetch.

    Attributes:
        kind: a message's file or a user's avatar.
        import_id: the first ``importIds`` entry of the message or user.
        url: where to fetch it from.
        name: the file's name as the import gave it (``_importFile.name``), if any.
        content_type: its type as the import gave it (``_importFile.type``), if any.
        size: its size in bytes as the import gave it, if any.
        error: why the last attempt failed, if one did.
    """

    kind: PendingKind
    import_id: str
    url: str
    name: str | None = None
    content_type: str | None = None
    size: int | None = None
    error: str | None = None


@runtime_checkable
class PendingSource(Protocol):
    """A target that records what it still has to fetch."""

    def pending_downloads(self, kind: PendingKind) -> list[PendingDownload]:
        """The downloads of ``kind`` not yet fetched (failed ones included), in a stable order."""

    def downloaded(
        self, kind: PendingKind, import_id: str, *, path: str | None = None,
        error: str | None = None,
    ) -> None:
        """Record that a download was fetched to ``path``, or failed with ``error``."""


#: ``fetch(url, dest) -> bytes written``, e.g. a :class:`~importstate.fetch.Fetcher`.
Fetch: TypeAlias = Callable[[str, BinaryIO], int]
