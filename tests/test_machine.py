import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import transitions

from importstate import InvalidTransition, Operation, ProgressStep, State, state_of
from importstate.machine import DEFINITION, Event, allowed_events, allows, events, fire

P = ProgressStep

# (event, from status, valid, step) -> (status, valid) after it; Behaviour: states, service, counts.
MOVES = [
    ("create", None, True, None, P.NEW, True),
    ("begin_loading", P.NEW, True, None, P.UPLOADING, True),
    ("advance", P.UPLOADING, True, P.PREPARING_USERS, P.PREPARING_USERS, True),
    ("finish_loading", P.PREPARING_CONTACTS, True, None, P.USER_SELECTION, True),
    ("stage", P.NEW, True, None, P.USER_SELECTION, True),
    ("stage", P.USER_SELECTION, True, None, P.USER_SELECTION, True),
    ("start", P.USER_SELECTION, True, None, P.IMPORTING_STARTED, True),
    ("advance", P.IMPORTING_STARTED, True, P.IMPORTING_USERS, P.IMPORTING_USERS, True),
    ("advance", P.IMPORTING_USERS, True, P.FINISHING, P.FINISHING, True),
    ("finish", P.FINISHING, True, None, P.DONE, True),
    ("fail", P.IMPORTING_USERS, True, None, P.IMPORT_FAILED, True),
    ("fail", P.IMPORTING_USERS, False, None, P.IMPORT_FAILED, False),
    ("fail", P.PREPARING_USERS, True, None, P.IMPORT_FAILED, True),
    ("cancel", P.NEW, True, None, P.IMPORT_CANCELLED, True),
    ("cancel", P.USER_SELECTION, True, None, P.IMPORT_CANCELLED, True),
    ("cancel", P.IMPORTING_USERS, True, None, P.IMPORT_CANCELLED, True),
    ("invalidate", P.USER_SELECTION, True, None, P.USER_SELECTION, False),
    ("invalidate", P.IMPORTING_USERS, True, None, P.IMPORTING_USERS, False),
    ("invalidate", P.IMPORT_CANCELLED, True, None, P.IMPORT_CANCELLED, False),
    ("invalidate", P.DONE, True, None, P.DONE, False),
]


@pytest.mark.parametrize(("event", "status", "valid", "step", "after", "after_valid"), MOVES)
def test_allowed_moves(event, status, valid, step, after, after_valid):
    assert fire(event, status, valid=valid, step=step) == (after, after_valid)


REFUSED = [
    ("create", P.NEW, True, None),
    ("stage", P.IMPORTING_USERS, True, None),
    ("stage", P.DONE, True, None),
    ("start", P.NEW, True, None),
    ("start", P.IMPORTING_USERS, True, None),
    ("start", P.USER_SELECTION, False, None),  # an invalid operation is in error
    ("finish", P.IMPORTING_USERS, True, None),  # only from importer_finishing
    ("cancel", P.DONE, True, None),
    ("cancel", P.IMPORT_FAILED, True, None),
    ("cancel", P.IMPORT_CANCELLED, True, None),
    ("advance", P.IMPORTING_USERS, True, P.IMPORTING_STARTED),  # backwards (ours)
    ("advance", P.IMPORTING_USERS, True, P.IMPORTING_USERS),  # not forward
    ("advance", P.PREPARING_USERS, True, P.IMPORTING_USERS),  # into another state
    ("advance", P.USER_SELECTION, True, P.IMPORTING_USERS),
    ("advance", P.IMPORTING_USERS, True, None),
    ("begin_loading", P.USER_SELECTION, True, None),
    ("fail", P.NEW, True, None),
    ("no_such_event", P.NEW, True, None),
]


@pytest.mark.parametrize(("event", "status", "valid", "step"), REFUSED)
def test_refused_moves_name_state_and_event(event, status, valid, step):
    with pytest.raises(InvalidTransition) as caught:
        fire(event, status, valid=valid, step=step)
    state = state_of(status, valid=valid)
    assert caught.value.state == state
    assert caught.value.event == event
    assert repr(event) in str(caught.value)
    assert repr(str(state)) in str(caught.value)


def test_every_state_and_event_is_in_the_table():
    assert set(DEFINITION.states) == set(State)
    assert set(events()) == {
        "create", "begin_loading", "advance", "finish_loading", "stage", "start", "download",
        "finish", "fail", "cancel", "invalidate",
    }
    reached = {row.dest for row in DEFINITION.transitions}
    assert reached == set(State) - {State.NONE}


def test_the_event_enum_names_the_events_of_the_table():
    assert list(Event) == list(events())


def test_allows_reads_the_sources_of_the_table():
    for event in Event:
        sources = {s for row in DEFINITION.transitions if row.event == event for s in row.sources}
        assert {state for state in State if allows(event, state)} == sources
    assert allows(Event.CANCEL, State.IMPORTING)
    assert not allows(Event.CANCEL, State.DONE)
    assert not allows(Event.START, State.NEW)


def test_allowed_events_from_ready():
    assert set(allowed_events(P.USER_SELECTION)) == {"stage", "start", "cancel", "invalidate"}
    assert set(allowed_events(P.USER_SELECTION, valid=False)) == {"fail", "invalidate"}
    assert allowed_events(None) == ("create",)


def test_loading_walks_forward_through_every_step():
    status = P.UPLOADING
    for step in (P.DOWNLOADING_FILE, P.FILE_LOADED, P.PREPARING_STARTED, P.PREPARING_USERS,
                 P.PREPARING_CHANNELS, P.PREPARING_MESSAGES, P.PREPARING_CONTACTS):
        status = fire("advance", status, step=step).status
    assert status is P.PREPARING_CONTACTS


def test_operations_never_build_a_machine(monkeypatch):
    built = []
    original = transitions.Machine.__init__

    def counting_init(self, *args, **kwargs):
        built.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(transitions.Machine, "__init__", counting_init)
    now = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    ops = [Operation.create(user="u", at=now) for _ in range(50)]
    docs = [op.fire("stage", at=now).to_wire() for op in ops]
    loaded = [Operation.from_wire(doc) for doc in docs]
    assert all(op.state is State.READY for op in loaded)
    assert built == []


def test_fire_is_safe_from_many_threads():
    barrier = threading.Barrier(8)

    def walk(_):
        barrier.wait()
        results = []
        for _ in range(300):
            status = fire("start", P.USER_SELECTION).status
            status = fire("advance", status, step=P.IMPORTING_USERS).status
            status = fire("advance", status, step=P.FINISHING).status
            results.append(fire("finish", status).status)
        return results

    with ThreadPoolExecutor(8) as pool:
        outcomes = [s for batch in pool.map(walk, range(8)) for s in batch]
    assert outcomes == [P.DONE] * 2400
