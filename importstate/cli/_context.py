"""What a subcommand works with (:class:`Context`), and the registry that builds the parser.

The parser lists the subcommands in the order they were registered.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import attrs
from rich.console import Console
from rich.text import Text

from importstate._setup import Setup, open_setup
from importstate.service import ImportService
from importstate.users_table import UsersTableImporter

#: The database used when neither ``--db`` nor ``IMPORTSTATE_DB`` is given.
DEFAULT_DB: Final = "importstate.db"
#: Exit status after Ctrl-C (128 + SIGINT).
INTERRUPTED: Final = 130


class CommandError(Exception):
    """A user error the command line reports as one line (exit status 1)."""


@attrs.define
class Context:
    """What a subcommand works with: its arguments, the consoles, and the service.

    The service (an :class:`ImportService` over the ``--db`` SQLite file, or
    over the PostgreSQL database of ``--dsn``, with the built-in importer
    registered as ``api``) is opened on first use and closed when the
    command ends. The built-in importer always writes to the ``--db`` file.
    """

    args: argparse.Namespace
    out: Console
    err: Console
    _setup: Setup | None = None

    @property
    def json(self) -> bool:
        """``--json`` was given: print machine-readable output only."""
        return bool(self.args.json)

    @property
    def db(self) -> Path:
        """The database file of ``--db`` (or ``IMPORTSTATE_DB``, or ``./importstate.db``)."""
        return Path(self.args.db or os.environ.get("IMPORTSTATE_DB") or DEFAULT_DB)

    @property
    def dsn(self) -> str | None:
        """The PostgreSQL DSN of ``--dsn`` (or ``IMPORTSTATE_DSN``); ``None``: use :attr:`db`."""
        return self.args.dsn or os.environ.get("IMPORTSTATE_DSN") or None

    def service(self) -> ImportService:
        """The import service over :attr:`dsn` or :attr:`db`, opened on first call."""
        return self._opened().service

    def open(self, path: Path, *, dsn: str | None = None) -> ImportService:
        """An import service over ``dsn``, else the SQLite file ``path``; closed with the context.

        The built-in importer writes to ``path`` either way.
        """
        self.close()
        self._setup = open_setup(path, dsn=dsn)
        return self._setup.service

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


Handler = Callable[[Context], int]


@attrs.frozen
class Option:
    """One argument of a subcommand: ``argparse.add_argument``'s arguments."""

    flags: tuple[str, ...]
    settings: dict[str, Any]


def option(*flags: str, **settings: Any) -> Option:  # noqa: ANN401 - argparse's keywords
    """Declare an argument of a subcommand, as ``argparse.add_argument`` takes it."""
    return Option(flags, settings)


@attrs.frozen
class Command:
    """A registered subcommand."""

    name: str
    help: str
    handler: Handler
    options: tuple[Option, ...]


#: Every subcommand, by name (``"users add"`` for one inside a group).
COMMANDS: Final[dict[str, Command]] = {}
#: The help line of each group of subcommands (``"users"`` for ``"users add"``).
GROUPS: Final[dict[str, str]] = {}


def group(name: str, help: str) -> None:  # noqa: A002
    """Give the group ``name`` (the first word of its subcommands' names) a help line."""
    GROUPS[name] = help


def command(name: str, help: str, *options: Option) -> Callable[[Handler], Handler]:  # noqa: A002
    """Register the decorated function as the subcommand ``name``."""

    def register(handler: Handler) -> Handler:
        if name in COMMANDS:
            msg = f"subcommand {name!r} is registered twice"
            raise ValueError(msg)
        COMMANDS[name] = Command(name, help, handler, options)
        return handler

    return register


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="importstate",
        description="Run and inspect data-import operations (the Rocket.Chat import model).",
    )
    common = _common()
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, Any] = {}
    for cmd in COMMANDS.values():
        *group, leaf = cmd.name.split(" ")
        parent = top
        if group:
            parent = groups.get(group[0]) or _add_group(top, group[0], groups)
        sub = parent.add_parser(leaf, help=cmd.help, description=cmd.help, parents=[common])
        for opt in cmd.options:
            sub.add_argument(*opt.flags, **opt.settings)
        sub.set_defaults(handler=cmd.handler)
    return parser


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--db",
        default=None,
        help="SQLite database file (default: $IMPORTSTATE_DB or ./importstate.db)",
    )
    common.add_argument(
        "--dsn",
        default=None,
        help="keep operations in this PostgreSQL database instead (default: $IMPORTSTATE_DSN);"
        " imported users still go to --db",
    )
    common.add_argument("--json", action="store_true", help="print JSON for scripts")
    return common


def _add_group(top: Any, name: str, groups: dict[str, Any]) -> Any:  # noqa: ANN401 - argparse's private types
    help_line = GROUPS.get(name, f"{name} commands")
    parser = top.add_parser(name, help=help_line, description=help_line)
    groups[name] = parser.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")
    return groups[name]
