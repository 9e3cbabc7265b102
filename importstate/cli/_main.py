"""Dispatch: parse the arguments, run the subcommand, turn user errors into one line."""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Sequence

from rich.console import Console

# Importing the subcommand modules registers their subcommands.
from importstate.cli import _commands, _demo, _serve_commands  # noqa: F401
from importstate.cli._context import INTERRUPTED, CommandError, Context, build_parser
from importstate.cli._userfile import UserFileError
from importstate.errors import ImportStateError


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    ctx = Context(args, Console(highlight=False), Console(stderr=True, highlight=False))
    try:
        status: int = args.handler(ctx)
    except (ImportStateError, CommandError, UserFileError) as exc:
        _fail(str(exc))
        return 1
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as other Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:
        _fail(f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc))
        return 1
    except sqlite3.DatabaseError as exc:
        # A --db that is not an SQLite database, or one another program damaged.
        _fail(f"{ctx.db}: {exc}")
        return 1
    except KeyboardInterrupt:
        _fail("interrupted")
        return INTERRUPTED
    finally:
        ctx.close()
    return status


def _fail(message: str) -> None:
    sys.stderr.write(f"importstate: {message}\n")
