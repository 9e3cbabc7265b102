"""The ``importstate`` command line (also ``python -m importstate``), built on Click.

:data:`cli` is the Click group; every subcommand is a Click command
registered on it (or on one of its groups), receiving the :class:`Context`
through :func:`pass_context` and returning its exit status. ``--db``,
``--dsn`` and ``--json`` come with every subcommand, before or after its
name.

User errors (an :class:`~importstate.errors.ImportStateError`, a
:class:`CommandError`, an unreadable file) end the command with one line on
stderr and exit status 1, never a traceback; usage errors exit 2; Ctrl-C
exits 130 and SIGTERM 143.

Needs the ``cli`` extra (Click and rich: ``pip install 'importstate[cli]'``);
without it, importing this module raises :class:`~importstate.MissingExtra`,
and the ``importstate`` command prints that one line and exits 1.
"""

from importstate._extras import needs

with needs("cli", "importstate's command line"):
    import click  # noqa: F401 - every module below is built on Click and rich
    import rich  # noqa: F401 - same

from importstate.cli._context import (
    DEFAULT_DB,
    INTERRUPTED,
    TERMINATED,
    CommandError,
    Context,
    Terminated,
    pass_context,
)
from importstate.cli._group import cli
from importstate.cli._main import main

__all__ = [
    "DEFAULT_DB",
    "INTERRUPTED",
    "TERMINATED",
    "CommandError",
    "Context",
    "Terminated",
    "cli",
    "main",
    "pass_context",
]
