"""What a file importer is: a loader, the sink it stages into, and the limits it reads under."""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO, Any, Final, Protocol, runtime_checkable

import attrs

from importstate.records import DataType

#: An archive may unpack to at most this many bytes (Behaviour: files).
MAX_UNPACKED_SIZE: Final = 4 * 1024**3
#: An archive member may unpack to at most this many times its compressed size (Behaviour: files).
MAX_RATIO: Final = 100.0
#: A line (a CSV line, a JSON element) may be at most this many bytes long (Behaviour: files).
MAX_LINE: Final = 1024**2


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        msg = f"{attribute.name} must be positive, not {value}"
        raise ValueError(msg)


@attrs.frozen
class FileLimits:
    """What a bad file is refused for (Behaviour: files); the defaults are the spec's.

    Attributes:
        max_unpacked_size: bytes all members of an archive may unpack to.
        max_ratio: how many times its compressed size a member may unpack to
            (members under 1 MiB are not held to it: they cannot be bombs).
        max_line: bytes of one line of text (characters of one JSON element).

    Raises:
        ValueError: a limit is not positive.
    """

    max_unpacked_size: int = attrs.field(default=MAX_UNPACKED_SIZE, validator=_positive)
    max_ratio: float = attrs.field(default=MAX_RATIO, validator=_positive)
    max_line: int = attrs.field(default=MAX_LINE, validator=_positive)


#: A record to stage and the 1-based line of its member it comes from.
Placed = tuple[int, dict[str, Any]]


class Sink(Protocol):
    """Where a loader stages what it parses: the operation's staging, inside one transaction.

    Everything staged is rolled back if the loader raises, so a loader
    raises :class:`~importstate.errors.FileFormatError` at the first fault
    and never cleans up.
    """

    def preparing(self, data_type: DataType) -> None:
        """Say that parsing of ``data_type`` records begins (``importer_preparing_users``...).

        The step only moves forward: a kind parsed after a later one keeps the later step.
        """

    def stage(self, data_type: DataType, member: str, records: Iterable[Placed]) -> int:
        """Stage ``records`` of ``data_type`` read from ``member``, as they are iterated.

        They are checked as ``add_users`` (``add_channels``, ``add_messages``)
        checks them, a chunk at a time; returns how many were staged.

        Raises:
            FileFormatError: a record was refused, named by ``member`` and its line.
        """


@runtime_checkable
class Loader(Protocol):
    """A file importer: reads one file and stages its users, channels and messages.

    Attributes:
        key: the importer key it is registered under (``csv``); the operation's ``importerKey``.
        name: its display name (``CSV``); the operation's ``type`` and the selection's ``name``.
        content_type: the ``contentType`` recorded when the caller gives none.
    """

    key: str
    name: str
    content_type: str

    def load(self, file: IO[bytes], name: str, sink: Sink, limits: FileLimits) -> None:
        """Parse ``file`` (called ``name``) and stage what it holds into ``sink``.

        ``file`` is open for binary reading and may not be seekable.

        Raises:
            FileFormatError: the file is bad (naming the member and line).
        """
