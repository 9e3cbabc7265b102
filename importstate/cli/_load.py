"""``importstate load``: a file importer's export staged in a new operation, with its progress."""

from __future__ import annotations

import contextlib
import getpass
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Final

import click
from rich.console import Console
from rich.json import JSON
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from importstate.cli._context import CommandError, Context, pass_context
from importstate.cli._group import cli
from importstate.cli._render import plural, report, selection_summary
from importstate.cli._watch import run_with_progress
from importstate.loaders import available, samples
from importstate.model import Operation
from importstate.records import RECORD_KINDS
from importstate.selection import Offer
from importstate.steps import ProgressStep, State

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
    if ctx.json:
        ctx.print_json(service.status())
        return 0
    _say_ready(ctx, operation, service.selection())
    ctx.say("next: `importstate run` imports all of it; `importstate run --users ID,..."
            " --channels ID,...` imports only those")
    return 0


def _say_ready(ctx: Context, operation: Operation, offer: Offer) -> None:
    ctx.say(f"operation {operation.id} is ready: {_staged(operation)} staged from"
            f" {operation.file} ({operation.type})")
    ctx.say(f"the selection offers {selection_summary(offer)}")
    ctx.say(f"  users: {_named([user.user_id for user in offer.users])}")
    ctx.say(f"  channels: {_named([channel.channel_id for channel in offer.channels])}")


def _staged(operation: Operation) -> str:
    return ", ".join(
        plural(operation.count.get(kind.count), kind.data_type) for kind in RECORD_KINDS
    )


def _named(ids: Sequence[object]) -> str:
    names = ", ".join(str(entry) for entry in ids[:_SHOWN]) or "none"
    more = len(ids) - _SHOWN
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
            progress.update(task, description=step, staged=_staged(operation))

        yield show


#: The sample exports the demo writes, by the importer key that loads each.
_SAMPLES: Final = {"csv": samples.write_csv_export, "slack": samples.write_slack_export}


def file_demo(  # noqa: PLR0913 - the demo's options
    ctx: Context, key: str, db: Path, scratch: Path, size: dict[str, int], *, kept: bool,
) -> int:
    """Write a CSV import zip and a Slack export of ``size`` to ``scratch``; load and run ``key``'s.

    Raises:
        CommandError: ``size`` cannot make an export (fewer than two users).
    """
    service = ctx.open(db)
    if ctx.json:
        ctx.out = Console(quiet=True)
    ctx.rule(f"importstate demo: file importers, the {key} export loaded and run")
    try:
        written = {name: write(scratch / f"{name}-export.zip", **size)
                   for name, write in _SAMPLES.items()}
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    for name, export in written.items():
        kib = Path(export.path).stat().st_size / 1024
        ctx.say(f"wrote {export.path}: a {name} export of {plural(export.records, 'record')}"
                f" ({kib:,.0f} KiB)")
    export = written[key]
    ctx.rule(f"1. importstate load {Path(export.path).name} --importer {key}")
    started = time.perf_counter()
    with _preparing(ctx.err) as show:
        operation = service.load_file(export.path, key, user_id=getpass.getuser(), progress=show)
    ctx.say(f"loaded in {time.perf_counter() - started:.2f}s")
    ctx.out.print(JSON.from_data(service.status()))
    _say_ready(ctx, operation, service.selection())
    ctx.rule("2. import.run: users, channels, then messages")
    outcome = run_with_progress(service, ctx.out)
    report(ctx, outcome)
    imported = ", ".join(
        plural(ctx.importer.count(kind.data_type), kind.data_type) for kind in RECORD_KINDS
    )
    where = f"{db}" if kept else f"{db} (temporary; --db PATH keeps it)"
    ctx.say(f"{imported} in the tables of {where}")
    if ctx.json:
        ctx.print_json(service.status())
    return 0 if outcome.operation.status is ProgressStep.DONE else 1
