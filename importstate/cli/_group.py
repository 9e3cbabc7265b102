"""The ``importstate`` command group, and the options every subcommand takes.

``--db``, ``--dsn`` and ``--json`` are the group's options and every
subcommand's: ``importstate --db x.db status`` and ``importstate status --db
x.db`` mean the same. Each is stored on the :class:`Context` as it is
parsed, so a subcommand reads them there, whichever place they came from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import click

from importstate import __version__
from importstate.cli._context import Context

#: The global options: flags, what :class:`Context` attribute they set, and their settings.
GLOBAL_OPTIONS: Final[tuple[tuple[str, str, dict[str, Any]], ...]] = (
    ("--db", "db_option", {
        "metavar": "PATH",
        "help": "SQLite database file (default: $IMPORTSTATE_DB, else ./importstate.db)",
    }),
    ("--dsn", "dsn_option", {
        "metavar": "DSN",
        "help": "keep the operations in this PostgreSQL database instead (default:"
                " $IMPORTSTATE_DSN); imported users still go to --db",
    }),
    ("--json", "json", {"is_flag": True, "help": "print JSON for scripts, and nothing else"}),
)


def _store(attribute: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def store(ctx: click.Context, _: click.Parameter, value: Any) -> None:  # noqa: ANN401
        # An option left out must not undo the same option given at the other place.
        if value is not None and value is not False:
            setattr(ctx.ensure_object(Context), attribute, value)

    return store


def global_options() -> list[click.Option]:
    """Fresh ``--db``, ``--dsn`` and ``--json`` options, for one command."""
    return [
        click.Option([flag], expose_value=False, callback=_store(attribute), **settings)
        for flag, attribute, settings in GLOBAL_OPTIONS
    ]


class Command(click.Command):
    """A subcommand: it takes the global options after its own."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401 - click.Command's
        super().__init__(*args, **kwargs)
        self.params.extend(global_options())


class Group(click.Group):
    """A group of subcommands (``importstate``, ``importstate users``), taking the global options.

    Subcommands list in the order they were defined, as the lifecycle goes.
    """

    command_class = Command
    group_class = type  # subgroups are Groups too

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401 - click.Group's
        super().__init__(*args, **kwargs)
        self.params.extend(global_options())

    def list_commands(self, ctx: click.Context) -> list[str]:  # noqa: ARG002 - click's signature
        """The subcommands in the order they were defined."""
        return list(self.commands)


@click.group(
    cls=Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(version=__version__, prog_name="importstate")
def cli() -> None:
    """Run and inspect data-import operations (the Rocket.Chat import model).

    A failure prints one line on stderr, `importstate: <reason>`, and exits 1;
    a usage error exits 2; Ctrl-C exits 130 and SIGTERM 143.
    """
