"""A zip archive opened under the limits: safe member names, no bombs, damage named.

Every member is checked from the central directory before anything is read:
a name that is absolute or climbs out with ``..`` (zip slip), a total
unpacked size or a member's compression ratio over the limits. ``zipfile``
never unpacks more than the size a member declares (a lie fails its CRC),
so the declared sizes bound what is read.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from typing import IO, Final

import attrs

from importstate.errors import FileFormatError
from importstate.loaders._protocol import FileLimits, Sink
from importstate.loaders._text import buffered
from importstate.records import DataType

#: Members that unpack to less than this are not held to the ratio: they cannot be bombs.
RATIO_FLOOR: Final = 1024**2
_KIB: Final = 1024
#: What macOS's archiver adds beside every file (resource forks): never part of an export.
_MACOS: Final = "__MACOSX/"
_DRIVE: Final = re.compile(r"\A[A-Za-z]:")
_SEPARATORS: Final = re.compile(r"[/\\]")
#: What reading a damaged member raises.
_DAMAGE: Final = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError)


def _size(count: int) -> str:
    for power, unit in ((3, "GiB"), (2, "MiB"), (1, "KiB")):
        if count >= _KIB**power:
            return f"{count / _KIB**power:,.1f} {unit}"
    return f"{count:,} bytes"


class Archive:
    """The members of one zip archive that an export may hold, checked against the limits.

    Attributes:
        name: the archive's name, for errors about it as a whole.
        members: member names in the archive's order, less directories,
            ``__MACOSX/`` and hidden files (``.DS_Store``).
    """

    def __init__(self, file: IO[bytes], name: str, limits: FileLimits) -> None:
        self.name = name
        try:
            self._zip = zipfile.ZipFile(file)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise FileFormatError(name, None, f"not a zip archive ({exc})") from None
        infos = self._zip.infolist()
        for info in infos:
            _check_name(info.filename)
        _check_sizes(name, infos, limits)
        self.members = [info.filename for info in infos if _is_content(info)]
        if not self.members:
            raise FileFormatError(name, None, "the archive is empty")

    @contextlib.contextmanager
    def reading(self, member: str) -> Iterator[IO[bytes]]:
        """``member`` open for reading, buffered; damage found while reading it is named.

        Raises:
            FileFormatError: the member is damaged (a bad CRC, a broken stream)
                or compressed in a way ``zipfile`` cannot read.
        """
        try:
            with self._zip.open(member) as raw:
                yield buffered(raw)
        except _DAMAGE as exc:
            raise FileFormatError(member, None, f"damaged in the archive ({exc})") from None

    def close(self) -> None:
        """Close the archive (not the file it was read from)."""
        self._zip.close()


def _check_name(member: str) -> None:
    if member.startswith(("/", "\\")) or _DRIVE.match(member):
        raise FileFormatError(member, None, "an absolute member name (refused: zip slip)")
    if ".." in _SEPARATORS.split(member):
        raise FileFormatError(member, None, "a member name with '..' (refused: zip slip)")


def _check_sizes(name: str, infos: list[zipfile.ZipInfo], limits: FileLimits) -> None:
    total = 0
    for info in infos:
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size >= RATIO_FLOOR and ratio > limits.max_ratio:
            reason = (f"unpacks to {ratio:,.0f} times its compressed size, over the limit of"
                      f" {limits.max_ratio:,.0f} (refused: a zip bomb)")
            raise FileFormatError(info.filename, None, reason)
    if total > limits.max_unpacked_size:
        reason = (f"unpacks to {_size(total)}, over the limit of"
                  f" {_size(limits.max_unpacked_size)} (refused: a zip bomb)")
        raise FileFormatError(name, None, reason)


def _is_content(info: zipfile.ZipInfo) -> bool:
    if info.is_dir() or info.filename.startswith(_MACOS):
        return False
    return not info.filename.rsplit("/", 1)[-1].startswith(".")


@contextlib.contextmanager
def open_archive(file: IO[bytes], name: str, limits: FileLimits) -> Iterator[Archive]:
    """``file`` as an :class:`Archive`; a stream that cannot seek is spooled to a temporary file.

    Raises:
        FileFormatError: not a zip archive, a member name or size refused,
            no member, or a stream longer than the unpacked size limit.
    """
    with contextlib.ExitStack() as stack:
        if not file.seekable():
            spool = stack.enter_context(tempfile.TemporaryFile())
            copied = _copy(file, spool, limits.max_unpacked_size)
            if copied > limits.max_unpacked_size:
                reason = f"longer than {_size(limits.max_unpacked_size)} (the limit)"
                raise FileFormatError(name, None, reason)
            spool.seek(0)
            file = spool
        archive = Archive(file, name, limits)
        stack.callback(archive.close)
        yield archive


def _copy(source: IO[bytes], target: IO[bytes], limit: int) -> int:
    copied = 0
    while copied <= limit:
        block = source.read(1024 * 1024)
        if not block:
            break
        target.write(block)
        copied += len(block)
    return copied




@attrs.frozen
class Reading:
    """One archive being staged into a sink, lines held to ``max_line``."""

    archive: Archive
    sink: Sink
    max_line: int


class ArchiveLoader:
    """A loader of a zip archive: opens it under the limits, then :meth:`read` stages it."""

    content_type = "application/zip"

    def load(self, file: IO[bytes], name: str, sink: Sink, limits: FileLimits) -> None:
        """Open the archive (refusing a bad one), then stage what :meth:`read` finds in it."""
        with open_archive(file, name, limits) as archive:
            sink.preparing(DataType.USER)  # an export's users come first, if it has any
            self.read(Reading(archive, sink, limits.max_line))

    def read(self, reading: Reading) -> None:
        """Stage the archive's users, then its channels, then its messages."""
        raise NotImplementedError
