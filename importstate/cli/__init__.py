"""The ``importstate`` command line (also ``python -m importstate``).

Each subcommand is one function taking a :class:`Context` and returning the
exit status, registered with :func:`command`; arguments are declared with
:func:`option`. A name with a space (``"users add"``) registers a
subcommand of a group. Every subcommand gets ``--db``, ``--dsn`` and ``--json``.

User errors (an :class:`~importstate.errors.ImportStateError`, a
:class:`CommandError`, an unreadable file) end the command with one line on
stderr and exit status 1, never a traceback; Ctrl-C exits with 130.
"""

from importstate.cli._context import (
    COMMANDS,
    DEFAULT_DB,
    GROUPS,
    INTERRUPTED,
    Command,
    CommandError,
    Context,
    Handler,
    Option,
    build_parser,
    command,
    group,
    option,
)
from importstate.cli._main import main

__all__ = [
    "COMMANDS",
    "DEFAULT_DB",
    "GROUPS",
    "INTERRUPTED",
    "Command",
    "CommandError",
    "Context",
    "Handler",
    "Option",
    "build_parser",
    "command",
    "group",
    "main",
    "option",
]
