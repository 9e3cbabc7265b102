"""The README's picture of an operation's path: an import cancelled while importing users.

A scripted operation on a fixed clock: created from the command line,
users added over the REST API, the import started, and cancelled by the
administrator 3.1 s into its first batch. Its history, drawn on the state
diagram, is written to ``diagrams/operation-example.mmd`` and, where
Graphviz's ``dot`` is installed, ``diagrams/operation-example.svg``
(``make diagrams`` runs this; a test keeps the ``.mmd`` in step)::

    python examples/operation_path.py diagrams
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from importstate import HistoryEntry, ImportService, MemoryStore, diagrams

#: The example's title: the operation's id is random, its day is not.
TITLE: Final = "importstate: an import cancelled while importing users, 2026-12-02 (times UTC)"
NAME: Final = "operation-example"


class ScriptClock:
    """A clock that stands still until the script moves it on."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        """The time the script has reached."""
        return self.now

    def wait(self, seconds: float) -> None:
        """Move the clock on by ``seconds``."""
        self.now += dt.timedelta(seconds=seconds)


class CancelledImporter:
    """Takes 3.1 s over its first batch, during which the administrator cancels the import."""

    def __init__(self, clock: ScriptClock) -> None:
        self.clock = clock
        self.service: ImportService | None = None

    def import_batch(self, users: Sequence[dict[str, Any]]) -> list[BaseException | None]:
        """Cancel the import as its administrator, then report every user imported."""
        assert self.service is not None  # noqa: S101 - set before the run
        self.clock.wait(3.1)
        with ImportService.acting("user:admin"):
            self.service.cancel()
        return [None] * len(users)


def scripted_history() -> list[HistoryEntry]:
    """The history of new → ready → importing → canceled, the same at every run."""
    clock = ScriptClock(dt.datetime(2026, 12, 2, 4, 12, 0, 250_000, tzinfo=dt.UTC))
    importer = CancelledImporter(clock)
    service = ImportService(MemoryStore(), {"api": importer}, clock=clock)
    importer.service = service
    with service.acting("cli:admin"):
        service.new_operation("admin")
    clock.wait(1.52)
    users = [{"username": f"user{n}", "emails": [f"user{n}@example.com"],
              "importIds": [str(n)]} for n in range(3)]
    with service.acting("user:admin"):
        service.add_users(users)
    clock.wait(2.4)
    with service.acting("user:admin"):
        service.run()
    return service.history()


def drawing(fmt: diagrams.Format) -> str:
    """The state diagram with the scripted operation's path, in ``fmt``."""
    return diagrams.state_diagram(format=fmt, history=scripted_history(), title=TITLE)


def main(folder: Path) -> None:
    """Write the Mermaid file, and the SVG where ``dot`` is installed, into ``folder``."""
    written = [diagrams.Format.MERMAID]
    if shutil.which("dot") is not None:
        written.append(diagrams.Format.SVG)
    for fmt in written:
        suffix = "mmd" if fmt is diagrams.Format.MERMAID else str(fmt)
        path = folder / f"{NAME}.{suffix}"
        path.write_text(drawing(fmt), encoding="utf-8", newline="\n")
        print(f"wrote {path}")  # noqa: T201 - the script's report, as make diagrams shows it


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=Path("diagrams"),
                        help="where the drawings go (default: diagrams)")
    main(parser.parse_args().folder)
