"""Files importstate creates hold imported users and credentials: only their owner reads them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Final

#: Mode of the files importstate creates: read and written by their owner only.
FILE_MODE: Final = 0o600
#: Mode of the directories it creates for them.
DIRECTORY_MODE: Final = 0o700


def create_private(path: str | os.PathLike[str]) -> None:
    """Create ``path`` empty with mode 0600 (its missing directories 0700) unless it exists.

    SQLite gives a database's ``-wal`` and ``-shm`` files the mode of the
    database file, so creating the file first keeps all three private,
    whatever the process's umask. An existing file keeps its mode.
    """
    name = os.fspath(path)
    if name in {"", ":memory:"} or name.startswith("file:"):
        return  # SQLite's names for a database that is not a plain file
    target = Path(name)
    missing = [parent for parent in target.parents if not parent.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=DIRECTORY_MODE, exist_ok=True)
    try:
        descriptor = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
    except FileExistsError:
        return
    os.close(descriptor)


def open_private(path: str | os.PathLike[str]) -> int:
    """A descriptor for writing ``path``, created (or emptied) with mode 0600."""
    return os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, FILE_MODE)


def open_file_private(path: str | os.PathLike[str]) -> IO[bytes]:
    """``path`` open for binary writing, created (or emptied) with mode 0600."""
    return os.fdopen(open_private(path), "wb")


#: The folder of a files directory where pending downloads put what they fetch.
PENDING_FOLDER: Final = "pending"


def default_files_dir(db: str | os.PathLike[str]) -> Path:
    """Where import files of the database ``db`` go unless told: ``<db>-files`` beside it."""
    path = Path(db)
    return path.with_name(f"{path.name}-files")
