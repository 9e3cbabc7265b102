"""The subcommands of an import's lifecycle, from ``status`` to ``clear``, the demo and diagrams."""

from __future__ import annotations

import datetime as dt
import getpass
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.json import JSON
from rich.rule import Rule
from rich.text import Text

from importstate import diagrams
from importstate.cli import _demo, _userfile, _watch
from importstate.cli._context import INTERRUPTED, CommandError, Context, Option, command, option
from importstate.cli._render import (
    failed_records,
    failures_table,
    operations_table,
    report,
    status_table,
)
from importstate.model import Operation
from importstate.service import LATEST_LIMIT, ImportService
from importstate.steps import ProgressStep, State


@command("status", "show the state of the current operation (import.status)")
def _status(ctx: Context) -> int:
    status = ctx.service().status()
    if ctx.json:
        ctx.print_json(status)
    else:
        ctx.out.print(status_table(status))
    return 0


@command(
    "operations",
    "list the latest operations, newest first (getLatestImportOperations)",
    option("--limit", type=int, default=LATEST_LIMIT, help="how many (default: 20)"),
)
def _operations(ctx: Context) -> int:
    operations = ctx.service().latest_operations(ctx.args.limit)
    if ctx.json:
        ctx.print_json([op.to_wire() for op in operations])
    elif operations:
        ctx.out.print(operations_table(operations))
    else:
        ctx.say("no import operations yet")
    return 0


@command("failures", "list the current operation's staged users that failed, with their errors")
def _failures(ctx: Context) -> int:
    records = failed_records(ctx.service())
    if ctx.json:
        ctx.print_json(records)
    elif records:
        ctx.out.print(failures_table(records))
    else:
        ctx.say("no failed users in staging")
    return 0


@command(
    "new",
    "clear every operation and start a new one (import.new)",
    option("--user", default=None, help="user id recorded on the operation (default: login name)"),
)
def _new(ctx: Context) -> int:
    user = ctx.args.user if ctx.args.user is not None else getpass.getuser()
    operation = ctx.service().new_operation(user)
    if ctx.json:
        ctx.print_json(operation.to_wire())
    ctx.say("created operation ", Text(operation.id, style="bold"), f" for user {user} (state new)")
    return 0


@command(
    "add-users",
    "stage users from a JSON array or JSON Lines file (import.addUsers); all or none",
    option("file", metavar="FILE", help="the users file; - reads standard input"),
)
def _add_users(ctx: Context) -> int:
    stdin = sys.stdin.read() if ctx.args.file == "-" else None
    users = _userfile.read_users(ctx.args.file, stdin)
    operation = ctx.service().add_users(users)
    if ctx.json:
        ctx.print_json(ctx.service().status())
    elif operation is None:
        ctx.say(f"no users in {ctx.args.file}; nothing staged")
    else:
        ctx.say(f"staged {len(users):,} users; operation {operation.id} is {operation.state}",
                f" with {operation.count.get('total'):,} users in total")
    return 0


def _workers_option(default: int) -> Option:
    return option(
        "--workers", type=int, default=default, metavar="N",
        help=f"import threads; more than 1 needs --dsn (default: {default})",
    )


def _workers(ctx: Context) -> int:
    if ctx.args.workers < 1:
        msg = f"--workers must be at least 1, got {ctx.args.workers}"
        raise CommandError(msg)
    return int(ctx.args.workers)


@command(
    "run",
    "import the staged users of the current operation, with a progress bar",
    _workers_option(1),
)
def _run(ctx: Context) -> int:
    workers = _workers(ctx)
    return _watched(ctx, lambda: ctx.service().run(workers=workers))


@command(
    "resume",
    "continue the current import from its checkpoint (its worker died), with a progress bar",
    _workers_option(1),
)
def _resume(ctx: Context) -> int:
    workers = _workers(ctx)
    return _watched(ctx, lambda: ctx.service().resume(workers=workers))


@command(
    "worker",
    "join the current import running in batches (or start it) and work until it has ended",
    _workers_option(1),
    option("--lease-seconds", type=float, default=30.0, metavar="SECONDS",
           help="how long a batch stays with a worker that stopped renewing it (default: 30)"),
)
def _worker(ctx: Context) -> int:
    workers = _workers(ctx)
    if ctx.args.lease_seconds <= 0:
        msg = f"--lease-seconds must be positive, got {ctx.args.lease_seconds:g}"
        raise CommandError(msg)
    service = ctx.service()
    service.lease_seconds = ctx.args.lease_seconds
    ended = service.work(workers=workers)
    if ctx.json:
        ctx.print_json(ended.to_wire())
    else:
        report(ctx, _watch.Outcome(ended, interrupted=False))
    return 0 if ended.status is ProgressStep.DONE else 1


def _watched(ctx: Context, start: Callable[[], Operation]) -> int:
    service = ctx.service()
    console = Console(quiet=True) if ctx.json else ctx.err
    outcome = _watch.run_with_progress(service, console, start=start)
    if ctx.json:
        ctx.print_json(service.status())
    else:
        report(ctx, outcome)
    return _exit_status(outcome)


def _exit_status(outcome: _watch.Outcome) -> int:
    if outcome.interrupted:
        return INTERRUPTED
    return 0 if outcome.operation.status is ProgressStep.DONE else 1


@command("cancel", "cancel the current operation; a running import stops at its next batch")
def _cancel(ctx: Context) -> int:
    operation = ctx.service().cancel()
    if ctx.json:
        ctx.print_json(operation.to_wire())
    ctx.say(f"cancelled operation {operation.id}")
    return 0


@command(
    "sweep",
    "resume or fail imports whose worker has sent no heartbeat for a while",
    option(
        "--older-than", type=float, default=300.0, metavar="SECONDS",
        help="heartbeat age that makes an import stale; longer than a batch takes (default: 300)",
    ),
    option("--action", choices=("resume", "fail"), default="resume", help="(default: resume)"),
)
def _sweep(ctx: Context) -> int:
    if ctx.args.older_than < 0:
        msg = f"--older-than must not be negative, got {ctx.args.older_than:g}"
        raise CommandError(msg)
    older_than = dt.timedelta(seconds=ctx.args.older_than)
    swept = ctx.service().sweep_stale(older_than, action=ctx.args.action)
    if ctx.json:
        ctx.print_json([op.to_wire() for op in swept])
    elif not swept:
        ctx.say(f"no stale import: every running import sent a heartbeat within {older_than}")
    for op in swept:
        report(ctx, _watch.Outcome(op, interrupted=False))
    resumed_badly = ctx.args.action == "resume" and any(
        op.status is not ProgressStep.DONE for op in swept
    )
    return 1 if resumed_badly else 0


@command("clear", "invalidate every operation and delete all staged users (import.clear)")
def _clear(ctx: Context) -> int:
    service = ctx.service()
    service.clear()
    if ctx.json:
        ctx.print_json(service.status())
    ctx.say(f"cleared: every operation is now invalid and staging is empty ({ctx.db})")
    return 0


@command(
    "demo",
    "show a whole import lifecycle on synthetic users, with a live progress bar",
    option("--users", type=int, default=10_000, help="how many users to stage (default: 10000)"),
    option("--fail-rate", type=float, default=0.05,
           help="share of users the importer rejects as duplicates (default: 0.05)"),
)
def _demo_command(ctx: Context) -> int:
    # Without --db the demo must not touch (and so abort) the import in the usual database.
    if ctx.args.db is not None:
        return _run_demo(ctx, ctx.db, kept=True)
    with tempfile.TemporaryDirectory(prefix="importstate-demo-") as scratch:
        return _run_demo(ctx, Path(scratch) / "demo.db", kept=False)


def _run_demo(ctx: Context, db: Path, *, kept: bool) -> int:
    args = ctx.args
    try:
        users = _demo.synthetic_users(args.users, args.fail_rate)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    service = ctx.open(db)
    if ctx.json:
        # Scripts get the final status document only.
        ctx.out = Console(quiet=True)
    show = ctx.out.print
    show(Rule(f"importstate demo: {len(users):,} users, {args.fail_rate:.0%} rejected"))
    ctx.say(f"database {db}" + ("" if kept else " (temporary; --db PATH keeps it)"))
    _step(ctx, "1. no operation yet (import.status)", service.status())
    service.new_operation(getpass.getuser())
    _step(ctx, "2. a new operation (import.new)", service.status())
    started = time.perf_counter()
    service.add_users(users)
    _step(ctx, f"3. {len(users):,} users staged (import.addUsers) "
          f"in {time.perf_counter() - started:.2f}s", service.status())
    show(Rule("4. import.run: the bar follows the counts as they are committed"))
    started = time.perf_counter()
    outcome = _watch.run_with_progress(service, ctx.out)
    elapsed = time.perf_counter() - started
    _step(ctx, "5. the final status document", service.status())
    _demo_failures(ctx, service, kept=kept)
    show(Rule())
    report(ctx, outcome)
    ctx.say(f"{ctx.importer.count():,} users in the users table; the run took {elapsed:.2f}s"
            f" ({len(users) / max(elapsed, 1e-9):,.0f} users/s)")
    if ctx.json:
        ctx.print_json(service.status())
    return _exit_status(outcome)


def _step(ctx: Context, title: str, status: dict[str, Any]) -> None:
    ctx.out.print(Rule(title))
    ctx.out.print(JSON.from_data(status))


def _demo_failures(ctx: Context, service: ImportService, *, kept: bool, shown: int = 10) -> None:
    records = failed_records(service)
    if not records:
        return
    ctx.out.print(Rule(f"6. {len(records):,} failed users stay in staging with their errors"))
    ctx.out.print(failures_table(records, limit=shown))
    if len(records) > shown:
        where = f"`importstate failures --db {ctx.db}`" if kept else "`--db PATH` keeps them"
        ctx.say(f"... and {len(records) - shown:,} more ({where})")


@command(
    "diagram",
    "draw the state machine (or the steps inside each state) as Mermaid, DOT or SVG",
    option("--format", choices=[str(f) for f in diagrams.Format], default="mermaid",
           help="mermaid (default), dot (Graphviz source) or svg (needs Graphviz's dot)"),
    option("--steps", action="store_true", help="draw the progress steps inside their states"),
    option("--current", action="store_true",
           help="highlight the state of the current operation in --db"),
    option("--output", metavar="PATH", help="write to PATH instead of standard output"),
)
def _diagram(ctx: Context) -> int:
    args = ctx.args
    highlight: diagrams.Highlight = None
    if args.current:
        highlight = ctx.service().current_operation() or State.NONE
    draw = diagrams.steps_diagram if args.steps else diagrams.state_diagram
    text = draw(format=args.format, highlight=highlight)
    if ctx.json:
        ctx.print_json({"format": args.format, "steps": args.steps, "diagram": text})
    elif args.output is None:
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8", newline="\n")
        ctx.err.print(Text(f"wrote {args.output}"))
    return 0
