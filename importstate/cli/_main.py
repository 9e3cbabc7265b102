"""Dispatch: parse the arguments with Click, run the subcommand, turn every error into one line."""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import Final

import click

# Importing the subcommand modules registers their subcommands.
from importstate.cli import _commands, _serve_commands  # noqa: F401
from importstate.cli._advice import with_next_step
from importstate.cli._context import (
    INTERRUPTED,
    TERMINATED,
    CommandError,
    Context,
    Terminated,
)
from importstate.cli._group import cli
from importstate.cli._userfile import UserFileError
from importstate.errors import ImportStateError
from importstate.service import ImportService


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status.

    Shell completion (``_IMPORTSTATE_COMPLETE=bash_source importstate``)
    prints its script and exits the process, as Click does.
    """
    ctx = Context()
    try:
        with _sigterm_raises(), ImportService.acting(f"cli:{_login()}"):
            return _dispatch(ctx, argv)
    finally:
        ctx.close()


def _login() -> str:
    """The OS user running the command, as the history records it."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name, no passwd entry (a bare container)
        return str(os.getuid())


def _dispatch(ctx: Context, argv: Sequence[str] | None) -> int:
    try:
        status = cli.main(
            args=list(argv) if argv is not None else None, prog_name="importstate",
            standalone_mode=False, obj=ctx,
        )
    except click.UsageError as exc:
        exc.show()
        return exc.exit_code
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as other Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except _ENDED_BY as exc:
        message, code = _one_line(exc, ctx)
        _fail(message)
        return code
    return status if isinstance(status, int) else 0


def _interrupted(exc: BaseException, _: Context) -> tuple[str, int]:
    # Click turns Ctrl-C, and an end of input at a prompt, into Abort.
    if isinstance(exc.__cause__, EOFError):
        return "no input: standard input ended before an answer", 1
    return "interrupted", INTERRUPTED


def _os_error(exc: BaseException, _: Context) -> tuple[str, int]:
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror}", 1
    return str(exc), 1


def _click_error(exc: BaseException, _: Context) -> tuple[str, int]:
    if isinstance(exc, click.ClickException):
        return exc.format_message(), exc.exit_code
    return str(exc), 1


#: How a command that raised ends: each kind of error, and its one line and exit status.
_ENDINGS: Final[tuple[tuple[type[BaseException], Callable[[BaseException, Context],
                                                            tuple[str, int]]], ...]] = (
    (click.ClickException, _click_error),
    (click.Abort, _interrupted),
    (KeyboardInterrupt, _interrupted),
    (Terminated, lambda *_: ("terminated", TERMINATED)),
    (ImportStateError, lambda exc, ctx: (
        with_next_step(exc, ctx.opened_service()) if isinstance(exc, ImportStateError)
        else str(exc), 1)),
    (CommandError, lambda exc, _: (str(exc), 1)),
    (UserFileError, lambda exc, _: (str(exc), 1)),
    (OSError, _os_error),
    # A --db that is not an SQLite database, or one another program damaged.
    (sqlite3.DatabaseError, lambda exc, ctx: (f"{ctx.db}: {exc}", 1)),
)
_ENDED_BY: Final = tuple(kind for kind, _ in _ENDINGS)


def _one_line(exc: BaseException, ctx: Context) -> tuple[str, int]:
    for kind, ending in _ENDINGS:
        if isinstance(exc, kind):
            return ending(exc, ctx)
    return str(exc), 1


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` in the main thread while the command runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminated(_signal: int, _frame: FrameType | None) -> None:
    raise Terminated


def _fail(message: str) -> None:
    sys.stderr.write(f"importstate: {message}\n")
    sys.stderr.flush()
