"""The ``importstate`` command line (also ``python -m importstate``).

Each subcommand is one function taking a :class:`Context` and returning the
exit status, registered with :func:`command`; arguments are declared with
:func:`option`. A name with a space (``"users add"``) registers a
subcommand of a group. Every subcommand gets ``--db``, ``--dsn`` and ``--json``.

User errors (an :class:`~importstate.errors.ImportStateError`, a
:class:`CommandError`, an unreadable file) end the command with one line on
stderr and exit status 1, never a traceback; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import getpass
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
from rich import box
from rich.console import Console
from rich.json import JSON
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from importstate import _demo, _userfile, _watch, diagrams
from importstate._time import format_time
from importstate.accounts import Accounts
from importstate.errors import ImportStateError
from importstate.model import Operation
from importstate.service import LATEST_LIMIT, PASSWORD_MASK, ImportService
from importstate.steps import ProgressStep, State
from importstate.stores import SQLiteStore, Store
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
    _store: Store | None = None
    _importer: UsersTableImporter | None = None
    _service: ImportService | None = None

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
        if self._service is None:
            self._service = self.open(self.db, dsn=self.dsn)
        return self._service

    def open(self, path: Path, *, dsn: str | None = None) -> ImportService:
        """An import service over ``dsn``, else the SQLite file ``path``; closed with the context.

        The built-in importer writes to ``path`` either way.
        """
        self.close()
        self._store = _postgres_store(dsn) if dsn else SQLiteStore(path)
        self._importer = UsersTableImporter(path)
        self._service = ImportService(self._store, {"api": self._importer})
        return self._service

    @property
    def importer(self) -> UsersTableImporter:
        """The built-in importer of the open service."""
        self.service()
        assert self._importer is not None  # noqa: S101 - opened with the service
        return self._importer

    def close(self) -> None:
        """Close the store and the importer, if open."""
        if self._importer is not None:
            self._importer.close()
        if self._store is not None:
            self._store.close()
        self._store = self._importer = self._service = None

    def print_json(self, value: object) -> None:
        """Write ``value`` as indented JSON to stdout, unstyled, for scripts."""
        sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def say(self, *parts: str | Text) -> None:
        """Print one line for people (not in ``--json`` mode); ``str`` parts are not markup."""
        if not self.json:
            self.out.print(Text.assemble(*parts))


def _postgres_store(dsn: str) -> Store:
    from psycopg import OperationalError  # noqa: PLC0415 - same

    from importstate.stores.postgres import PostgresStore  # noqa: PLC0415 - needs psycopg

    try:
        return PostgresStore(dsn)
    except OperationalError as exc:
        # libpq's message spans lines; the command line reports one.
        msg = f"--dsn: cannot connect to PostgreSQL: {' '.join(str(exc).split())}"
        raise CommandError(msg) from exc


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


# -- parsing and dispatch ------------------------------------------------------------------


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


def _add_group(top: Any, name: str, groups: dict[str, Any]) -> Any:  # noqa: ANN401 - argparse's private types
    help_line = GROUPS.get(name, f"{name} commands")
    parser = top.add_parser(name, help=help_line, description=help_line)
    groups[name] = parser.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")
    return groups[name]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    ctx = Context(args, Console(highlight=False), Console(stderr=True, highlight=False))
    try:
        status: int = args.handler(ctx)
    except (ImportStateError, CommandError, _userfile.UserFileError) as exc:
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


# -- rendering -----------------------------------------------------------------------------


def _counts(operation: Operation) -> str:
    count = operation.count
    return (
        f"{count.get('completed'):,} imported, {count.get('error'):,} failed,"
        f" {count.get('total'):,} total"
    )


def _status_table(status: dict[str, Any]) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("state", Text(status["state"], style=_STATE_STYLE.get(status["state"], "")))
    for key, value in status.get("operation", {}).items():
        shown = value if isinstance(value, str) else json.dumps(value)
        table.add_row(key, Text(shown))
    return table


_STATE_STYLE: Final = {
    State.DONE: "green",
    State.ERROR: "red",
    State.CANCELED: "yellow",
    State.IMPORTING: "cyan",
    State.READY: "blue",
}


def _operations_table(operations: Iterable[Operation]) -> Table:
    table = Table(title="latest import operations (--json for the documents)",
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("_id", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("step", overflow="fold", min_width=16)
    table.add_column("updated", no_wrap=True)
    for name in ("total", "completed", "error"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("user", overflow="ellipsis")
    for op in operations:
        table.add_row(
            Text(op.id), Text(op.state, style=_STATE_STYLE.get(op.state, "")),
            # The wire prefix is the same on every step; --json shows it.
            Text(op.status.removeprefix("importer_")),
            op.updated_at.strftime("%m-%d %H:%M"),
            *(f"{op.count.get(name):,}" for name in ("total", "completed", "error")),
            Text(op.user),
        )
    return table


def _failures_table(records: Iterable[dict[str, Any]], *, limit: int | None = None) -> Table:
    table = Table("importId", "username", "email", "error", title="failed users still staged")
    for shown, record in enumerate(records):
        if limit is not None and shown >= limit:
            break
        data = record["data"]
        table.add_row(
            Text(_first(data.get("importIds"))),
            Text(str(data.get("username", ""))),
            Text(_first(data.get("emails"))),
            Text("; ".join(str(e.get("message", "")) for e in record["errors"])),
        )
    return table


def _first(values: object) -> str:
    return str(values[0]) if isinstance(values, list) and values else ""


def _failed_records(service: ImportService) -> list[dict[str, Any]]:
    return [_without_password(r) for r in service.staged_users() if r.get("errors")]


def _without_password(record: dict[str, Any]) -> dict[str, Any]:
    # Failure listings end up in terminals and tickets: a user's password stays out.
    data = record["data"]
    if "password" not in data:
        return record
    return {**record, "data": {**data, "password": PASSWORD_MASK}}


# -- subcommands ---------------------------------------------------------------------------


@command("status", "show the state of the current operation (import.status)")
def _status(ctx: Context) -> int:
    status = ctx.service().status()
    if ctx.json:
        ctx.print_json(status)
    else:
        ctx.out.print(_status_table(status))
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
        ctx.out.print(_operations_table(operations))
    else:
        ctx.say("no import operations yet")
    return 0


@command("failures", "list the current operation's staged users that failed, with their errors")
def _failures(ctx: Context) -> int:
    records = _failed_records(ctx.service())
    if ctx.json:
        ctx.print_json(records)
    elif records:
        ctx.out.print(_failures_table(records))
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
        _report(ctx, _watch.Outcome(ended, interrupted=False))
    return 0 if ended.status is ProgressStep.DONE else 1


def _watched(ctx: Context, start: Callable[[], Operation]) -> int:
    service = ctx.service()
    console = Console(quiet=True) if ctx.json else ctx.err
    outcome = _watch.run_with_progress(service, console, start=start)
    if ctx.json:
        ctx.print_json(service.status())
    else:
        _report(ctx, outcome)
    return _exit_status(outcome)


def _report(ctx: Context, outcome: _watch.Outcome) -> None:
    op = outcome.operation
    if outcome.interrupted:
        ctx.say("interrupted: the import was cancelled at its next batch; staged users stay")
    style = _STATE_STYLE.get(op.state, "")
    ctx.say(f"operation {op.id}: ", Text(str(op.state), style=style), f" ({_counts(op)})")
    if op.failure is not None:
        ctx.say(Text(f"failure: {op.failure.message}", style="red"))
    if op.count.get("error"):
        ctx.say("the failed users stay in staging: see `importstate failures`")


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
        _report(ctx, _watch.Outcome(op, interrupted=False))
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
    _report(ctx, outcome)
    ctx.say(f"{ctx.importer.count():,} users in the users table; the run took {elapsed:.2f}s"
            f" ({len(users) / max(elapsed, 1e-9):,.0f} users/s)")
    if ctx.json:
        ctx.print_json(service.status())
    return _exit_status(outcome)


def _step(ctx: Context, title: str, status: dict[str, Any]) -> None:
    ctx.out.print(Rule(title))
    ctx.out.print(JSON.from_data(status))


def _demo_failures(ctx: Context, service: ImportService, *, kept: bool, shown: int = 10) -> None:
    records = _failed_records(service)
    if not records:
        return
    ctx.out.print(Rule(f"6. {len(records):,} failed users stay in staging with their errors"))
    ctx.out.print(_failures_table(records, limit=shown))
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


# -- the REST server and its API users -----------------------------------------------------


@command(
    "serve",
    "serve the REST API (Rocket.Chat's import endpoints) until SIGTERM or Ctrl-C",
    option("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"),
    option("--port", type=int, default=3000, help="port to listen on (default: 3000)"),
    option("--max-body", type=int, default=10 * 1024 * 1024, metavar="BYTES",
           help="largest request body accepted; larger gets 413 (default: 10 MB)"),
)
def _serve(ctx: Context) -> int:
    from importstate import http  # noqa: PLC0415 - starts uvicorn only when serving

    args = ctx.args
    if args.max_body < 0:
        msg = "--max-body must not be negative"
        raise CommandError(msg)
    if ctx.dsn:
        ctx.service()  # a --dsn that does not connect fails here, as one line
    http.serve(ctx.db, host=args.host, port=args.port, max_body=args.max_body, dsn=ctx.dsn)
    return 0


group("users", "manage the API users of `importstate serve` (not the imported users)")


@command(
    "users add",
    "create an API user and print its user id and a fresh auth token (shown once)",
    option("name", metavar="NAME", help="the login name"),
    option("--password", default=None, help="allow POST /api/v1/login with this password"),
    option("--permission", action="append", default=[], metavar="P",
           help="run-import or view-import-operations; repeatable (default: none)"),
)
def _users_add(ctx: Context) -> int:
    with _accounts(ctx) as accounts:
        user, credentials = accounts.add(
            ctx.args.name, password=ctx.args.password, permissions=ctx.args.permission,
        )
    if ctx.json:
        ctx.print_json(credentials.to_wire())
        return 0
    ctx.say("created API user ", Text(user.name, style="bold"),
            f" ({', '.join(sorted(user.permissions)) or 'no permissions'})")
    ctx.say("X-User-Id:    ", Text(credentials.user_id, style="bold"))
    ctx.say("X-Auth-Token: ", Text(credentials.auth_token, style="bold"), " (shown only once)")
    return 0


@command("users list", "list the API users, revoked ones included")
def _users_list(ctx: Context) -> int:
    with _accounts(ctx) as accounts:
        rows = [(user, accounts.tokens(user.name)) for user in accounts.users()]
    if ctx.json:
        ctx.print_json([{
            "userId": user.id, "name": user.name, "permissions": sorted(user.permissions),
            "created": format_time(user.created), "password": user.has_password,
            "revoked": format_time(user.revoked) if user.revoked else None, "tokens": tokens,
        } for user, tokens in rows])
    elif rows:
        table = Table("name", "permissions", "password", "tokens", "created", "revoked",
                      title="API users")
        table.add_column("user id", no_wrap=True)
        for user, tokens in rows:
            table.add_row(
                Text(user.name), ", ".join(sorted(user.permissions)),
                "yes" if user.has_password else "no", str(tokens), f"{user.created:%Y-%m-%d %H:%M}",
                Text(f"{user.revoked:%Y-%m-%d %H:%M}", style="red") if user.revoked else "",
                user.id,
            )
        ctx.out.print(table)
    else:
        ctx.say("no API users yet: add one with `importstate users add NAME`")
    return 0


@command(
    "users revoke",
    "revoke an API user: its tokens stop working at once and it can no longer log in",
    option("name", metavar="NAME", help="the login name"),
)
def _users_revoke(ctx: Context) -> int:
    with _accounts(ctx) as accounts:
        user = accounts.revoke(ctx.args.name)
    if ctx.json:
        ctx.print_json({"userId": user.id, "name": user.name})
    ctx.say(f"revoked API user {user.name} ({user.id})")
    return 0


def _accounts(ctx: Context) -> contextlib.closing[Accounts]:
    return contextlib.closing(Accounts(ctx.db))
