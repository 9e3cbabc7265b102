"""The server's files directory: what clients uploaded, or had it download, per operation.

A file arrives in a folder ``incoming-<random>`` of its own; once its
operation exists the folder is renamed after the operation's id. Folders of
operations that are no longer the current one are removed (:meth:`keep`),
as are folders left ``incoming`` by a server that stopped mid-way (at
start). ``pending/`` holds what the pending downloads fetched for the
target, and is never removed here.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import Final

from importstate._files import DIRECTORY_MODE, PENDING_FOLDER

_INCOMING: Final = "incoming-"
PENDING: Final = PENDING_FOLDER


class ImportFiles:
    """The files directory ``root`` (created 0700 on first use)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def incoming(self, file_name: str) -> Path:
        """A new, private path for a file called ``file_name`` (only its last part is kept)."""
        folder = self.root / f"{_INCOMING}{secrets.token_hex(8)}"
        self.root.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
        folder.mkdir(mode=DIRECTORY_MODE)
        name = Path(file_name.replace("\\", "/")).name or "upload"
        return folder / name

    def adopt(self, path: Path, operation_id: str) -> Path:
        """Move ``path``'s incoming folder to the operation's; the file's new path.

        An open handle on the file stays valid (a rename, in one file system).
        """
        folder = self.root / operation_id
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        path.parent.rename(folder)
        return folder / path.name

    def discard(self, path: Path) -> None:
        """Remove ``path`` and its incoming folder (a file that will not be loaded)."""
        shutil.rmtree(path.parent, ignore_errors=True)

    def pending(self) -> Path:
        """The folder of the pending downloads (created on first use)."""
        folder = self.root / PENDING
        folder.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
        return folder

    def keep(self, operation_id: str | None, *, incoming: bool = True) -> None:
        """Remove the folders of every operation but ``operation_id``.

        With ``incoming=False`` also the incoming folders (at start, when no
        upload can be in flight).
        """
        if not self.root.is_dir():
            return
        for entry in self.root.iterdir():
            if entry.name in {PENDING, operation_id} or not entry.is_dir():
                continue
            if entry.name.startswith(_INCOMING) and incoming:
                continue
            shutil.rmtree(entry, ignore_errors=True)
