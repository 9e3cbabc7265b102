"""Diagrams of the machine the code runs, drawn by transitions' own diagram engines.

Both diagrams are built from a :class:`~importstate.machine.MachineDefinition`
(by default :data:`~importstate.machine.DEFINITION`, the table the shared
machine is built from) through :func:`~importstate.machine.build_machine`, so
a change to the table changes the drawing:

- :func:`state_diagram`: the states and every event between them;
- :func:`steps_diagram`: the same, with each state's progress steps inside it
  and ``advance`` edges in their natural order; the states run top to
  bottom and each state's steps down a column, so that the drawing fits a page.

The states read left to right along the way to ``done``; the finished states
(``done``, ``canceled``, ``error``) share the last rank, and the edges that
invalidate an operation are drawn dashed beneath the main path.

Given an operation's ``history`` (:meth:`ImportService.history
<importstate.service.ImportService.history>`), either diagram draws the path
it took: each state and step it visited is marked, the one it is in drawn as
the highlight, and each transition taken carries its number in the history,
the time (UTC) and the time spent in the state or step it left
(``3. 04:12:05.520 (+2.4 s)``), all derived from the entries alone.

With ``events=True`` each edge also names the event a listener is given
when an operation takes it (``start / StateChanged``: see
:mod:`importstate.events`), and the steps where a run commits its batches
get a loop ``batch / BatchCommitted``. Which edges change the stored
status or validity is asked of the machine, not written here.

Formats: ``mermaid`` (``stateDiagram-v2``, no extra needed), ``dot``
(Graphviz source; needs the ``graphviz`` Python package only, the
``diagrams`` extra) and ``svg`` (the same, and runs Graphviz's ``dot``
program). The same definition gives byte-identical text.
"""

from __future__ import annotations

import datetime as dt
import enum
import importlib
import itertools
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, TypeAlias, cast

import attrs
from transitions.extensions import GraphMachine, HierarchicalGraphMachine
from transitions.extensions import diagrams_graphviz as _graphviz
from transitions.extensions import diagrams_mermaid as _mermaid
from transitions.extensions.nesting import NestedState

from importstate import _operation_path
from importstate import machine as _machine
from importstate._extras import needs
from importstate.errors import GraphvizNotFound, InvalidTransition
from importstate.events import BatchCommitted, StateChanged
from importstate.history import HistoryEntry
from importstate.machine import DEFINITION, MachineDefinition, Transition, build_machine
from importstate.model import Operation
from importstate.records import RECORD_KINDS
from importstate.steps import FINISHED_STATES, STEP_STATE, ProgressStep, State, state_of

__all__ = [
    "DOT_TIMEOUT",
    "STATES_TITLE",
    "STEPS_TITLE",
    "Format",
    "Highlight",
    "History",
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
# The finished states top to bottom on the last rank: success in line with the main path,
# then cancellation, then error beneath it, where the invalidation edges run.
_FINISHED_ORDER: Final = (State.DONE, State.CANCELED, State.ERROR)

_NODE_STYLES: Final = {
    "default": {
        "style": "rounded,filled", "shape": "rectangle", "fillcolor": "white",
        "color": "black", "peripheries": "1",
    },
    "visited": {"color": "darkorange3", "fillcolor": "lightyellow", "peripheries": "1"},
    "active": {"color": "darkorange3", "fillcolor": "lightgoldenrod1", "peripheries": "2"},
}
_GRAPH_STYLES: Final = {
    "default": {"color": "black", "fillcolor": "white", "style": "solid"},
    "visited": {"color": "darkorange3", "fillcolor": "lightyellow", "style": "filled"},
    "active": {"color": "darkorange3", "fillcolor": "lightgoldenrod1", "style": "filled"},
}
# The steps diagram runs top to bottom, each state's steps down a column: a page wide.
_STEPS_LAYOUT: Final = {"compound": "true", "nodesep": "0.2"}
# The engine ranks a cluster's nodes together (one long row); without that they form a column.
_STEPS_GRAPH_STYLES: Final = {name: {**style, "rank": ""} for name, style in _GRAPH_STYLES.items()}
# An edge's styles are its roles joined by "+", later roles winning (see _style_edges).
_EDGE_STYLES: Final = {
    "default": {"color": "black"},
    # The way to done: kept straight, so the other edges route around it.
    "main": {"weight": "8"},
    # An invalidation: beneath the main path, dashed.
    "aside": {"style": "dashed", "color": "gray40", "fontcolor": "gray40"},
    # The loop of the lowest finished state hangs below it, clear of the edges coming in.
    "below": {"tailport": "s", "headport": "s"},
    # A transition the drawn operation took.
    "taken": {"style": "solid", "color": "darkorange3", "fontcolor": "darkorange3",
              "penwidth": "2"},
    # A change the operation's history holds but the table does not make (``unexplained``).
    "outside": {"style": "dotted"},
}


class _Drawing:
    """Styles shared by both diagram machines: plain nodes, visited and current ones."""

    style_attributes: dict[str, Any] = {  # noqa: RUF012 - what transitions reads
        "node": _NODE_STYLES, "edge": _EDGE_STYLES, "graph": _GRAPH_STYLES,
    }


class _StatesMachine(_Drawing, GraphMachine):
    """A machine drawn as a flat state diagram."""


class _Step(NestedState):
    separator = _SEPARATOR


class _StepsMachine(_Drawing, HierarchicalGraphMachine):  # type: ignore[misc]
    """A machine whose states hold their steps, drawn as composite states."""

    state_cls = _Step


class _Labels:
    """The engines' edge labels, each event taken followed by its takings."""

    #: ``(source, dest, event)`` of an edge taken → what follows its event in its label.
    notes: Mapping[tuple[str, str, str], str] = {}

    def _transition_label(self, tran: dict[str, Any]) -> str:
        label = cast("str", super()._transition_label(tran))  # type: ignore[misc]
        if "label" in tran:
            return label
        source = tran["source"]
        note = self.notes.get((source, tran.get("dest", source), _plain(tran["trigger"])))
        return label if note is None else label + note

    def _add_edges(self, transitions: list[dict[str, Any]], container: Any) -> None:  # noqa: ANN401
        # An edge joins its events' labels in order; the events taken go last, so that the
        # takings close the label (``fail | invalidate`` then ``3. ...`` for the invalidation).
        def edge(tran: dict[str, Any]) -> tuple[str, str]:
            return tran["source"], tran.get("dest", tran["source"])

        first: dict[tuple[str, str], int] = {}
        for index, tran in enumerate(transitions):
            first.setdefault(edge(tran), index)
        taken = {(source, dest, event) for source, dest, event in self.notes}
        super()._add_edges(sorted(transitions, key=lambda tran: (  # type: ignore[misc]
            first[edge(tran)], (*edge(tran), _plain(tran["trigger"])) in taken)), container)

    def _create_edge_attr(
        self, src: str, dst: str, transition: dict[str, Any],
    ) -> dict[str, Any]:
        # Only the nested engines call this, for each edge they draw.
        if not transition.get("trigger"):
            # An edge only the path has (between steps of two states): its events and takings.
            label = " | ".join(event + note for (source, dest, event), note in self.notes.items()
                               if (source, dest) == (src, dst))
            transition = {"trigger": "", "label": label, "source": src, "dest": dst}
        return cast("dict[str, Any]", super()._create_edge_attr(  # type: ignore[misc]
            src, dst, transition))


class _DotStates(_Labels, _graphviz.Graph):
    """The flat Graphviz engine with the path's labels."""


class _DotSteps(_Labels, _graphviz.NestedGraph):
    """The nested Graphviz engine with the path's labels."""


class _MermaidStates(_Labels, _mermaid.Graph):
    """The flat Mermaid engine with the path's labels."""


class _MermaidSteps(_Labels, _mermaid.NestedGraph):
    """The nested Mermaid engine with the path's labels."""


_GRAPHS: Final[Mapping[tuple[bool, bool], type[_Labels]]] = {
    (False, False): _DotStates, (False, True): _DotSteps,
    (True, False): _MermaidStates, (True, True): _MermaidSteps,
}


Highlight: TypeAlias = Operation | State | str | None
#: Which state each step belongs to.
StepStates: TypeAlias = Mapping[ProgressStep, State] | Mapping[str, str]
#: One operation's history, oldest first (:meth:`ImportService.history
#: <importstate.service.ImportService.history>`).
History: TypeAlias = Sequence[HistoryEntry]


def state_diagram(  # noqa: PLR0913 - every argument after the table is keyword-only
    definition: MachineDefinition = DEFINITION,
    *,
    format: Format | str = Format.MERMAID,  # noqa: A002 - the word users know
    highlight: Highlight = None,
    title: str = STATES_TITLE,
    events: bool = False,
    history: History | None = None,
) -> str:
    """The states of ``definition`` and every event between them, as diagram text.

    Args:
        definition: the table to draw (an embedder's extended one, say).
        format: ``mermaid``, ``dot`` or ``svg``.
        highlight: an operation (its state is highlighted) or a state name.
        title: the diagram's title.
        events: name the listener's events on the edges (see the module).
        history: one operation's history: draw the path it took (see the module);
            the default title then names the operation and the day. A change
            the table does not make (an ``unexplained`` entry) is drawn as an
            edge of its own, dotted.

    Raises:
        GraphvizNotFound: ``svg`` without Graphviz's ``dot`` on ``PATH``.
        ValueError: ``format`` or ``highlight`` names nothing known; both
            ``highlight`` and ``history`` given; ``history`` holds more than
            one operation.
    """
    fmt = Format(format)
    drawn = _in_drawing_order(with_events(definition) if events else definition)
    machine = cast("_StatesMachine", build_machine(
        drawn, machine_class=_StatesMachine, graph_engine=_engine(fmt), title=title,
    ))
    if events:
        machine.add_transition(_BATCH, str(State.IMPORTING), str(State.IMPORTING))
    path = _path(history, highlight, definition, _state_node)
    outside = _outside(path, definition)
    for move in outside:
        # A change the table does not explain (recorded as ``unexplained``) gets an edge of its own.
        machine.add_transition(move.event, move.source, move.dest)
    graph = _graph(machine, fmt, path, steps=False)
    _style_edges(machine, graph, _edge_roles(definition), path, outside)
    if path:
        _mark(graph, path)
    else:
        state = _highlighted_state(highlight, definition)
        if state is not None:
            graph.set_node_style(state, "active")
    drawing = graph.get_graph(title=_titled(title, STATES_TITLE, history))
    if fmt is not Format.MERMAID:
        _rank_finished(drawing, definition)
    return _output(drawing, fmt)


def steps_diagram(  # noqa: PLR0913 - every argument after the table is keyword-only
    definition: MachineDefinition = DEFINITION,
    *,
    steps: StepStates = STEP_STATE,
    format: Format | str = Format.MERMAID,  # noqa: A002 - the word users know
    highlight: Highlight = None,
    title: str = STEPS_TITLE,
    events: bool = False,
    history: History | None = None,
) -> str:
    """Each state of ``definition`` with its ``steps`` inside, in their natural order.

    ``steps`` maps each step to its state (default: the twenty steps of
    Behaviour: steps); consecutive steps of one state are joined by ``advance``
    edges, down a column, the states top to bottom. An
    operation given as ``highlight`` has its state and step highlighted
    (Mermaid styles states only). ``events`` names the listener's events on
    the edges, and loops on each step where a run commits batches.
    ``history`` draws the path one operation took, from step to step.

    Raises:
        GraphvizNotFound: ``svg`` without Graphviz's ``dot`` on ``PATH``.
        ValueError: ``format`` or ``highlight`` names nothing known, a step
            belongs to a state the definition lacks, both ``highlight`` and
            ``history`` are given, or ``history`` holds more than one
            operation or a step ``steps`` does not place.
    """
    fmt = Format(format)
    machine = cast("_StepsMachine", build_machine(
        _in_drawing_order(with_events(definition) if events else definition),
        machine_class=_StepsMachine, graph_engine=_engine(fmt), title=title,
    ))
    machine.machine_attributes = {**machine.machine_attributes, "rankdir": "TB"}
    machine.style_attributes = {**machine.style_attributes, "graph": _STEPS_GRAPH_STYLES}
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
        # Edges between clusters end at the cluster's border only in a compound graph;
        # Mermaid knows neither attribute.
        machine.machine_attributes = {**machine.machine_attributes, **_STEPS_LAYOUT}
    path = _path(history, highlight, definition, _step_node(grouped))
    numbers = {move.number for move in _outside(
        _path(history, highlight, definition, _state_node), definition)}
    outside = [move for move in path if move.number in numbers]
    graph = _graph(machine, fmt, path, steps=True)
    _style_edges(machine, graph, _edge_roles(definition), path, outside)
    if path:
        _mark(graph, path)
    else:
        for name in _highlighted_steps(highlight, definition, grouped):
            graph.set_node_style(name, "active")
    drawing = graph.get_graph(title=_titled(title, STEPS_TITLE, history))
    if fmt is Format.MERMAID:
        # The engine styles only top-level states; the steps visited are classed here.
        drawing.source += "".join(
            f"\n  Class {node} s_{graph.custom_styles['node'][node]}"
            for node in _operation_path.visited(path) if _SEPARATOR in node)
    else:
        _stack_states(drawing, grouped, definition)
    return _output(drawing, fmt)


def _graph(machine: GraphMachine, fmt: Format, path: list[_operation_path.Move], *,
           steps: bool) -> Any:  # noqa: ANN401 - transitions' graph objects are untyped
    graph = cast("Any", _GRAPHS[fmt is Format.MERMAID, steps])(machine)
    graph.notes = _notes(path, mermaid=fmt is Format.MERMAID)
    return graph


def _in_drawing_order(definition: MachineDefinition) -> MachineDefinition:
    """``definition`` with its finished states last, in :data:`_FINISHED_ORDER`."""
    finished = [str(state) for state in _FINISHED_ORDER if str(state) in definition.states]
    others = [state for state in definition.states if state not in finished]
    return attrs.evolve(definition, states=(*others, *finished))


def _main_path(definition: MachineDefinition) -> list[str]:
    """The states on the way to ``done``: the initial one, then in the steps' natural order."""
    states = [str(definition.initial)]
    for step in ProgressStep:
        state = str(step.state)
        if state not in states and state in definition.states:
            states.append(state)
        if step.state in FINISHED_STATES:
            break
    return states


def _table_edges(definition: MachineDefinition) -> set[tuple[str, str, str]]:
    return {(str(source), str(row.dest), row.event)
            for row in definition.transitions for source in row.sources}


def _edge_roles(definition: MachineDefinition) -> dict[tuple[str, str], list[str]]:
    """Each edge's layout roles (see :data:`_EDGE_STYLES`)."""
    edges = {(source, dest) for source, dest, _ in _table_edges(definition)}
    roles: dict[tuple[str, str], list[str]] = {}
    for pair in itertools.pairwise(_main_path(definition)):
        if pair in edges:
            roles.setdefault(pair, []).append("main")
    lowest = [str(state) for state in _FINISHED_ORDER if str(state) in definition.states][-1:]
    for row in definition.transitions:
        for source in row.sources if row.invalidates else ():
            pair = (str(source), str(row.dest))
            roles.setdefault(pair, []).append("aside")
            if [*pair] == lowest * 2:
                roles[pair].append("below")
    return roles


def _outside(path: list[_operation_path.Move],
             definition: MachineDefinition) -> list[_operation_path.Move]:
    """The moves of ``path`` (drawn between states) that no row of ``definition`` makes."""
    table = _table_edges(definition)
    return [move for move in path if (move.source, move.dest, move.event) not in table]


def _style_edges(machine: GraphMachine, graph: Any,  # noqa: ANN401 - transitions' graph
                 roles: Mapping[tuple[str, str], list[str]],
                 path: list[_operation_path.Move], outside: list[_operation_path.Move]) -> None:
    """Give each edge the style of its roles, registering the combined styles on ``machine``."""
    every = {pair: list(names) for pair, names in roles.items()}
    for move in path:
        every.setdefault((move.source, move.dest), []).append("taken")
    for move in outside:
        every[move.source, move.dest].append("outside")
    styles: dict[str, Any] = {**cast("dict[str, Any]", machine.style_attributes["edge"])}
    for (source, dest), names in every.items():
        name = "+".join(dict.fromkeys(names))
        styles[name] = {key: value for role in names for key, value in _EDGE_STYLES[role].items()}
        graph.custom_styles["edge"][source][dest] = name
    machine.style_attributes = {**machine.style_attributes, "edge": styles}


def _path(history: History | None, highlight: Highlight, definition: MachineDefinition,
          node_of: _operation_path.NodeOf) -> list[_operation_path.Move]:
    if history is None:
        return []
    if highlight is not None:
        msg = "give either highlight or history: the path ends at the operation's state"
        raise ValueError(msg)
    invalidating = {row.event for row in definition.transitions if row.invalidates}
    return _operation_path.moves(history, node_of, invalidating)


def _state_node(status: ProgressStep | None, valid: bool) -> str:
    return str(state_of(status, valid=valid))


def _step_node(grouped: Mapping[str, list[str]]) -> _operation_path.NodeOf:
    owner = {step: state for state, names in grouped.items() for step in names}

    def node(status: ProgressStep | None, valid: bool) -> str:  # noqa: ARG001 - a NodeOf
        if status is None:
            return str(State.NONE)
        if str(status) not in owner:
            msg = f"the history reaches {status!s}, which the steps diagram does not place"
            raise ValueError(msg)
        return _SEPARATOR.join((owner[str(status)], str(status)))

    return node


def _notes(path: Iterable[_operation_path.Move], *, mermaid: bool) -> dict[
        tuple[str, str, str], str]:
    """Each edge taken → its takings, one a line after its event."""
    takings: dict[tuple[str, str, str], list[str]] = {}
    for move in path:
        takings.setdefault((move.source, move.dest, move.event), []).append(move.taking())
    if mermaid:
        # Mermaid's state diagrams long ended a transition's label at a colon; the entity
        # code is drawn as a colon by every version.
        return {edge: "".join(f"<br>{line.replace(':', '#58;')}" for line in lines)
                for edge, lines in takings.items()}
    return {edge: "".join(rf"\n{line}" for line in lines) for edge, lines in takings.items()}


def _mark(graph: Any, path: list[_operation_path.Move]) -> None:  # noqa: ANN401 - transitions'
    """Mark each node ``path`` visits, and (with its state) the one it ends in."""
    here = path[-1].dest
    for node in _operation_path.visited(path):
        style = "active" if node == here else "visited"
        graph.set_node_style(node, style)
        if _SEPARATOR in node:
            state = node.split(_SEPARATOR)[0]
            if graph.custom_styles["node"][state] != "active":
                graph.set_node_style(state, style)


def _titled(title: str, default: str, history: History | None) -> str:
    """The default title with the operation and its day(s) added, when a path is drawn."""
    if not history or title != default:
        return title
    days = sorted({f"{entry.at.astimezone(dt.UTC):%Y-%m-%d}" for entry in history})
    when = days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}"
    return f"{title}, the path of operation {history[0].operation_id} on {when} (times UTC)"


def _rank_finished(drawing: Any, definition: MachineDefinition) -> None:  # noqa: ANN401
    """The finished states on the last rank, top to bottom in :data:`_FINISHED_ORDER`."""
    finished = [str(state) for state in _FINISHED_ORDER if str(state) in definition.states]
    with drawing.subgraph() as rank:
        rank.attr(rank="same")
        for state in finished:
            rank.node(state)
    for upper, lower in itertools.pairwise(finished):
        drawing.edge(upper, lower, style="invis")


def _stack_states(drawing: Any, grouped: Mapping[str, list[str]],  # noqa: ANN401
                  definition: MachineDefinition) -> None:
    """Rank each state an edge leads to below every row of the state it leaves.

    The engine joins states by a point at each cluster's top, which lets the
    rows of one state overlap the next; an invisible edge from the last step
    keeps the next state below.
    """
    pairs = {(str(source), str(row.dest)) for row in definition.transitions
             for source in row.sources if str(source) != str(row.dest) and grouped.get(source)}
    for source, dest in sorted(pairs):
        drawing.edge(_SEPARATOR.join((source, grouped[source][-1])), dest, style="invis")


def _plain(event: str) -> str:
    """The machine event of an edge's trigger (``start / StateChanged`` → ``start``)."""
    return event.split(" / ", maxsplit=1)[0]


def _engine(fmt: Format) -> str:
    """The transitions engine drawing ``fmt``: DOT and SVG need the diagrams extra's graphviz."""
    if fmt is not Format.MERMAID:
        # Without graphviz, transitions would quietly draw Mermaid instead.
        with needs("diagrams", "a DOT or SVG diagram"):
            importlib.import_module("graphviz")
    return _ENGINES[fmt]


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
