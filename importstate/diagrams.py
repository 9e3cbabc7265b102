"""Diagrams of the machine the code runs, drawn by transitions' own diagram engines.

Both diagrams are built from a :class:`~importstate.machine.MachineDefinition`
(by default :data:`~importstate.machine.DEFINITION`, the table the shared
machine is built from) through :func:`~importstate.machine.build_machine`, so
a change to the table changes the drawing:

- :func:`state_diagram`: the states and every event between them;
- :func:`steps_diagram`: the same, with each state's progress steps inside it
  and ``advance`` edges in their natural order.

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

from transitions.extensions import GraphMachine, HierarchicalGraphMachine
from transitions.extensions.nesting import NestedState

from importstate.errors import GraphvizNotFound
from importstate.machine import DEFINITION, MachineDefinition, build_machine
from importstate.model import Operation
from importstate.steps import STEP_STATE, ProgressStep, State

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
) -> str:
    """The states of ``definition`` and every event between them, as diagram text.

    Args:
        definition: the table to draw (an embedder's extended one, say).
        format: ``mermaid``, ``dot`` or ``svg``.
        highlight: an operation (its state is highlighted) or a state name.
        title: the diagram's title.

    Raises:
        GraphvizNotFound: ``svg`` without Graphviz's ``dot`` on ``PATH``.
        ValueError: ``format`` or ``highlight`` names nothing known.
    """
    fmt = Format(format)
    machine = build_machine(
        definition, machine_class=_StatesMachine, graph_engine=_ENGINES[fmt], title=title,
    )
    graph = machine.graph_cls(machine)
    state = _highlighted_state(highlight, definition)
    if state is not None:
        graph.set_node_style(state, "active")
    return _output(graph.get_graph(title=title), fmt)


def steps_diagram(
    definition: MachineDefinition = DEFINITION,
    *,
    steps: StepStates = STEP_STATE,
    format: Format | str = Format.MERMAID,  # noqa: A002 - the word users know
    highlight: Highlight = None,
    title: str = STEPS_TITLE,
) -> str:
    """Each state of ``definition`` with its ``steps`` inside, in their natural order.

    ``steps`` maps each step to its state (default: the twenty steps of
    SPEC §1); consecutive steps of one state are joined by ``advance``
    edges. An operation given as ``highlight`` has its state and step
    highlighted (Mermaid styles states only).

    Raises:
        GraphvizNotFound: ``svg`` without Graphviz's ``dot`` on ``PATH``.
        ValueError: ``format`` or ``highlight`` names nothing known, or a step
            belongs to a state the definition lacks.
    """
    fmt = Format(format)
    machine = cast("_StepsMachine", build_machine(
        definition, machine_class=_StepsMachine, graph_engine=_ENGINES[fmt], title=title,
    ))
    grouped = _group(steps, definition)
    for state, names in grouped.items():
        machine.get_state(state).add_substates([_Step(name) for name in names])
        for earlier, later in itertools.pairwise(names):
            machine.add_transition(
                "advance", _SEPARATOR.join((state, earlier)), _SEPARATOR.join((state, later)),
            )
    if fmt is not Format.MERMAID:
        # Edges between clusters end at the cluster's border only in a compound graph.
        machine.machine_attributes = {**machine.machine_attributes, "compound": "true"}
    graph = machine.graph_cls(machine)
    for name in _highlighted_steps(highlight, definition, grouped):
        graph.set_node_style(name, "active")
    return _output(graph.get_graph(title=title), fmt)


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
