import datetime as dt
import importlib.util
import itertools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from importstate import HistoryEntry, Operation, ProgressStep, State, diagrams, machine
from importstate.errors import GraphvizNotFound, InvalidTransition
from importstate.machine import DEFINITION, Transition
from importstate.steps import state_of, steps_of

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "diagrams"
EDGE = re.compile(r"^\s*(\w+) --> (\w+): (.+)$", re.MULTILINE)
DOT_EDGE = re.compile(r'^\s*(\w+) -> (\w+) \[label=(?:"([^"]*)"|(\w+))', re.MULTILINE)
NOW = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


def table_edges(definition=DEFINITION):
    return {
        (str(source), str(row.dest), row.event)
        for row in definition.transitions
        for source in row.sources
    }


def drawn_edges(text, pattern=EDGE):
    return {
        (source, dest, event.strip())
        for source, dest, *labels in pattern.findall(text)
        for event in "".join(labels).split(" | ")
    }


@pytest.mark.parametrize(
    ("name", "draw"),
    [
        ("states.mmd", lambda: diagrams.state_diagram(format="mermaid")),
        ("states.dot", lambda: diagrams.state_diagram(format="dot")),
        ("steps.mmd", lambda: diagrams.steps_diagram(format="mermaid")),
        ("steps.dot", lambda: diagrams.steps_diagram(format="dot")),
        ("events.mmd", lambda: diagrams.state_diagram(format="mermaid", events=True)),
    ],
)
def test_committed_diagrams_match_the_machine(name, draw):
    committed = (COMMITTED / name).read_text(encoding="utf-8")
    assert committed == draw(), f"diagrams/{name} is stale: run `make diagrams`"


def test_readme_shows_the_current_state_diagram():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```mermaid\n(.*?)```", readme, re.DOTALL)
    assert diagrams.state_diagram() in blocks, "README is stale: paste diagrams/states.mmd in"


def test_every_state_and_event_of_the_table_is_drawn():
    text = diagrams.state_diagram()
    for state in State:
        assert f'state "{state}" as {state}' in text
    assert drawn_edges(text) == table_edges()
    assert ("none", "new", "create") in drawn_edges(text)
    invalidations = {(s, d) for s, d, e in drawn_edges(text) if e == "invalidate"}
    assert {(str(s), "error") for s in (State.NEW, State.LOADING, State.READY,
                                         State.IMPORTING, State.CANCELED)} <= invalidations
    assert "[*] --> none" in text


def test_the_dot_diagram_has_the_same_edges():
    text = diagrams.state_diagram(format="dot")
    assert text.startswith('digraph "importstate: operation states" {')
    assert drawn_edges(text, DOT_EDGE) == table_edges()


def test_steps_are_drawn_inside_their_states():
    text = diagrams.steps_diagram()
    blocks = dict(re.findall(r"^  state (\w+) \{\n(.*?)^  \}", text, re.DOTALL | re.MULTILINE))
    for state in State:
        inside = re.findall(r'state "(\w+)" as ', blocks.get(str(state), ""))
        assert inside == [str(step) for step in steps_of(state)]
    assert sum(len(steps_of(s)) for s in State) == len(ProgressStep) == 20
    # Consecutive steps of loading and importing are joined in their natural order.
    advances = {(s, d) for s, d, e in drawn_edges(text) if e == "advance" and s != d}
    for state in (State.LOADING, State.IMPORTING):
        names = [f"{state}__{step}" for step in steps_of(state)]
        assert set(itertools.pairwise(names)) <= advances
    # The state-level events are all still there.
    assert table_edges() <= drawn_edges(text)


def test_steps_dot_puts_each_state_in_a_cluster():
    text = diagrams.steps_diagram(format="dot")
    assert "compound=true" in text
    for state in State:
        if steps_of(state):
            assert f"subgraph cluster_{state} {{" in text
    for step in ProgressStep:
        assert f'[label="{step}\\l"' in text


def test_output_is_byte_identical_across_calls_and_hash_seeds():
    code = (
        "import sys; from importstate import diagrams as d;"
        "sys.stdout.write(d.state_diagram() + d.steps_diagram(format='dot'))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("0", "1", "12345")
    }
    assert len(outputs) == 1
    assert outputs.pop().decode() == diagrams.state_diagram() + diagrams.steps_diagram(format="dot")


def operation(status, *, valid=True):
    created = Operation.create(user="admin", at=NOW)
    return attrs.evolve(created, status=ProgressStep(status), valid=valid)


def test_highlight_marks_the_operations_state():
    plain = diagrams.state_diagram()
    assert "s_active\n" not in plain.split("classDef s_active")[1]
    text = diagrams.state_diagram(highlight=operation("importer_importing_users"))
    assert "Class importing s_active" in text
    assert text.count(" s_active\n") == 1
    invalid = diagrams.state_diagram(highlight=operation("importer_user_selection", valid=False))
    assert "Class error s_active" in invalid
    assert "Class none s_active" in diagrams.state_diagram(highlight=State.NONE)
    dot = diagrams.state_diagram(format="dot", highlight="done")
    assert re.search(r"^\s*done \[.*peripheries=2", dot, re.MULTILINE)


def test_highlight_in_the_steps_diagram_marks_state_and_step():
    op = operation("importer_preparing_users")
    mermaid = diagrams.steps_diagram(highlight=op)
    assert "Class loading s_active" in mermaid
    dot = diagrams.steps_diagram(format="dot", highlight=op)
    assert re.search(
        r"^\s*loading__importer_preparing_users \[.*peripheries=2", dot, re.MULTILINE,
    )


def test_highlight_must_name_a_state():
    with pytest.raises(ValueError, match="not a state"):
        diagrams.state_diagram(highlight="paused")


def test_an_embedders_extended_definition_is_drawn():
    extended = attrs.evolve(
        DEFINITION,
        states=(*DEFINITION.states, "validating"),
        transitions=(
            *DEFINITION.transitions,
            Transition("validate", (State.READY,), "validating"),
            Transition("approve", ("validating",), State.READY),
        ),
    )
    text = diagrams.state_diagram(extended, highlight="validating", title="with validation")
    assert text.startswith("---\nwith validation\n---\n")
    assert drawn_edges(text) == table_edges(extended)
    assert "Class validating s_active" in text
    steps = diagrams.steps_diagram(
        extended, steps={"checking": "validating", "checked": "validating"},
    )
    assert "validating__checking --> validating__checked: advance" in steps
    with pytest.raises(ValueError, match="does not have"):
        diagrams.steps_diagram(steps={"x": "nowhere"})


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="png"):
        diagrams.state_diagram(format="png")


def test_svg_without_graphviz_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(GraphvizNotFound, match="install Graphviz"):
        diagrams.state_diagram(format="svg")


def test_svg_runs_dot_on_the_dot_text(monkeypatch, tmp_path):
    # A stand-in `dot` that records its arguments and input and answers with an SVG.
    fake = tmp_path / "dot"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import sys, pathlib\n"
        "here = pathlib.Path(sys.argv[0]).parent\n"
        "(here / 'args').write_text(' '.join(sys.argv[1:]))\n"
        "(here / 'input').write_text(sys.stdin.read())\n"
        "print('<svg>drawn</svg>')\n",
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert diagrams.state_diagram(format="svg") == "<svg>drawn</svg>\n"
    assert (tmp_path / "args").read_text() == "-Tsvg"
    assert (tmp_path / "input").read_text() == diagrams.state_diagram(format="dot")


@pytest.mark.skipif(
    shutil.which("dot") is None and os.environ.get("CI") != "true",
    reason="Graphviz's dot is not installed (under CI=true this test must run)",
)
def test_real_graphviz_lays_out_both_diagrams():
    assert "<svg" in diagrams.state_diagram(format="svg")
    assert "<svg" in diagrams.steps_diagram(format="svg")


def test_with_events_every_edge_that_changes_the_status_names_state_changed():
    drawn = drawn_edges(diagrams.state_diagram(events=True))
    plain = {(source, dest, event.removesuffix(" / StateChanged"))
             for source, dest, event in drawn if "BatchCommitted" not in event}
    assert plain == table_edges()
    # Staging more while ready keeps the status (user selection): no StateChanged there.
    unchanged = {edge for edge in drawn if not edge[2].endswith(" / StateChanged")}
    assert unchanged == {("ready", "ready", "stage"),
                         ("importing", "importing", "batch / BatchCommitted")}


def test_with_events_the_steps_diagram_loops_batches_on_each_importing_phase():
    text = diagrams.steps_diagram(events=True)
    loops = {source for source, dest, event in drawn_edges(text)
             if event == "batch / BatchCommitted" and source == dest}
    assert loops == {f"importing__{step}" for step in (
        ProgressStep.IMPORTING_USERS, ProgressStep.IMPORTING_CHANNELS,
        ProgressStep.IMPORTING_MESSAGES)}
    assert "advance / StateChanged" in text


def test_an_embedders_own_event_is_taken_to_change_the_status():
    extended = attrs.evolve(DEFINITION, transitions=(
        *DEFINITION.transitions,
        Transition("archive", (State.DONE,), State.DONE, doc="archived"),
    ))
    assert ("done", "done", "archive / StateChanged") in drawn_edges(
        diagrams.state_diagram(extended, events=True))


def dot_edges(text):
    """``(source, dest) -> the attributes of each edge between them`` in DOT text."""
    edges = {}
    for source, dest, attributes in re.findall(r"^\s*(\w+) -> (\w+) \[(.*)\]$", text,
                                               re.MULTILINE):
        edges.setdefault((source, dest), []).append(attributes)
    return edges


def test_the_finished_states_share_the_last_rank_in_order():
    text = diagrams.state_diagram(format="dot")
    ranks = re.findall(r"\{\n\s*rank=same\n((?:\s*\w+\n)+)\s*\}", text)
    assert [block.split() for block in ranks] == [["done", "canceled", "error"]]
    edges = dot_edges(text)
    assert edges["done", "canceled"] == ["style=invis"]
    assert edges["canceled", "error"][-1] == "style=invis"
    # The way to done is weighted straight; nothing else is.
    weighted = {pair for pair, [attributes, *_] in edges.items() if "weight=8" in attributes}
    assert weighted == {("none", "new"), ("new", "loading"), ("loading", "ready"),
                        ("ready", "importing"), ("importing", "done")}


def test_invalidation_edges_are_dashed_aside_from_the_main_path():
    edges = dot_edges(diagrams.state_diagram(format="dot"))
    dashed = {pair for pair, [attributes, *_] in edges.items() if "style=dashed" in attributes}
    invalidating = {(str(source), str(row.dest)) for row in DEFINITION.transitions
                    if row.invalidates for source in row.sources}
    assert dashed == invalidating
    assert "tailport=s" in edges["error", "error"][0]


def test_the_steps_diagram_runs_top_to_bottom_with_columns_of_steps():
    text = diagrams.steps_diagram(format="dot")
    assert "rankdir=TB" in text
    assert "rank=source" not in text  # the engine's one-row clusters
    assert "direction TB" in diagrams.steps_diagram()
    # Each state with steps sits below the last step of every state leading to it.
    edges = dot_edges(text)
    assert edges["loading__importer_preparing_contacts", "ready"] == ["style=invis"]
    assert edges["importing__importer_finishing", "done"] == ["style=invis"]


def svg_width_px(svg_text):
    points = float(re.search(r'<svg width="([\d.]+)pt"', svg_text).group(1))
    return points * 4 / 3


@pytest.mark.skipif(
    shutil.which("dot") is None and os.environ.get("CI") != "true",
    reason="Graphviz's dot is not installed (under CI=true this test must run)",
)
def test_the_steps_svg_fits_a_page():
    assert svg_width_px(diagrams.steps_diagram(format="svg")) <= 1600
    assert svg_width_px(diagrams.state_diagram(format="svg")) <= 2000


# -- the path an operation took ---------------------------------------------------------

S = ProgressStep
T0 = dt.datetime(2026, 12, 2, 4, 12, 0, 250_000, tzinfo=dt.UTC)


def entry(before, after, event, seconds, *, actor="user:admin", operation="op1"):
    return HistoryEntry(operation, before, after, event, T0 + dt.timedelta(seconds=seconds),
                        actor)


#: new → ready → importing → canceled, as a run records it.
CANCELLED = [
    entry(None, S.NEW, "create", 0, actor="cli:admin"),
    entry(S.NEW, S.USER_SELECTION, "stage", 1.52),
    entry(S.USER_SELECTION, S.IMPORTING_STARTED, "start", 3.92),
    entry(S.IMPORTING_STARTED, S.IMPORTING_USERS, "advance", 4.0, actor="run"),
    entry(S.IMPORTING_USERS, S.IMPORT_CANCELLED, "cancel", 7.1),
]
#: Each edge the cancelled operation took in the states diagram → its label after the event.
CANCELLED_STATES = {
    ("none", "new", "create"): ["1. 04:12:00.250"],
    ("new", "ready", "stage"): ["2. 04:12:01.770 (+1.5 s)"],
    ("ready", "importing", "start"): ["3. 04:12:04.170 (+2.4 s)"],
    ("importing", "importing", "advance"): ["4. 04:12:04.250 (+80 ms)"],
    # The time in importing counts from the start: the loop does not restart it.
    ("importing", "canceled", "cancel"): ["5. 04:12:07.350 (+3.1 s)"],
}
CANCELLED_STEPS = {
    ("none", "new__importer_new", "create"): ["1. 04:12:00.250"],
    ("new__importer_new", "ready__importer_user_selection", "stage"):
        ["2. 04:12:01.770 (+1.5 s)"],
    ("ready__importer_user_selection", "importing__importer_importing_started", "start"):
        ["3. 04:12:04.170 (+2.4 s)"],
    ("importing__importer_importing_started", "importing__importer_importing_users",
     "advance"): ["4. 04:12:04.250 (+80 ms)"],
    # The time at a step counts from that step.
    ("importing__importer_importing_users", "canceled__importer_import_cancelled", "cancel"):
        ["5. 04:12:07.350 (+3.1 s)"],
}
# The events of an edge, then its takings.
MERMAID_PATH = re.compile(r"^\s*(\w+) --> (\w+): ([^<\n]+)((?:<br>[^<\n]+)+)$", re.MULTILINE)
DOT_PATH = re.compile(r'^\s*(\w+) -> (\w+) \[label="([^"\\]+)((?:\\n[^"\\]+)+)"(.*)\]$',
                      re.MULTILINE)


def mermaid_path(text):
    """The edges with takings, each one a line; a colon is written as its entity code."""
    assert ":" not in "".join(takings for *_, takings in MERMAID_PATH.findall(text))
    return {(source, dest, event): takings.replace("#58;", ":").split("<br>")[1:]
            for source, dest, event, takings in MERMAID_PATH.findall(text)}


def dot_path(text):
    """The edges drawn as taken, each with its takings; every one has the taken style."""
    taken = {}
    for source, dest, event, takings, attributes in DOT_PATH.findall(text):
        assert "penwidth=2" in attributes
        assert "color=darkorange3" in attributes
        taken[source, dest, event] = takings.split("\\n")[1:]
    styled = {pair for pair, attributes in dot_edges(text).items()
              if any("penwidth=2" in a for a in attributes)}
    assert styled == {(source, dest) for source, dest, _ in taken}
    return taken


def mermaid_classes(text):
    return dict(re.findall(r"^\s*Class (\w+) s_(\w+)$", text, re.MULTILINE))


def dot_node_styles(text):
    """Each node (or cluster) → ``visited``, ``active`` or ``default``, by its colours."""
    styles = {}
    for name, attributes in re.findall(r"^\s*(\w+) \[(label=.*)\]$", text, re.MULTILINE):
        styles[name] = _style_of(attributes)
    for name, attributes in re.findall(r"subgraph cluster_(\w+) \{\n\s*graph \[(.*)\]", text):
        styles[name] = _style_of(attributes)
    return styles


def _style_of(attributes):
    if "peripheries=2" in attributes or "fillcolor=lightgoldenrod1" in attributes:
        return "active"
    return "visited" if "fillcolor=lightyellow" in attributes else "default"


def test_the_path_of_a_cancelled_operation_in_mermaid():
    text = diagrams.state_diagram(history=CANCELLED)
    assert mermaid_path(text) == CANCELLED_STATES
    classes = mermaid_classes(text)
    assert {state for state, style in classes.items() if style == "visited"} == {
        "none", "new", "ready", "importing"}
    assert {state for state, style in classes.items() if style == "active"} == {"canceled"}
    assert text.startswith(
        "---\nimportstate: operation states, the path of operation op1 on 2026-12-02"
        " (times UTC)\n---\n")
    # The rest of the machine is still drawn.
    assert drawn_edges(text) >= table_edges() - set(CANCELLED_STATES)


def test_the_path_of_a_cancelled_operation_in_dot():
    text = diagrams.state_diagram(format="dot", history=CANCELLED)
    assert dot_path(text) == CANCELLED_STATES
    styles = dot_node_styles(text)
    assert styles == {"none": "visited", "new": "visited", "loading": "default",
                      "ready": "visited", "importing": "visited", "done": "default",
                      "canceled": "active", "error": "default"}


def test_the_path_of_a_cancelled_operation_through_its_steps():
    mermaid = diagrams.steps_diagram(history=CANCELLED)
    assert mermaid_path(mermaid) == CANCELLED_STEPS
    classes = mermaid_classes(mermaid)
    assert {name for name, style in classes.items() if style == "visited"} == {
        "none", "new", "ready", "importing", "new__importer_new",
        "ready__importer_user_selection", "importing__importer_importing_started",
        "importing__importer_importing_users"}
    assert {name for name, style in classes.items() if style == "active"} == {
        "canceled", "canceled__importer_import_cancelled"}
    dot = diagrams.steps_diagram(format="dot", history=CANCELLED)
    assert dot_path(dot) == CANCELLED_STEPS
    styles = dot_node_styles(dot)
    assert styles["canceled"] == styles["canceled__importer_import_cancelled"] == "active"
    assert styles["importing"] == styles["importing__importer_importing_users"] == "visited"
    assert styles["loading"] == styles["importing__importer_finishing"] == "default"


@pytest.mark.skipif(
    shutil.which("dot") is None and os.environ.get("CI") != "true",
    reason="Graphviz's dot is not installed (under CI=true this test must run)",
)
@pytest.mark.parametrize(("draw", "edges"), [
    (diagrams.state_diagram, CANCELLED_STATES), (diagrams.steps_diagram, CANCELLED_STEPS),
])
def test_the_path_of_a_cancelled_operation_in_svg(draw, edges):
    text = draw(format="svg", history=CANCELLED)
    # Graphviz writes each line of a label as its own text element.
    lines = re.findall(r"<text [^>]*>([^<]*)</text>", text)
    for takings in edges.values():
        for taking in takings:
            assert taking in lines
    assert lines.count("canceled") == 1
    # One thick dark orange line for each edge taken (dot writes the colour in hex).
    assert len(re.findall(r'<path fill="none" stroke="#cd6600" stroke-width="2"', text)) == len(
        edges)
    assert 'fill="#ffec8b"' in text  # lightgoldenrod1: where the operation is


def test_a_transition_taken_again_carries_all_its_numbers():
    history = [
        entry(None, S.NEW, "create", 0),
        entry(S.NEW, S.USER_SELECTION, "stage", 1),
        entry(S.USER_SELECTION, S.USER_SELECTION, "stage", 61.5),
        entry(S.USER_SELECTION, S.USER_SELECTION, "stage", 3 * 3600),
        entry(S.USER_SELECTION, S.IMPORT_CANCELLED, "cancel", 3 * 3600 + 1),
        entry(S.IMPORT_CANCELLED, S.IMPORT_CANCELLED, "invalidate", 2 * 86400,
              actor="operation:op2"),
    ]
    path = mermaid_path(diagrams.state_diagram(history=history))
    assert path["ready", "ready", "stage"] == [
        "3. 04:13:01.750 (+1 min 00 s)", "4. 07:12:00.250 (+2 h 59 min)"]
    # Invalidated, the cancelled operation is in error; its status stays the same.
    assert path["canceled", "error", "invalidate"] == ["6. 04:12:00.250 (+1 d 20 h)"]
    dot = diagrams.state_diagram(format="dot", history=history)
    assert dot_path(dot)["ready", "ready", "stage"] == [
        "3. 04:13:01.750 (+1 min 00 s)", "4. 07:12:00.250 (+2 h 59 min)"]
    assert dot_node_styles(dot)["error"] == "active"
    assert dot_node_styles(dot)["canceled"] == "visited"
    assert "2026-12-02 to 2026-12-04" in dot
    steps = mermaid_path(diagrams.steps_diagram(history=history))
    loop = ("ready__importer_user_selection", "ready__importer_user_selection", "stage")
    assert steps[loop] == ["3. 04:13:01.750 (+1 min 00 s)", "4. 07:12:00.250 (+2 h 59 min)"]
    assert steps["canceled__importer_import_cancelled", "canceled__importer_import_cancelled",
                 "invalidate"] == ["6. 04:12:00.250 (+1 d 20 h)"]


def test_the_labels_come_from_the_entries_alone():
    assert diagrams.state_diagram(history=CANCELLED) == diagrams.state_diagram(
        history=list(CANCELLED))
    later = [attrs.evolve(e, at=e.at + dt.timedelta(days=1)) for e in CANCELLED]
    text = diagrams.state_diagram(history=later)
    assert mermaid_path(text) == CANCELLED_STATES  # the same times of day and durations
    assert "on 2026-12-03" in text


def test_the_path_with_events_and_a_title_of_ones_own():
    text = diagrams.state_diagram(history=CANCELLED, events=True, title="what happened")
    assert text.startswith("---\nwhat happened\n---\n")
    assert "ready --> importing: start / StateChanged<br>3. 04#58;12#58;04.170 (+2.4 s)" in text


def test_an_empty_history_draws_the_machine_alone():
    assert diagrams.state_diagram(history=[]) == diagrams.state_diagram()
    assert diagrams.steps_diagram(format="dot", history=[]) == diagrams.steps_diagram(
        format="dot")


def test_a_path_is_one_operations_and_replaces_the_highlight():
    mixed = [*CANCELLED, entry(None, S.NEW, "create", 9, operation="op2")]
    with pytest.raises(ValueError, match="one operation"):
        diagrams.state_diagram(history=mixed)
    with pytest.raises(ValueError, match="highlight or history"):
        diagrams.steps_diagram(history=CANCELLED, highlight="ready")
    with pytest.raises(ValueError, match="does not place"):
        diagrams.steps_diagram(steps={"importer_new": "new"}, history=CANCELLED)


@pytest.mark.parametrize(("seconds", "shown"), [
    (0, "+0 ms"), (0.999, "+999 ms"), (2.45, "+2.4 s"), (59.99, "+59.9 s"),
    (185, "+3 min 05 s"), (7620, "+2 h 07 min"), (100_800, "+1 d 04 h"),
])
def test_time_spent_reads_at_a_glance(seconds, shown):
    history = [entry(None, S.NEW, "create", 0), entry(S.NEW, S.USER_SELECTION, "stage", seconds)]
    [taking] = mermaid_path(diagrams.state_diagram(history=history))["new", "ready", "stage"]
    assert taking.endswith(f" ({shown})")


# -- the README's picture ----------------------------------------------------------------


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location(
        "operation_path", ROOT / "examples" / "operation_path.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_is_a_cancelled_import_run_through_the_service(example):
    history = example.scripted_history()
    assert [(e.state_before, e.state_after, e.event, e.actor) for e in history] == [
        (State.NONE, State.NEW, "create", "cli:admin"),
        (State.NEW, State.READY, "stage", "user:admin"),
        (State.READY, State.IMPORTING, "start", "user:admin"),
        (State.IMPORTING, State.IMPORTING, "advance", "run"),
        (State.IMPORTING, State.CANCELED, "cancel", "user:admin"),
    ]
    assert [e.at for e in example.scripted_history()] == [e.at for e in history]


def test_the_committed_example_matches_the_script(example):
    committed = (COMMITTED / "operation-example.mmd").read_text(encoding="utf-8")
    assert committed == example.drawing(diagrams.Format.MERMAID), (
        "diagrams/operation-example.mmd is stale: run `make diagrams`")
    picture = (COMMITTED / "operation-example.svg").read_text(encoding="utf-8")
    lines = re.findall(r"<text [^>]*>([^<]*)</text>", picture)
    for takings in mermaid_path(committed).values():
        assert set(takings) <= set(lines), "diagrams/operation-example.svg is stale"


@st.composite
def histories(draw):
    """A walk through the shared machine from creation, as a store would record it."""
    status, valid = None, True
    entries, at = [], T0
    for _ in range(draw(st.integers(1, 12))):
        moves = []
        for event in machine.allowed_events(status, valid=valid):
            targets = [None]
            if event == machine.Event.ADVANCE:
                targets = [step for step in ProgressStep
                           if status and step.position > status.position]
            for step in targets:
                try:
                    moves.append((event, machine.fire(machine.Event(event), status, valid=valid,
                                                      step=step)))
                except InvalidTransition:
                    continue
        if not moves:
            break
        event, moved = draw(st.sampled_from(moves))
        at += dt.timedelta(milliseconds=draw(st.integers(0, 10**8)))
        entries.append(HistoryEntry("op", status, moved.status, event, at, "run"))
        status, valid = moved.status, moved.valid
    return entries, state_of(status, valid=valid)


@settings(max_examples=60, deadline=None)
@given(histories())
def test_every_change_of_a_history_is_drawn_once_in_order(walk):
    history, final = walk
    for draw, parse in ((diagrams.state_diagram, mermaid_path),
                        (diagrams.steps_diagram, mermaid_path)):
        takings = [t for ts in parse(draw(history=history)).values() for t in ts]
        assert sorted(int(t.split(".")[0]) for t in takings) == list(
            range(1, len(history) + 1))
    text = diagrams.state_diagram(history=history)
    classes = mermaid_classes(text)
    assert [state for state, style in classes.items() if style == "active"] == [str(final)]
    dot = diagrams.state_diagram(format="dot", history=history)
    assert sorted(int(t.split(".")[0]) for ts in dot_path(dot).values() for t in ts) == list(
        range(1, len(history) + 1))


@pytest.mark.parametrize(("event", "label"), [
    ("invalidate", "fail | invalidate"), ("fail", "invalidate | fail"),
])
def test_on_an_edge_of_several_events_the_one_taken_closes_the_label(event, label):
    history = [
        entry(None, S.NEW, "create", 0),
        entry(S.NEW, S.UPLOADING, "begin_loading", 1),
        entry(S.UPLOADING, S.UPLOADING if event == "invalidate" else S.IMPORT_FAILED, event, 2),
    ]
    assert mermaid_path(diagrams.state_diagram(history=history))["loading", "error", label] == [
        "3. 04:12:02.250 (+1.0 s)"]
    assert dot_path(diagrams.state_diagram(format="dot", history=history))[
        "loading", "error", label] == ["3. 04:12:02.250 (+1.0 s)"]


def test_a_change_the_table_does_not_make_is_drawn_dotted():
    # A status written behind the machine's back: the history records it as unexplained.
    history = [*CANCELLED[:4], entry(S.IMPORTING_USERS, S.DONE, "unexplained", 9)]
    text = diagrams.state_diagram(format="dot", history=history)
    edges = dot_edges(text)
    assert "style=dotted" in edges["importing", "done"][0]
    assert dot_path(text)["importing", "done", "finish | unexplained"] == [
        "5. 04:12:09.250 (+5.0 s)"]
    assert dot_node_styles(text)["done"] == "active"
    assert "style=dotted" not in "".join(a for pair, [a, *_] in edges.items()
                                         if pair != ("importing", "done"))
    steps = diagrams.steps_diagram(format="dot", history=history)
    moved = ("importing__importer_importing_users", "done__importer_done")
    assert "style=dotted" in dot_edges(steps)[moved][0]
    assert dot_path(steps)[(*moved, "unexplained")] == ["5. 04:12:09.250 (+5.0 s)"]
    mermaid = mermaid_path(diagrams.state_diagram(history=history))
    assert mermaid["importing", "done", "finish | unexplained"] == ["5. 04:12:09.250 (+5.0 s)"]
