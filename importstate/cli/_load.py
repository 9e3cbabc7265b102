"""``importstate load``: a file importer's export staged in a new operation, with its progress."""

from __future__ import annotations

import contextlib
import getpass
import sys
from collections.abc import Callable, Iterator
from typing import Any, Final

import click
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from importstate.cli._context import CommandError, Context, pass_context
from importstate.cli._group import cli
from importstate.cli._render import plural, selection_summary
from importstate.loaders import available
from importstate.model import Operation
from importstate.records import RECORD_KINDS
from importstate.steps import State

#: Entries of the selection named after it, per type.
_SHOWN: Final = 5


@cli.command()
@click.argument("file", metavar="FILE")
@click.option("--importer", "key", type=click.Choice(sorted(available())), default="csv",
              show_default=True, help="the file's format")
@click.option("--user", metavar="ID", show_default="your login name",
              help="user id recorded on the operation")
@pass_context
def load(ctx: Context, file: str, key: str, user: str | None) -> int:
    """Stage an export file in a new operation (a file importer).

    A CSV import zip (csv), a Slack export zip (slack) or a Slack member
    list (slack-users); FILE - reads standard input. Every operation becomes
    invalid first, as with `importstate new`. The file is staged as it is
    read, in one transaction: a bad line anywhere stages nothing and fails
    the operation, naming the member and line.
    """
    service = ctx.service()
    source = sys.stdin.buffer if file == "-" else file
    with _preparing(Console(quiet=True) if ctx.json else ctx.err) as show:
        operation = service.load_file(
            source, key, user_id=user if user is not None else getpass.getuser(),
            file_name="stdin" if file == "-" else None, progress=show,
        )
    if operation.state is not State.READY:
        reason = operation.failure.message if operation.failure is not None else operation.state
        msg = (f"{reason} (operation {operation.id} failed and nothing was staged: fix the file"
               " and load it again)")
        raise CommandError(msg)
    selection = service.selection()
    if ctx.json:
        ctx.print_json(service.status())
        return 0
    staged = ", ".join(
        plural(operation.count.get(kind.count), kind.data_type) for kind in RECORD_KINDS
    )
    ctx.say(f"operation {operation.id} is ready: {staged} staged from {operation.file}"
            f" ({operation.type})")
    if selection is not None:
        ctx.say(f"the selection offers {selection_summary(selection)}")
        ctx.say(f"  users: {_named(selection['users'], 'user_id')}")
        ctx.say(f"  channels: {_named(selection['channels'], 'channel_id')}")
    ctx.say("next: `importstate run` imports all of it; `importstate run --users ID,..."
            " --channels ID,...` imports only those")
    return 0


def _named(entries: list[dict[str, Any]], key: str) -> str:
    names = ", ".join(str(entry[key]) for entry in entries[:_SHOWN]) or "none"
    more = len(entries) - _SHOWN
    return f"{names} and {more:,} more" if more > 0 else names


@contextlib.contextmanager
def _preparing(console: Console) -> Iterator[Callable[[Operation], None]]:
    """A progress display of the loading step and the records staged so far."""
    columns = (SpinnerColumn(), TextColumn("[bold]{task.description}"),
               TextColumn("{task.fields[staged]}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("uploading", staged="")

        def show(operation: Operation) -> None:
            step = operation.status.value.removeprefix("importer_").replace("_", " ")
            staged = ", ".join(
                plural(operation.count.get(kind.count), kind.data_type) for kind in RECORD_KINDS
            )
            progress.update(task, description=step, staged=staged)

        yield show
