"""The subcommands of an import's lifecycle, from ``status`` to ``clear``, the demo and diagrams."""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

import click
from rich.console import Console
from rich.json import JSON
from rich.text import Text

from importstate import diagrams
from importstate._files import PENDING_FOLDER, default_files_dir, open_private
from importstate.cli import _demo, _load, _userfile
from importstate.cli._context import CommandError, Context, pass_context
from importstate.cli._group import cli
from importstate.cli._render import (
    failures_table,
    history_table,
    operations_table,
    plural,
    report,
    selection_summary,
    status_table,
)
from importstate.cli._values import DURATION, NOT_NEGATIVE, POSITIVE, at_least
from importstate.cli._watch import EXIT_STATUS, Outcome, Stop, run_with_progress
from importstate.documents import StatusDocument
from importstate.errors import InvalidRoles, MissingUserData, OperationNotFound
from importstate.fetch import Fetcher, UrlRules
from importstate.importers import Importer
from importstate.model import Operation
from importstate.pending import PendingKind
from importstate.records import RECORD_KINDS, DataType
from importstate.service import LATEST_LIMIT, ImportService
from importstate.steps import FINISHED_STATES, ProgressStep, State

_F = TypeVar("_F", bound=Callable[..., Any])


def _workers_option(function: _F) -> _F:
    return click.option(
        "--workers", type=int, default=1, metavar="N", callback=at_least(1), show_default=True,
        help="import threads; more than 1 needs --dsn",
    )(function)


# -- reading ------------------------------------------------------------------------------


@cli.command()
@pass_context
def status(ctx: Context) -> int:
    """Show the current operation's state (import.status)."""
    current = ctx.service(existing=True).status()
    if ctx.json:
        ctx.print_json(current)
    else:
        ctx.show(status_table(current))
    return 0


@cli.command()
@click.option("--limit", type=int, default=LATEST_LIMIT, metavar="N", callback=at_least(1),
              show_default=True, help="how many")
@pass_context
def operations(ctx: Context, limit: int) -> int:
    """List the latest operations, newest first.

    The getLatestImportOperations call: 20 unless --limit says otherwise.
    """
    latest = ctx.service(existing=True).latest_operations(limit)
    if ctx.json:
        ctx.print_json([op.to_wire() for op in latest])
    elif latest:
        ctx.show(operations_table(latest))
    else:
        ctx.say("no import operations yet")
    return 0


@cli.command()
@click.argument("operation_id", metavar="[ID]", required=False)
@pass_context
def history(ctx: Context, operation_id: str | None) -> int:
    """Show what happened to an operation (the current one): each change, when, and by whom.

    One row per stored change of its status, oldest first, with the time
    it spent in the step before; --json prints the entries as the REST API
    gives them.
    """
    service = ctx.service(existing=True)
    try:
        entries = service.history(operation_id)
    except OperationNotFound:
        if operation_id is None:
            raise
        msg = f"no operation {operation_id!r} (`importstate operations` lists the latest)"
        raise CommandError(msg) from None
    if ctx.json:
        ctx.print_json([entry.to_wire() for entry in entries])
    else:
        ctx.show(history_table(entries))
    return 0


@cli.command()
@click.option("--limit", type=int, default=None, metavar="N", callback=at_least(0),
              show_default="all", help="show (or export) at most N")
@click.option("--export", metavar="FILE",
              help="write the failed records to FILE as JSON Lines instead (- for stdout)")
@pass_context
def failures(ctx: Context, limit: int | None, export: str | None) -> int:
    """List the users that failed, with their errors.

    The current operation's staged users that failed, as the run left them.

    Passwords are masked as [password], in the listing and in the export;
    `importstate retry` imports the failed users again with theirs.
    """
    records = ctx.service(existing=True).failed_records(DataType.USER)
    shown = itertools.islice(records, limit)
    if export is not None:
        with _opened_for_writing(export) as out:
            written = _write_lines(out, shown)
        if export != "-":
            ctx.err.print(Text(f"wrote {plural(written, 'failed user')} to {export}"
                               " (passwords masked)"))
        return 0
    if ctx.json:
        _print_json_array(shown)
        return 0
    rows = list(shown)
    more = sum(1 for _ in records)
    if not rows and not more:
        ctx.say("no failed users in staging")
        return 0
    ctx.show(failures_table(rows))
    if more:
        ctx.say(f"... and {plural(more, 'more failed user')} (--limit N shows more,"
                " --export FILE writes them all)")
    return 0


@contextlib.contextmanager
def _opened_for_writing(path: str) -> Iterator[IO[str]]:
    if path == "-":
        yield sys.stdout
        return
    # Failed users' data: readable by their owner only, as the database is.
    with os.fdopen(open_private(path), "w", encoding="utf-8", newline="\n") as out:
        yield out


def _write_lines(out: IO[str], records: Iterable[dict[str, Any]]) -> int:
    written = 0
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        written += 1
    return written


def _print_json_array(values: Iterable[object]) -> None:
    """Print a JSON array one element at a time, so that a long listing is never held whole."""
    out = sys.stdout
    out.write("[")
    written = 0
    for written, value in enumerate(values, start=1):
        out.write(",\n  " if written > 1 else "\n  ")
        out.write(json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n  "))
    out.write("\n]\n" if written else "]\n")
    out.flush()


# -- creating and filling -----------------------------------------------------------------


@cli.command()
@click.option("--user", metavar="ID", show_default="your login name",
              help="user id recorded on the operation")
@pass_context
def new(ctx: Context, user: str | None) -> int:
    """Clear every operation and start a new one (import.new).

    Every operation becomes invalid and staging is emptied first; a run of an
    older operation stops at its next batch.
    """
    user = user if user is not None else getpass.getuser()
    operation = ctx.service().new_operation(user)
    if ctx.json:
        ctx.print_json(operation.to_wire())
    ctx.say("created operation ", Text(operation.id, style="bold"), f" for user {user} (state new)")
    return 0


@cli.command("add-users")
@click.argument("file", metavar="FILE")
@pass_context
def add_users(ctx: Context, file: str) -> int:
    """Stage users from a JSON array or JSON Lines file.

    The import.addUsers call, all or none; FILE - reads standard input. The
    file is staged as it is read, in one transaction: memory stays flat
    however large it is, and a bad line anywhere stages nothing.
    """
    service = ctx.service()
    with _userfile.open_users(file) as reader:
        operation = _stage(service, reader)
    if ctx.json:
        ctx.print_json(service.status())
    elif operation is None:
        ctx.say(f"no users in {file}; nothing staged")
    else:
        ctx.say(f"staged {plural(reader.count, 'user')}; operation {operation.id} is"
                f" {operation.state} with {plural(operation.count.get('total'), 'user')} in total")
    return 0


def _stage(service: ImportService, reader: _userfile.UserReader) -> Operation | None:
    try:
        return service.add_users_from(reader.chunks())
    except (MissingUserData, InvalidRoles) as exc:
        refusal = reader.refusal(exc, service.known_roles)
        if refusal is None:
            raise
        raise refusal from None


@cli.command()
@click.option("--user", metavar="ID", show_default="your login name",
              help="user id recorded on the new operation")
@pass_context
def retry(ctx: Context, user: str | None) -> int:
    """Start a new operation with the failed users.

    The current operation must have ended (done, failed or cancelled). Its
    failed users (with their real passwords, unlike `failures`) are staged
    in a new operation, which `importstate run` then imports; the users a
    cancelled run never reached are not taken. Fix what made them fail
    first (the duplicate in the target, say).
    """
    service = ctx.service(existing=True)
    old = _ended_operation(service)
    user = user if user is not None else getpass.getuser()
    # new_operation clears the staging: the failed users are kept aside first.
    with tempfile.TemporaryFile() as spool:
        failed = service.failed_records(DataType.USER, masked=False)
        kept = _spool(spool, (r["data"] for r in failed))
        if not kept:
            msg = f"operation {old.id} has no failed users to retry"
            raise CommandError(msg)
        spool.seek(0)
        service.new_operation(user)
        operation = _stage(service, _userfile.UserReader(spool, "the failed users"))
    if ctx.json:
        ctx.print_json(service.status())
    elif operation is not None:
        ctx.say(f"operation {operation.id} is {operation.state} with the"
                f" {plural(kept, 'failed user')} of operation {old.id}:"
                " `importstate run` imports them")
    return 0


def _ended_operation(service: ImportService) -> Operation:
    old = service.current_operation()
    if old is None or not old.valid:
        msg = "there is no import operation to retry: run `importstate new` first"
        raise CommandError(msg)
    if old.state is State.IMPORTING:
        msg = (f"operation {old.id} is still importing; if its run stopped (a crash, SIGTERM),"
               " `importstate resume` continues it")
        raise CommandError(msg)
    if old.state not in FINISHED_STATES:
        msg = f"operation {old.id} has not run yet (state {old.state}): `importstate run` runs it"
        raise CommandError(msg)
    return old


def _spool(out: IO[bytes], users: Iterable[dict[str, Any]]) -> int:
    kept = 0
    for data in users:
        out.write(json.dumps(data, ensure_ascii=False).encode() + b"\n")
        kept += 1
    return kept


# -- running ------------------------------------------------------------------------------


def _id_list(_ctx: click.Context, _param: click.Parameter, value: str | None) -> list[str] | None:
    return None if value is None else [part.strip() for part in value.split(",") if part.strip()]


@cli.command()
@_workers_option
@click.option("--users", metavar="ID,...", callback=_id_list,
              help="import only these users (first import ids, as `importstate load` lists them)")
@click.option("--channels", metavar="ID,...", callback=_id_list,
              help="import only these channels and their messages (__directMessages__: every"
                   " direct channel)")
@pass_context
def run(ctx: Context, workers: int, users: list[str] | None, channels: list[str] | None) -> int:
    """Import the staged records, with a progress display.

    Users, then channels, then messages; --users and --channels narrow the
    selection (a type not given is imported whole). Exits 0 when the import
    is done and 1 when it failed or was cancelled elsewhere. Ctrl-C cancels
    it at its next batch (exit 130); SIGTERM holds it at its next batch,
    still importing, for `importstate resume` (exit 143).
    """
    service = ctx.service()
    chosen = {name: {"list": ids} for name, ids in (("users", users), ("channels", channels))
              if ids is not None}
    selection = chosen or None
    return _watched(
        ctx, lambda importer: service.run(importer, workers=workers, selection=selection),
    )


@cli.command()
@_workers_option
@pass_context
def resume(ctx: Context, workers: int) -> int:
    """Continue an import from its checkpoint.

    For an import whose worker died or was stopped by SIGTERM; the same
    progress display, Ctrl-C, SIGTERM and exit statuses as `run`.
    """
    service = ctx.service()
    return _watched(ctx, lambda importer: service.resume(importer, workers=workers))


@cli.command()
@_workers_option
@click.option("--lease-seconds", type=float, default=30.0, metavar="SECONDS", callback=POSITIVE,
              show_default=True,
              help="how long a batch stays with a worker that stopped renewing it")
@pass_context
def worker(ctx: Context, workers: int, lease_seconds: float) -> int:
    """Join the current import in batches (or start it).

    Works until the import has ended (needs --dsn); Ctrl-C and SIGTERM stop
    this worker at a batch boundary, and the others go on.
    """
    service = ctx.service()
    service.lease_seconds = lease_seconds
    outcome = run_with_progress(
        service, Console(quiet=True),
        start=lambda importer: service.work(importer, workers=workers), on_ctrl_c=Stop.LEFT,
    )
    if ctx.json:
        ctx.print_json(outcome.operation.to_wire())
    report(ctx, outcome)
    return _exit_status(outcome)


def _watched(ctx: Context, start: Callable[[Importer | None], Operation]) -> int:
    service = ctx.service()
    console = Console(quiet=True) if ctx.json else ctx.err
    outcome = run_with_progress(service, console, start=start)
    if ctx.json:
        ctx.print_json(service.status())
    report(ctx, outcome)
    return _exit_status(outcome)


def _exit_status(outcome: Outcome) -> int:
    if outcome.stop is not None:
        return EXIT_STATUS[outcome.stop]
    return 0 if outcome.operation.status is ProgressStep.DONE else 1


@cli.command("download-pending")
@click.argument("kind", type=click.Choice([kind.value for kind in PendingKind]))
@click.option("--files", "files_dir", type=click.Path(file_okay=False, path_type=Path),
              metavar="DIR", show_default="<db>-files/pending, as importstate serve",
              help="where fetched files go")
@click.option("--import-dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="the directory local paths may be read from (none: refused)")
@click.option("--allow-private-urls", is_flag=True,
              help="fetch from loopback, private and link-local addresses too")
@click.option("--user", metavar="ID", show_default="your login name",
              help="user id recorded on the operation")
@pass_context
def download_pending(  # noqa: PLR0913, PLR0917 - click passes one argument per option
    ctx: Context, kind: str, files_dir: Path | None, import_dir: Path | None,
    allow_private_urls: bool, user: str | None,
) -> int:
    """Fetch the avatars or message files the built-in target still has to fetch.

    A new operation (Pending Avatars or Pending Files) counts them and
    fetches each from its URL by the server's address rules; Ctrl-C cancels
    it. Those that fail stay pending for the next time.
    """
    service = ctx.service()
    fetcher = Fetcher(UrlRules(allow_private=allow_private_urls, import_dir=import_dir))
    if files_dir is None:
        files_dir = default_files_dir(ctx.db) / PENDING_FOLDER
    operation = service.download_pending(
        kind, source=ctx.importer, fetch=fetcher, files_dir=files_dir,
        user_id=user if user is not None else getpass.getuser(),
    )
    if ctx.json:
        ctx.print_json(operation.to_wire())
    report(ctx, Outcome(operation))
    return 0 if operation.status is ProgressStep.DONE and not operation.count.get("error") else 1


@cli.command()
@pass_context
def cancel(ctx: Context) -> int:
    """Cancel the current operation.

    A running import stops at its next batch; staged users stay.
    """
    operation = ctx.service().cancel()
    if ctx.json:
        ctx.print_json(operation.to_wire())
    ctx.say(f"cancelled operation {operation.id}")
    return 0


@cli.command()
@click.option("--older-than", type=float, default=300.0, metavar="SECONDS", callback=NOT_NEGATIVE,
              show_default=True,
              help="heartbeat age that makes an import stale; longer than a batch takes")
@click.option("--action", type=click.Choice(["resume", "fail"]), default="resume",
              show_default=True, help="what to do with a stale import")
@pass_context
def sweep(ctx: Context, older_than: float, action: str) -> int:
    """Resume or fail imports whose heartbeat stopped.

    An import is stale when its worker has sent no heartbeat for --older-than.
    """
    age = dt.timedelta(seconds=older_than)
    swept = ctx.service().sweep_stale(age, action="fail" if action == "fail" else "resume")
    if ctx.json:
        ctx.print_json([op.to_wire() for op in swept])
    elif not swept:
        ctx.say(f"no stale import: every running import sent a heartbeat within {age}")
    for op in swept:
        report(ctx, Outcome(op))
    resumed_badly = action == "resume" and any(op.status is not ProgressStep.DONE for op in swept)
    return 1 if resumed_badly else 0


@cli.command()
@pass_context
def clear(ctx: Context) -> int:
    """Invalidate every operation and empty staging (import.clear)."""
    service = ctx.service()
    service.clear()
    if ctx.json:
        ctx.print_json(service.status())
    ctx.say(f"cleared: every operation is now invalid and staging is empty ({ctx.db})")
    return 0


@cli.command()
@click.option("--keep", type=int, default=LATEST_LIMIT, metavar="N", callback=at_least(0),
              show_default=True, help="how many of the latest operations to keep")
@click.option("--older-than", type=DURATION, default=None, metavar="DURATION",
              help="only those last updated longer ago (90d, 12h, 30m or seconds)")
@pass_context
def prune(ctx: Context, keep: int, older_than: float | None) -> int:
    """Delete finished operations, and their staging, beyond the latest N.

    The current operation is always kept, and so is any that is still
    loading or importing.
    """
    age = dt.timedelta(seconds=older_than) if older_than is not None else None
    pruned = ctx.service(existing=True).prune(keep=keep, older_than=age)
    if ctx.json:
        ctx.print_json({"pruned": pruned})
    ctx.say(f"pruned {plural(pruned, 'finished operation')}; kept the {keep:,} latest and the"
            " current one")
    return 0


# -- the demo and the diagrams ------------------------------------------------------------


@cli.command()
@click.option("--users", "count", type=int, default=10_000, metavar="N", callback=at_least(0),
              show_default="10,000", help="how many users to stage")
@click.option("--fail-rate", type=float, default=0.05, metavar="R", show_default=True,
              help="share of users the importer rejects as duplicates")
@click.option("--channels", type=int, default=50, metavar="N", callback=at_least(0),
              show_default=True, help="how many channels to stage")
@click.option("--messages", type=int, default=20_000, metavar="N", callback=at_least(0),
              show_default="20,000", help="how many messages to stage, by random users")
@click.option("--export", type=click.Choice(["csv", "slack"]), default=None,
              help="write a CSV import zip and a Slack export of that size instead, and"
                   " load this one")
@pass_context
def demo(  # noqa: PLR0913, PLR0917 - one argument per option
    ctx: Context, count: int, fail_rate: float, channels: int, messages: int, export: str | None,
) -> int:
    """Show a whole import on synthetic users, channels and messages.

    The lifecycle from status to failures, with a live progress display; a
    share of the users (--fail-rate) collide with earlier ones and fail, and
    so do the messages they wrote. With --export, a CSV import zip and a
    Slack export are written to a temporary folder and one is loaded with
    its file importer (no user fails there). It uses a fresh temporary
    database unless --db is given.
    """
    if export is not None:
        size = {"users": count, "channels": channels, "messages": messages}
        with tempfile.TemporaryDirectory(prefix="importstate-demo-") as scratch:
            db = ctx.db if ctx.db_option is not None else Path(scratch) / "demo.db"
            return _load.file_demo(ctx, export, db, Path(scratch), size,
                                   kept=ctx.db_option is not None)
    try:
        records = _demo.synthetic(count, fail_rate, channels=channels, messages=messages)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    # Without --db the demo must not touch (and so abort) the import in the usual database.
    if ctx.db_option is not None:
        return _run_demo(ctx, records, fail_rate, ctx.db, kept=True)
    with tempfile.TemporaryDirectory(prefix="importstate-demo-") as scratch:
        return _run_demo(ctx, records, fail_rate, Path(scratch) / "demo.db", kept=False)


def _run_demo(
    ctx: Context, records: _demo.DemoRecords, fail_rate: float, db: Path, *, kept: bool,
) -> int:
    service = ctx.open(db)
    if ctx.json:
        # Scripts get the final status document only.
        ctx.out = Console(quiet=True)
    users = records.users
    rooms = (f"{plural(len(records.channels), 'channel')} and"
             f" {plural(len(records.messages), 'message')}")
    ctx.rule(f"importstate demo: {plural(len(users), 'user')}, {fail_rate:.0%} rejected, {rooms}")
    ctx.say(f"database {db}" + ("" if kept else " (temporary; --db PATH keeps it)"))
    _step(ctx, "1. no operation yet (import.status)", service.status())
    service.new_operation(getpass.getuser())
    _step(ctx, "2. a new operation (import.new)", service.status())
    started = time.perf_counter()
    service.add_users(users)
    _step(ctx, f"3. {plural(len(users), 'user')} staged (import.addUsers) "
          f"in {time.perf_counter() - started:.2f}s", service.status())
    started = time.perf_counter()
    service.add_channels(records.channels)
    service.add_messages(records.messages)
    _step(ctx, f"4. {rooms} staged (add_channels, add_messages) "
          f"in {time.perf_counter() - started:.2f}s", service.status())
    ctx.say(f"the selection (getImportFileData) offers {selection_summary(service.selection())}")
    ctx.rule("5. import.run: users, channels, then messages; the bar follows the committed counts")
    started = time.perf_counter()
    outcome = run_with_progress(service, ctx.out)
    elapsed = time.perf_counter() - started
    _step(ctx, "6. the final status document", service.status())
    _demo_failures(ctx, service, kept=kept)
    ctx.rule()
    report(ctx, outcome)
    imported = ", ".join(
        plural(ctx.importer.count(kind.data_type), kind.data_type) for kind in RECORD_KINDS
    )
    ctx.say(f"{imported} in the tables; the run took"
            f" {elapsed:.2f}s ({len(records) / max(elapsed, 1e-9):,.0f} records/s)")
    if ctx.json:
        ctx.print_json(service.status())
    return _exit_status(outcome)


def _step(ctx: Context, title: str, status: StatusDocument) -> None:
    ctx.rule(title)
    ctx.out.print(JSON.from_data(status))


def _demo_failures(ctx: Context, service: ImportService, *, kept: bool, shown: int = 10) -> None:
    records = service.failed_records(DataType.USER)
    first = list(itertools.islice(records, shown))
    if not first:
        return
    more = sum(1 for _ in records)
    ctx.rule(f"7. {plural(len(first) + more, 'failed user')} stay in staging with their errors")
    ctx.show(failures_table(first))
    if more:
        where = f"`importstate failures --db {ctx.db}`" if kept else "`--db PATH` keeps them"
        ctx.say(f"... and {more:,} more ({where})")
    messages = sum(1 for record in service.staged_records(DataType.MESSAGE) if record.get("errors"))
    if messages:
        ctx.say(f"and {plural(messages, 'failed message')}, by users who failed, stay staged too")


@cli.command()
@click.option("--format", "form", type=click.Choice([str(f) for f in diagrams.Format]),
              default="mermaid", show_default=True,
              help="mermaid, dot (Graphviz source) or svg (needs Graphviz's dot)")
@click.option("--steps", is_flag=True, help="draw the progress steps inside their states")
@click.option("--events", is_flag=True,
              help="name the events listeners get on each edge (StateChanged, BatchCommitted)")
@click.option("--current", is_flag=True,
              help="highlight the state of the current operation in --db")
@click.option("--operation", "operation_id", metavar="ID",
              help="draw the path operation ID in --db took: each state (with --steps, each"
                   " step) it visited, each transition numbered, with its time and the time"
                   " spent before it")
@click.option("--output", metavar="PATH", help="write to PATH instead of standard output")
@pass_context
def diagram(  # noqa: PLR0913, PLR0917 - one argument per option, as Click passes them
    ctx: Context, form: str, steps: bool, events: bool, current: bool,
    operation_id: str | None, output: str | None,
) -> int:
    """Draw the state machine as Mermaid, DOT or SVG.

    With --steps, the progress steps inside each state; with --events, where
    subscribe() listeners are told of a change; with --operation, the path
    an operation took, from the history `importstate history` lists.
    """
    if current and operation_id is not None:
        msg = "give --current or --operation, not both: the path ends at the operation's state"
        raise CommandError(msg)
    highlight: diagrams.Highlight = None
    history = None
    if current:
        highlight = ctx.service(existing=True).current_operation() or State.NONE
    if operation_id is not None:
        try:
            history = ctx.service(existing=True).history(operation_id)
        except OperationNotFound:
            msg = f"there is no operation {operation_id}: `importstate operations` lists them"
            raise CommandError(msg) from None
    draw = diagrams.steps_diagram if steps else diagrams.state_diagram
    text = draw(format=form, highlight=highlight, events=events, history=history)
    if ctx.json:
        ctx.print_json({"format": form, "steps": steps, "events": events,
                        "operation": operation_id, "diagram": text})
    elif output is None:
        sys.stdout.write(text)
    else:
        Path(output).write_text(text, encoding="utf-8", newline="\n")
        ctx.err.print(Text(f"wrote {output}"))
    return 0
