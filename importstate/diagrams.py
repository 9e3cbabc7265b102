"""Diagrams of the machine the code runs, drawn by transitions' own diagram engines.

Both diagrams are built from a :class:`~importstate.machine.MachineDefinition`
(by default :data:`~importstate.machine.DEFINITION`, the table the shared
machine is built from) through :func:`~importstate.machine.build_machine`, so
a change to the table changes the drawing:

- :func:`state_diagram`: the states and every event between them;
- :func:`steps_diagram`: the same, with each state's progress steps inside it
  and ``advance`` edges in their natural order.

With ``events=True`` each edge also names the event a listener is given
when an operation takes it (``start / StateChanged``: see
:mod:`importstate.events`), and the steps where a run commits its batches
get a loop ``batch / BatchCommitted``. Which edges change the stored
status or validity is asked of the machine, not written here.

Formats: ``mermaid`` (``stateDiagram-v2``), ``dot`` (Graphviz source; needs
the ``graphviz`` Python package only) and ``svg`` (runs Graphviz's ``dot``
program). The same definition gives byte-identical text.
"""

from __future__ import annotations

import enum
import itertools
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any, Final, TypeAlias, cast

import attrs
from transitions.extensions import GraphMachine, HierarchicalGraphMachine
from transitions.extensions.nesting import NestedState

from importstate import machine as _machine
from importstate.errors import GraphvizNotFound, InvalidTransition
from importstate.events import BatchCommitted, StateChanged
from importstate.machine import DEFINITION, MachineDefinition, Transition, build_machine
from importstate.model import Operation
from importstate.records import RECORD_KINDS
from importstate.steps import STEP_STATE, ProgressStep, State, state_of

__all__ = [
    "DOT_TIMEOUT",
    "STATES_TITLE",
    "STEPS_TITLE",
    "Format",
    "Highlight",
    "StepStates",
    "state_diagram",
    "steps_diagram",
    "svg",
    "with_events",
]


class Format(enum.StrEnum):
    """The text formats a diagram can be drawn in."""

    MERMAID = "mermaid"
    DOT = "dot"
    SVG = "svg"


STATES_TITLE: Final = "importstate: operation states"
STEPS_TITLE: Final = "importstate: progress steps by state"
#: Seconds ``dot`` may take to lay out a diagram.
DOT_TIMEOUT: Final = 60

_ENGINES: Final = {Format.MERMAID: "mermaid", Format.DOT: "graphviz", Format.SVG: "graphviz"}
# Composite-state names join with steps' names, which contain single underscores.
_SEPARATOR: Final = "__"

_NODE_STYLES: Final = {
    "default": {
        "style": "rounded,filled", "shape": "rectangle", "fillcolor": "white",
        "color": "black", "peripheries": "1",
    },
    "active": {"color": "darkorange3", "fillcolor": "lightgoldenrod1", "peripheries": "2"},
}
_GRAPH_STYLES: Final = {
    "default": {"color": "black", "fillcolor": "white", "style": "solid"},
    "active": {"color": "darkorange3", "fillcolor": "lightgoldenrod1", "style": "filled"},
}


class _Drawing:
    """Styles shared by both diagram machines: plain nodes, one highlight style."""

    style_attributes: Final = {
        "node": _NODE_STYLES,
        "edge": {"default": {"color": "black"}},
        "graph": _GRAPH_STYLES,
    }


class _StatesMachine(_Drawing, GraphMachine):  # type: ignore[misc]
    """A machine drawn as a flat state diagram."""


class _Step(NestedState):
    separator = _SEPARATOR


class _StepsMachine(_Drawing, HierarchicalGraphMachine):  # type: ignore[misc]
    """A machine whose states hold their steps, drawn as composite states."""

    state_cls = _Step


Highlight: TypeAlias = Operation | State | str | None
#: Which state each step belongs to.
StepStates: TypeAlias = Mapping[ProgressStep, State] | Mapping[str, str]


def state_diagram(
    definition: MachineDefinition = DEFINITION,
    *,
    format: Format | str = Format.MERMAID,  # noqa: A002 - the word users know
    highlight: Highlight = None,
    title: str = STATES_TITLE,
    events: bool = False,
) -> str:
    """The states of ``definition`` and every event between them, as diagram text.

    Args:
        definition: the table to draw (an embedder's extended one, say).
        format: ``mermaid``, ``dot`` or ``svg``.
        highlight: an operation (its state is highlighted) or a state name.
        title: the diagram's title.
        events: name the listener's events on the edges (see the module).

    Raises:
        GraphvizNotFound: ``svg`` without Graphviz's ``dot`` on ``PATH``.
        ValueError: ``format`` or ``highlight`` names nothing known.
    """
    fmt = Format(format)
    drawn = with_events(definition) if events else definition
    machine = build_machine(
        drawn, machine_class=_StatesMachine, graph_engine=_ENGINES[fmt], title=title,
    )
    if events:
        machine.add_transition(_BATCH, str(State.IMPORTING), str(State.IMPORTING))
    graph = machine.graph_cls(machine)
    state = _highlighted_state(highlight, definition)
    if state is not None:
        graph.set_node_style(state, "active")
    return _output(graph.get_graph(title=title), fmt)


def steps_diagram(  # noqa: PLR0913 - every argument after the table is keyword-only
    definition: MachineDefinition = DEFINITION,
    *,
    steps: StepStates = STEP_STATE,
    format: Format | str = Format.MERMAID,  # noqa: A002 - the word users know
    highlight: Highlight = None,
    title: str = STEPS_TITLE,
    events: bool = False,
) -> str:
    """Each state of ``definition`` with its ``steps`` inside, in their natural order.

    ``steps`` maps each step to its state (default: the twenty steps of
    Behaviour: steps); consecutive steps of one state are joined by ``advance``
    edges. An operation given as ``highlight`` has its state and step
    highlighted (Mermaid styles states only). ``events`` names the
    listener's events on the edges, and loops on each step where a run
    commits batches.

    Raises:
        GraphvizNotFound: ``svg`` without Graphviz's ``dot`` on ``PATH``.
        ValueError: ``format`` or ``highlight`` names nothing known, or a step
            belongs to a state the definition lacks.
    """
    fmt = Format(format)
    machine = cast("_StepsMachine", build_machine(
        with_events(definition) if events else definition, machine_class=_StepsMachine,
        graph_engine=_ENGINES[fmt], title=title,
    ))
    grouped = _group(steps, definition)
    advance = _labelled(str(_machine.Event.ADVANCE), changes=True) if events else "advance"
    for state, names in grouped.items():
        machine.get_state(state).add_substates([_Step(name) for name in names])
        for earlier, later in itertools.pairwise(names):
            machine.add_transition(
                advance, _SEPARATOR.join((state, earlier)), _SEPARATOR.join((state, later)),
            )
    if events:
        for kind in RECORD_KINDS:
            node = _SEPARATOR.join((str(kind.step.state), str(kind.step)))
            machine.add_transition(_BATCH, node, node)
    if fmt is not Format.MERMAID:
        # Edges between clusters end at the cluster's border only in a compound graph.
        machine.machine_attributes = {**machine.machine_attributes, "compound": "true"}
    graph = machine.graph_cls(machine)
    for name in _highlighted_steps(highlight, definition, grouped):
        graph.set_node_style(name, "active")
    return _output(graph.get_graph(title=title), fmt)


#: The loop where a run commits its batches, when the diagram names the events.
_BATCH: Final = f"batch / {BatchCommitted.__name__}"


def with_events(definition: MachineDefinition) -> MachineDefinition:
    """``definition`` with each edge's event named ``<event> / StateChanged`` where one fires.

    An edge fires :class:`~importstate.events.StateChanged` when taking it
    can change an operation's stored status or validity; each source of a
    row is asked separately (``stage`` from ``new`` does, from ``ready``
    does not). A row the shared machine does not know (an embedder's) is
    taken to change the status.
    """
    rows = [
        attrs.evolve(row, event=_labelled(row.event, changes=_changes(row, source)),
                     sources=(source,))
        for row in definition.transitions for source in row.sources
    ]
    return attrs.evolve(definition, transitions=tuple(rows))


def _labelled(event: str, *, changes: bool) -> str:
    return f"{event} / {StateChanged.__name__}" if changes else event


def _changes(row: Transition, source: State) -> bool:
    """Whether ``row`` from ``source`` changes some operation's stored status or validity."""
    if row.forward_only:
        return True  # advance always moves to a later step
    for status, valid in _operations_in(source):
        try:
            moved = _machine.fire(_machine.Event(row.event), status, valid=valid)
        except (InvalidTransition, ValueError):
            if row.event not in _machine.events():
                return True
            continue
        if (moved.status, moved.valid) != (status, valid):
            return True
    return False


def _operations_in(state: State) -> list[tuple[ProgressStep | None, bool]]:
    """Every ``(status, valid)`` an operation in ``state`` may have (``none``: no status)."""
    if state is State.NONE:
        return [(None, True)]
    return [(step, valid) for step in ProgressStep for valid in (True, False)
            if state_of(step, valid=valid) is state]


def _group(steps: StepStates, definition: MachineDefinition) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for step, state in steps.items():
        if str(state) not in definition.states:
            msg = f"step {step!s} belongs to {state!s}, which the definition does not have"
            raise ValueError(msg)
        grouped.setdefault(str(state), []).append(str(step))
    return grouped


def _highlighted_state(highlight: Highlight, definition: MachineDefinition) -> str | None:
    if highlight is None:
        return None
    state = str(highlight.state if isinstance(highlight, Operation) else highlight)
    if state not in definition.states:
        msg = f"cannot highlight {state!r}: not a state of the definition"
        raise ValueError(msg)
    return state


def _highlighted_steps(
    highlight: Highlight, definition: MachineDefinition, grouped: Mapping[str, list[str]],
) -> list[str]:
    state = _highlighted_state(highlight, definition)
    if state is None:
        return []
    names = [state]
    if isinstance(highlight, Operation) and str(highlight.status) in grouped.get(state, ()):
        names.append(_SEPARATOR.join((state, str(highlight.status))))
    return names


def _output(graph: Any, fmt: Format) -> str:  # noqa: ANN401 - transitions' graph objects are untyped
    source = str(graph.source)
    if not source.endswith("\n"):
        source += "\n"
    return svg(source) if fmt is Format.SVG else source


def svg(dot_source: str) -> str:
    """Lay out Graphviz source with the ``dot`` program; the SVG text.

    The SVG names the Graphviz version, so it differs between installations.

    Raises:
        GraphvizNotFound: ``dot`` is not on ``PATH``.
        subprocess.CalledProcessError: ``dot`` rejected the source.
    """
    dot = shutil.which("dot")
    if dot is None:
        raise GraphvizNotFound
    done = subprocess.run(  # noqa: S603 - fixed arguments, the source goes to stdin
        [dot, "-Tsvg"], input=dot_source, capture_output=True, text=True, check=True,
        timeout=DOT_TIMEOUT,
    )
    return done.stdout
