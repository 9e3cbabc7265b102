"""How the command line shows operations, counts and failed users to people (rich tables)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from rich import box
from rich.table import Table
from rich.text import Text

from importstate._operation_path import span
from importstate._time import format_time
from importstate.cli._context import Context
from importstate.cli._watch import Outcome, Stop
from importstate.documents import StatusDocument
from importstate.history import HistoryEntry
from importstate.model import Operation
from importstate.pending import PENDING_NAMES
from importstate.selection import Offer
from importstate.steps import State

#: The rich style of each state's name; states not listed are unstyled.
STATE_STYLE: Final = {
    State.DONE: "green",
    State.ERROR: "red",
    State.CANCELED: "yellow",
    State.IMPORTING: "cyan",
    State.READY: "blue",
}

#: What the command line says when a run was stopped, by how it was stopped.
STOPPED: Final = {
    Stop.CANCELLED: "interrupted: the import was cancelled at its next batch; staged users stay",
    Stop.HELD: "terminated: the import stopped at a batch boundary and stays importing at its"
               " checkpoint; `importstate resume` continues it",
    Stop.LEFT: "interrupted: this worker stopped at a batch boundary; other workers go on,"
               " and `importstate worker` joins again",
}


def plural(count: int, noun: str) -> str:
    """``1 user``, ``2 users``, ``12,345 users``."""
    return f"{count:,} {noun if count == 1 else noun + 's'}"


def counts(operation: Operation) -> str:
    """``1,200 imported, 3 failed, 1,203 total``."""
    count = operation.count
    return (
        f"{count.get('completed'):,} imported, {count.get('error'):,} failed,"
        f" {count.get('total'):,} total"
    )


def selection_summary(offer: Offer) -> str:
    """What a selection offers: ``3 users, 2 channels (one stands for ...) and 6 messages``."""
    direct = any(channel.is_direct for channel in offer.channels)
    note = " (one stands for every direct channel)" if direct else ""
    return (f"{plural(len(offer.users), 'user')}, {plural(len(offer.channels), 'channel')}"
            f"{note} and {plural(offer.message_count, 'message')}")


def status_table(status: StatusDocument) -> Table:
    """The state, then each field of the operation's wire document, one per row."""
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("state", Text(status["state"], style=STATE_STYLE.get(State(status["state"]), "")))
    operation: Mapping[str, Any] = status.get("operation", {})
    for key, value in operation.items():
        if key == "count":
            shown = ", ".join(f"{name} {number:,}" for name, number in value.items())
        else:
            shown = value if isinstance(value, str) else json.dumps(value)
        table.add_row(key, Text(shown))
    return table


def operations_table(operations: Iterable[Operation]) -> Table:
    """One row per operation: id, state, step, last update, counts, user."""
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
            Text(op.id), Text(op.state, style=STATE_STYLE.get(op.state, "")),
            # The wire prefix is the same on every step; --json shows it.
            Text(op.status.removeprefix("importer_")),
            op.updated_at.strftime("%m-%d %H:%M"),
            *(f"{op.count.get(name):,}" for name in ("total", "completed", "error")),
            Text(op.user),
        )
    return table


def history_table(entries: Sequence[HistoryEntry]) -> Table:
    """One row per change: number, time, from, to, event, actor, time spent in ``from``."""
    title = f"history of operation {entries[0].operation_id}" if entries else "no history"
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("time", no_wrap=True)
    for name in ("from", "to"):
        table.add_column(name, overflow="fold", min_width=12)
    table.add_column("event", no_wrap=True)
    table.add_column("actor", overflow="fold")
    table.add_column("spent in from", justify="right", no_wrap=True)
    previous: HistoryEntry | None = None
    for number, entry in enumerate(entries, start=1):
        style = STATE_STYLE.get(entry.state_after, "")
        table.add_row(
            str(number), format_time(entry.at),
            # The wire prefix is the same on every step; --json shows it.
            Text(entry.before.removeprefix("importer_") if entry.before is not None else "—"),
            Text(entry.after.removeprefix("importer_"), style=style),
            Text(entry.event), Text(entry.actor),
            span(entry.at - previous.at) if previous is not None else "—",
        )
        previous = entry
    return table


def failures_table(records: Iterable[dict[str, Any]]) -> Table:
    """One row per failed staged user, with its errors joined by ``;``."""
    table = Table("importId", "username", "email", "error", title="failed users still staged")
    for record in records:
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


def report(ctx: Context, outcome: Outcome) -> None:
    """Say how a run ended: its state and counts, its failure, where the failed users are."""
    op = outcome.operation
    if outcome.stop is not None:
        # On stderr, --json or not: the one line that says why the command ended early.
        ctx.err.print(Text(f"importstate: {STOPPED[outcome.stop]}"))
    style = STATE_STYLE.get(op.state, "")
    ctx.say(f"operation {op.id}: ", Text(str(op.state), style=style), f" ({counts(op)})")
    if op.failure is not None:
        ctx.say(Text(f"failure: {op.failure.message}", style="red"))
    if op.count.get("error") and op.importer_key in PENDING_NAMES:
        ctx.say("the failed downloads stay pending, each with its error:"
                " `importstate download-pending` tries them again")
    elif op.count.get("error"):
        ctx.say("the failed users stay in staging: see `importstate failures`,"
                " or `importstate retry` to import them again")
