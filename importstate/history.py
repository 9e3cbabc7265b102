"""What happened to an operation: one entry per stored change of its status.

Each entry is written in the same transaction as the change it records, so a
store never holds a status its history cannot explain.
"""

from __future__ import annotations

import datetime as dt
from typing import TypedDict

import attrs

from importstate._time import format_time
from importstate.steps import ProgressStep, State, state_of

__all__ = ["HistoryDocument", "HistoryEntry"]


#: A :class:`HistoryEntry` on the wire (``importstate.history``, ``--json``); ``from``
#: is a Python keyword, hence the functional form.
HistoryDocument = TypedDict(
    "HistoryDocument",
    {
        "operationId": str,
        "from": str | None,
        "to": str,
        "event": str,
        "at": str,
        "actor": str,
    },
)


@attrs.frozen
class HistoryEntry:
    """One stored change of an operation's status.

    Attributes:
        operation_id: the operation's ``_id``.
        before: its progress step before the change (``None``: it was created).
        after: its progress step after the change; equal to ``before`` when only
            its validity changed (a newer operation replaced it).
        event: the machine event that made the change (``create``, ``start``,
            ``cancel``, ``invalidate``, ...).
        at: when the change was stored (UTC, millisecond precision).
        actor: who or what caused it: an API user (``user:<username>``), the
            command line's OS user (``cli:<login>``), ``run``, ``resume``,
            ``sweep``, or the newer operation's id for an invalidation
            (``operation:<id>``).
    """

    operation_id: str
    before: ProgressStep | None
    after: ProgressStep
    event: str
    at: dt.datetime
    actor: str

    @property
    def state_before(self) -> State:
        """The state the operation left (``none`` for its creation)."""
        return State.NONE if self.before is None else state_of(self.before)

    @property
    def state_after(self) -> State:
        """The state the operation entered."""
        return state_of(self.after)

    def to_wire(self) -> HistoryDocument:
        """The entry as JSON: step names as stored, ``at`` as ISO-8601 UTC."""
        return {
            "operationId": self.operation_id,
            "from": None if self.before is None else self.before.value,
            "to": self.after.value,
            "event": self.event,
            "at": format_time(self.at),
            "actor": self.actor,
        }
