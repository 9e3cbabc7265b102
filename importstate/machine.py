"""The one state machine every operation moves through.

:data:`DEFINITION` is the single table of states, events and the steps they
set. One shared :class:`transitions.Machine` is built from it at import time;
operations are plain values and never become models of their own machine.
:func:`fire` moves a ``(status, valid)`` pair through the shared machine and
raises :class:`~importstate.errors.InvalidTransition` for a move it refuses.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Iterable
from typing import Any, Final, NamedTuple

import attrs
from transitions import EventData, Machine, MachineError

from importstate.errors import InvalidTransition
from importstate.steps import ProgressStep, State, state_of

__all__ = [
    "DEFINITION",
    "Event",
    "MachineDefinition",
    "Move",
    "Transition",
    "allowed_events",
    "allows",
    "build_machine",
    "events",
    "fire",
]


class Event(enum.StrEnum):
    """The events of :data:`DEFINITION`; a test pins that the two name the same events."""

    CREATE = "create"
    BEGIN_LOADING = "begin_loading"
    ADVANCE = "advance"
    FINISH_LOADING = "finish_loading"
    STAGE = "stage"
    START = "start"
    DOWNLOAD = "download"
    FINISH = "finish"
    FAIL = "fail"
    CANCEL = "cancel"
    INVALIDATE = "invalidate"


@attrs.frozen
class Transition:
    """One row of the machine's table.

    Attributes:
        event: the trigger name (an :class:`Event` in the built-in table;
            an extended table may add its own).
        sources: the states it leaves.
        dest: the state it enters.
        step: the status it sets; ``None`` keeps the status (``invalidate``)
            or takes the caller's (``advance``).
        invalidates: whether it sets ``valid`` to false.
        forward_only: the caller's step must be later than the current one.
        after_step: the move is only allowed from this step.
        doc: what the move means to an operator, for diagrams and docs.
    """

    event: str
    sources: tuple[State, ...]
    dest: State
    step: ProgressStep | None = None
    invalidates: bool = False
    forward_only: bool = False
    after_step: ProgressStep | None = None
    doc: str = ""


@attrs.frozen
class MachineDefinition:
    """States and transitions; embedders may extend it and draw their own diagram."""

    states: tuple[str, ...]
    transitions: tuple[Transition, ...]
    initial: str = State.NONE


_LIVE = (State.NEW, State.LOADING, State.READY, State.IMPORTING)

#: The table every operation follows (Behaviour: states, service, counts).
DEFINITION: Final = MachineDefinition(
    states=tuple(State),
    transitions=(
        Transition(Event.CREATE, (State.NONE,), State.NEW, ProgressStep.NEW,
                   doc="new operation"),
        Transition(Event.BEGIN_LOADING, (State.NEW,), State.LOADING, ProgressStep.UPLOADING,
                   doc="a file importer starts"),
        Transition(Event.ADVANCE, (State.LOADING,), State.LOADING, forward_only=True,
                   doc="next loading step"),
        Transition(Event.FINISH_LOADING, (State.LOADING,), State.READY, ProgressStep.USER_SELECTION,
                   doc="file loaded and staged"),
        Transition(Event.STAGE, (State.NEW, State.READY), State.READY, ProgressStep.USER_SELECTION,
                   doc="add users"),
        Transition(Event.START, (State.READY,), State.IMPORTING, ProgressStep.IMPORTING_STARTED,
                   doc="run"),
        Transition(Event.DOWNLOAD, (State.NEW,), State.IMPORTING, ProgressStep.IMPORTING_FILES,
                   doc="fetch pending files or avatars"),
        Transition(Event.ADVANCE, (State.IMPORTING,), State.IMPORTING, forward_only=True,
                   doc="next importing step"),
        Transition(Event.FINISH, (State.IMPORTING,), State.DONE, ProgressStep.DONE,
                   after_step=ProgressStep.FINISHING, doc="every staged user processed"),
        Transition(Event.FAIL, (State.LOADING, State.IMPORTING, State.ERROR), State.ERROR,
                   ProgressStep.IMPORT_FAILED, doc="run stopped by an error or invalidation"),
        Transition(Event.CANCEL, _LIVE, State.CANCELED, ProgressStep.IMPORT_CANCELLED,
                   doc="cancelled by an administrator"),
        Transition(Event.INVALIDATE, (*_LIVE, State.CANCELED, State.ERROR), State.ERROR,
                   invalidates=True, doc="cleared or replaced by a new operation"),
        Transition(Event.INVALIDATE, (State.DONE,), State.DONE, invalidates=True,
                   doc="cleared or replaced by a new operation"),
    ),
)


class Move(NamedTuple):
    """Where an event takes an operation."""

    status: ProgressStep
    valid: bool


class _Cursor:
    """The machine's only model: positioned on an operation for one event at a time."""

    def __init__(self) -> None:
        self.state: str = State.NONE
        self.status: ProgressStep | None = None
        self.valid = True


def _cursor(event: EventData) -> _Cursor:
    cursor = event.model
    assert isinstance(cursor, _Cursor)  # noqa: S101 - the shared machine has no other model
    return cursor


def _allows(row: Transition) -> Callable[[EventData], bool]:
    def allowed(event: EventData) -> bool:
        cursor = _cursor(event)
        if row.after_step is not None and cursor.status is not row.after_step:
            return False
        if not row.forward_only:
            return True
        step: ProgressStep | None = event.kwargs.get("step")
        return (
            step is not None
            and cursor.status is not None
            and step.state is row.dest
            and step.position > cursor.status.position
        )

    return allowed


def _apply(row: Transition) -> Callable[[EventData], None]:
    def apply(event: EventData) -> None:
        cursor = _cursor(event)
        if row.step is not None:
            cursor.status = row.step
        elif row.forward_only:
            cursor.status = event.kwargs["step"]
        if row.invalidates:
            cursor.valid = False

    return apply


def build_machine(
    definition: MachineDefinition = DEFINITION,
    machine_class: type[Machine] = Machine,
    **options: Any,  # noqa: ANN401 - passed through to the transitions class
) -> Machine:
    """Build a ``transitions`` machine (or subclass, e.g. a ``GraphMachine``) from a table."""
    return machine_class(
        model=None,
        states=[str(s) for s in definition.states],
        initial=str(definition.initial),
        transitions=[_as_transitions_dict(row) for row in definition.transitions],
        auto_transitions=False,
        send_event=True,
        **options,
    )


def _as_transitions_dict(row: Transition) -> dict[str, Any]:
    return {
        "trigger": row.event,
        "source": [str(s) for s in row.sources],
        "dest": str(row.dest),
        "conditions": [_allows(row)],
        "after": [_apply(row)],
    }


_MACHINE: Final = build_machine()
_CURSOR: Final = _Cursor()
_MACHINE.add_model(_CURSOR)
_LOCK: Final = threading.Lock()


def events() -> tuple[str, ...]:
    """Every event name in the table, in table order, without repeats."""
    return tuple(dict.fromkeys(row.event for row in DEFINITION.transitions))


def fire(
    event: Event,
    status: ProgressStep | None,
    *,
    valid: bool = True,
    step: ProgressStep | None = None,
) -> Move:
    """Move an operation at ``status``/``valid`` by ``event`` through the shared machine.

    ``status=None`` stands for "no operation" (only ``create`` leaves it);
    ``step`` is the target of ``advance``. Thread-safe: the shared machine is
    positioned and fired under a lock.

    Raises:
        InvalidTransition: the machine does not allow ``event`` from the
            operation's state (or ``advance`` does not move forward).
    """
    state = state_of(status, valid=valid)
    with _LOCK:
        _MACHINE.set_state(str(state), model=_CURSOR)
        _CURSOR.status, _CURSOR.valid = status, valid
        try:
            moved = _MACHINE.events[event].trigger(_CURSOR, step=step)
        except (MachineError, KeyError) as exc:
            raise InvalidTransition(str(state), event) from exc
        if not moved:
            detail = f"{status} cannot move to {step}" if step is not None else f"from {status}"
            raise InvalidTransition(str(state), event, detail)
        assert _CURSOR.status is not None  # noqa: S101 - every event from a live state sets one
        return Move(_CURSOR.status, _CURSOR.valid)


#: Each event of the table → the states it may leave.
_SOURCES: Final[dict[str, frozenset[State]]] = {
    event: frozenset(
        state for row in DEFINITION.transitions if row.event == event for state in row.sources
    )
    for event in events()
}


def allows(event: Event, state: State) -> bool:
    """Whether the table has ``event`` leave ``state`` (the move's conditions not checked)."""
    return state in _SOURCES[event]


def allowed_events(status: ProgressStep | None, *, valid: bool = True) -> tuple[str, ...]:
    """The events the table allows from an operation's state (conditions not checked)."""
    state = state_of(status, valid=valid)
    return _events_from(state, DEFINITION.transitions)


def _events_from(state: State, rows: Iterable[Transition]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(row.event for row in rows if state in row.sources))
