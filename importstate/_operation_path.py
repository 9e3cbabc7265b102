"""The path an operation took, as the diagrams draw it: numbered moves between drawn nodes.

Everything here is derived from the history entries alone (no clock is read),
so the same history always gives the same labels.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Final

import attrs

from importstate.history import HistoryEntry
from importstate.steps import ProgressStep

#: Names the node an operation at ``(status, valid)`` is drawn in (``None``: no operation).
NodeOf = Callable[[ProgressStep | None, bool], str]

_MILLISECOND: Final = dt.timedelta(milliseconds=1)


@attrs.frozen
class Move:
    """One entry of the history as an edge of a diagram.

    Attributes:
        number: its place in the history, from 1.
        source: the node the operation left.
        dest: the node it entered (``source`` again for a loop).
        event: the machine event that moved it.
        at: when.
        spent: how long the operation had been in ``source`` (``None`` for its creation).
    """

    number: int
    source: str
    dest: str
    event: str
    at: dt.datetime
    spent: dt.timedelta | None

    def taking(self) -> str:
        """``3. 04:12:03.120 (+2.4 s)``: the number, the time of day (UTC) and the time spent."""
        text = f"{self.number}. {clock_time(self.at)}"
        return text if self.spent is None else f"{text} ({elapsed(self.spent)})"


def moves(history: Sequence[HistoryEntry], node_of: NodeOf,
          invalidating: Collection[str]) -> list[Move]:
    """``history`` (one operation's, oldest first) as numbered moves between nodes.

    An operation is valid until an ``invalidating`` event; from then on its
    nodes are those of an invalid operation (``canceled`` becomes ``error``).
    The time spent counts from when the operation entered the node it
    leaves; a loop does not restart it.

    Raises:
        ValueError: the entries belong to more than one operation.
    """
    operations = {entry.operation_id for entry in history}
    if len(operations) > 1:
        msg = f"a path is one operation's history; these entries belong to {sorted(operations)}"
        raise ValueError(msg)
    drawn: list[Move] = []
    valid = True
    entered: dt.datetime | None = None
    for number, entry in enumerate(history, start=1):
        source = node_of(entry.before, valid)
        valid = valid and entry.event not in invalidating
        dest = node_of(entry.after, valid)
        spent = None if entry.before is None or entered is None else entry.at - entered
        drawn.append(Move(number, source, dest, entry.event, entry.at, spent))
        if dest != source or entered is None:
            entered = entry.at
    return drawn


def visited(path: Iterable[Move]) -> list[str]:
    """The nodes ``path`` passes through, in the order first reached."""
    return list(dict.fromkeys(node for move in path for node in (move.source, move.dest)))


def clock_time(moment: dt.datetime) -> str:
    """``04:12:03.120``: the time of day in UTC, to the millisecond."""
    utc = moment.astimezone(dt.UTC)
    return f"{utc:%H:%M:%S}.{utc.microsecond // 1000:03d}"


def span(spent: dt.timedelta) -> str:
    """``120 ms``, ``2.4 s``, ``3 min 05 s``, ``2 h 07 min``, ``1 d 04 h``: two units at most.

    The one way importstate writes a time spent (the diagram's labels, ``importstate history``).
    """
    millis = spent // _MILLISECOND
    if millis < 1000:  # noqa: PLR2004 - one second
        return f"{millis} ms"
    seconds, _ = divmod(millis, 1000)
    if seconds < 60:  # noqa: PLR2004 - one minute
        return f"{millis // 100 / 10:.1f} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:  # noqa: PLR2004 - one hour
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:  # noqa: PLR2004 - one day
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours:02d} h"


def elapsed(spent: dt.timedelta) -> str:
    """``+2.4 s``: :func:`span` as a diagram's label writes it."""
    return f"+{span(spent)}"
