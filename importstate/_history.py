"""Recording history: who is acting, and the machine's moves behind one stored change.

The actor is context-local (a :class:`contextvars.ContextVar`): a caller sets
it around its calls (``ImportService.acting``), the run loop sets its own,
and threads the service starts for a caller carry the caller's on.

A stored change is read back as the machine's transitions: usually one, but
a single write may pass through several (a run moving from its last phase
through ``importer_finishing`` to done, a pending-download operation with
nothing to fetch). :func:`entries` finds the shortest such chain in the
machine's table and records each transition of it, all at the time of the
write.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections import deque
from collections.abc import Iterator
from typing import Final

from importstate import machine
from importstate.errors import InvalidTransition
from importstate.history import HistoryEntry
from importstate.machine import Event
from importstate.model import Operation
from importstate.steps import ProgressStep

#: The actor of a change made with no actor set: a library call.
LIBRARY: Final = "library"
#: The actor of the steps a run loop takes on its own.
RUN: Final = "run"
#: The actor of what a :meth:`~importstate.ImportService.resume` writes.
RESUME: Final = "resume"
#: The actor of what a :meth:`~importstate.ImportService.sweep_stale` writes.
SWEEP: Final = "sweep"
#: The event of a stored change no chain of the machine's transitions explains.
UNEXPLAINED: Final = "unexplained"

_ACTOR: Final[contextvars.ContextVar[str]] = contextvars.ContextVar(
    "importstate_actor", default=LIBRARY,
)


def actor() -> str:
    """Who or what the changes made here now are recorded as caused by."""
    return _ACTOR.get()


@contextlib.contextmanager
def acting(who: str) -> Iterator[None]:
    """Record the changes made inside the block as caused by ``who``.

    Raises:
        ValueError: ``who`` is empty.
    """
    if not isinstance(who, str) or not who:
        msg = f"an actor is a non-empty string, not {who!r}"
        raise ValueError(msg)
    token = _ACTOR.set(who)
    try:
        yield
    finally:
        _ACTOR.reset(token)


def invalidated_by(operation_id: str) -> str:
    """The actor of an invalidation by a newer operation."""
    return f"operation:{operation_id}"


def entries(before: Operation | None, after: Operation, who: str) -> list[HistoryEntry]:
    """The history of one stored change of an operation, from ``before`` (``None``: created)."""
    start = None if before is None else (before.status, before.valid)
    moves = _chain(start, (after.status, after.valid))
    if moves is None:
        moves = ((UNEXPLAINED, after.status),)
    steps = [None if before is None else before.status, *(step for _, step in moves)]
    return [
        HistoryEntry(after.id, steps[number], step, event, after.updated_at, who)
        for number, (event, step) in enumerate(moves)
    ]


_Node = tuple[ProgressStep, bool]


@functools.cache
def _chain(start: _Node | None, goal: _Node) -> tuple[tuple[str, ProgressStep], ...] | None:
    """The fewest ``(event, step)`` moves of the machine from ``start`` to ``goal``.

    Ties go to the machine table's order. ``None`` when no chain leads there.
    """
    first: tuple[tuple[str, _Node], ...] = (
        _moves(start) if start is not None else _moves_from_nothing()
    )
    seen: set[_Node] = set()
    queue: deque[tuple[_Node, tuple[tuple[str, ProgressStep], ...]]] = deque(
        (node, ((event, node[0]),)) for event, node in first
    )
    while queue:
        node, path = queue.popleft()
        if node == goal:
            return path
        if node in seen:
            continue
        seen.add(node)
        queue.extend((nxt, (*path, (event, nxt[0]))) for event, nxt in _moves(node))
    return None


def _moves_from_nothing() -> tuple[tuple[str, _Node], ...]:
    created = machine.fire(Event.CREATE, None)
    return ((Event.CREATE.value, (created.status, created.valid)),)


@functools.cache
def _moves(node: _Node) -> tuple[tuple[str, _Node], ...]:
    """Every move the machine allows from ``node``, in table order (``advance`` per step)."""
    status, valid = node
    found: list[tuple[str, _Node]] = []
    for name in machine.events():
        event = Event(name)
        targets: tuple[ProgressStep | None, ...] = (
            tuple(ProgressStep) if event is Event.ADVANCE else (None,)
        )
        for step in targets:
            try:
                moved = machine.fire(event, status, valid=valid, step=step)
            except InvalidTransition:
                continue
            if (moved.status, moved.valid) != node:
                found.append((event.value, (moved.status, moved.valid)))
    return tuple(found)
