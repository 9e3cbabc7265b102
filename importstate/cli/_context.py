"""What a subcommand works with: the global options, the consoles for people, and the service."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Final

import attrs
import click
from rich.console import Console, RenderableType
from rich.rule import Rule
from rich.text import Text

from importstate._setup import Setup, open_setup
from importstate.service import ImportService
from importstate.users_table import UsersTableImporter

#: The database used when neither ``--db`` nor ``IMPORTSTATE_DB`` is given.
DEFAULT_DB: Final = "importstate.db"
#: The width of piped output: wider than any table, so none is cut.
_UNBOUNDED: Final = 1_000_000
#: The width of a rule in piped output.
_RULE_WIDTH: Final = 80
#: Exit status after Ctrl-C (128 + SIGINT).
INTERRUPTED: Final = 130
#: Exit status after SIGTERM (128 + SIGTERM).
TERMINATED: Final = 143


class CommandError(Exception):
    """A user error the command line reports as one line (exit status 1)."""


class Terminated(BaseException):
    """SIGTERM arrived; raised in the main thread, as Ctrl-C raises ``KeyboardInterrupt``.

    A ``BaseException``, so that no ``except Exception`` on the way mistakes
    it for a failure.
    """


def _console(*, stderr: bool = False) -> Console:
    # Piped output is for files and other programs: no line is folded, and no
    # table is cut, at the width a terminal would have had. (Progress on a
    # piped stderr keeps $COLUMNS: it is drawn for a person.)
    stream = sys.stderr if stderr else sys.stdout
    piped = not stream.isatty()
    width = _UNBOUNDED if piped and not stderr else None
    return Console(stderr=stderr, highlight=False, soft_wrap=piped, width=width)


@attrs.define
class Context:
    """What a subcommand works with: the global options, the consoles, and the service.

    The service (an :class:`ImportService` over the ``--db`` SQLite file, or
    over the PostgreSQL database of ``--dsn``, with the built-in importer
    registered as ``api``) is opened on first use and closed when the
    command ends. The built-in importer always writes to the ``--db`` file.

    Attributes:
        db_option: ``--db`` as given (``None``: not given).
        dsn_option: ``--dsn`` as given.
        json: ``--json`` was given: print machine-readable output only.
        out: the console for people, on stdout.
        err: the console for progress and notes, on stderr.
    """

    db_option: str | None = None
    dsn_option: str | None = None
    json: bool = False
    out: Console = attrs.Factory(_console)
    err: Console = attrs.Factory(lambda: _console(stderr=True))
    _setup: Setup | None = None

    @property
    def db(self) -> Path:
        """The database file of ``--db`` (or ``IMPORTSTATE_DB``, or ``./importstate.db``)."""
        return Path(self.db_option or os.environ.get("IMPORTSTATE_DB") or DEFAULT_DB)

    @property
    def dsn(self) -> str | None:
        """The PostgreSQL DSN of ``--dsn`` (or ``IMPORTSTATE_DSN``); ``None``: use :attr:`db`."""
        return self.dsn_option or os.environ.get("IMPORTSTATE_DSN") or None

    def service(self, *, existing: bool = False) -> ImportService:
        """The import service over :attr:`dsn` or :attr:`db`, opened on first call.

        Args:
            existing: refuse to create the SQLite file: a command that only
                reads must not turn a mistyped ``--db`` into an empty database.

        Raises:
            CommandError: ``existing`` and there is no such file.
        """
        if existing:
            self.require_db()
        return self._opened().service

    def require_db(self) -> None:
        """Refuse a ``--db`` file that does not exist (unless the operations are in ``--dsn``).

        Raises:
            CommandError: naming the file and how to make one.
        """
        if self.dsn is None and not self.db.exists():
            msg = (f"{self.db}: no such database (check --db or $IMPORTSTATE_DB;"
                   f" `importstate new` creates one)")
            raise CommandError(msg)

    def open(self, path: Path, *, dsn: str | None = None) -> ImportService:
        """An import service over ``dsn``, else the SQLite file ``path``; closed with the context.

        The built-in importer writes to ``path`` either way.
        """
        self.close()
        self._setup = open_setup(path, dsn=dsn)
        return self._setup.service

    def opened_service(self) -> ImportService | None:
        """The service if a command opened it, without opening one."""
        return self._setup.service if self._setup is not None else None

    @property
    def importer(self) -> UsersTableImporter:
        """The built-in importer of the open service."""
        return self._opened().importer

    def close(self) -> None:
        """Close the store and the importer, if open."""
        if self._setup is not None:
            setup, self._setup = self._setup, None
            setup.close()

    def _opened(self) -> Setup:
        if self._setup is None:
            self._setup = open_setup(self.db, dsn=self.dsn)
        return self._setup

    def print_json(self, value: object) -> None:
        """Write ``value`` as indented JSON to stdout, unstyled, for scripts."""
        sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def say(self, *parts: str | Text) -> None:
        """Print one line for people (not in ``--json`` mode); ``str`` parts are not markup."""
        if not self.json:
            self.out.print(Text.assemble(*parts))

    def show(self, renderable: RenderableType) -> None:
        """Print a table for people (not in ``--json`` mode)."""
        if not self.json:
            self.out.print(renderable)

    def rule(self, title: str = "") -> None:
        """A horizontal rule with ``title``: the terminal's width, or 80 columns when piped."""
        width = None if self.out.is_terminal else min(self.out.width, _RULE_WIDTH)
        self.out.print(Rule(title), width=width)


#: ``@pass_context`` hands a subcommand the :class:`Context` as its first argument.
pass_context = click.make_pass_decorator(Context, ensure=True)
