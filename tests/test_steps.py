import pytest

from importstate import ProgressStep, State, state_of
from importstate.steps import FINISHED_STATES, steps_of

# Behaviour: steps, in natural order.
WIRE_STEPS = [
    "importer_new", "importer_uploading", "importer_downloading_file",
    "importer_file_loaded",
    "importer_preparing_started", "importer_preparing_users", "importer_preparing_channels",
    "importer_preparing_messages", "importer_preparing_contacts",
    "importer_user_selection",
    "importer_importing_started", "importer_importing_users", "importer_importing_channels",
    "importer_importing_messages", "importer_importing_contacts", "importer_importing_files",
    "importer_finishing",
    "importer_done", "importer_import_failed", "importer_import_cancelled",
]

# Behaviour: states, rules 3-9: the state of a valid operation at each step.
VALID_STATE = {
    "importer_new": "new",
    "importer_uploading": "loading",
    "importer_downloading_file": "loading",
    "importer_file_loaded": "loading",
    "importer_preparing_started": "loading",
    "importer_preparing_users": "loading",
    "importer_preparing_channels": "loading",
    "importer_preparing_messages": "loading",
    "importer_preparing_contacts": "loading",
    "importer_user_selection": "ready",
    "importer_importing_started": "importing",
    "importer_importing_users": "importing",
    "importer_importing_channels": "importing",
    "importer_importing_messages": "importing",
    "importer_importing_contacts": "importing",
    "importer_importing_files": "importing",
    "importer_finishing": "importing",
    "importer_done": "done",
    "importer_import_failed": "error",
    "importer_import_cancelled": "canceled",
}


def test_twenty_steps_in_natural_order():
    assert [step.value for step in ProgressStep] == WIRE_STEPS
    assert [step.position for step in ProgressStep] == list(range(20))


def test_eight_states():
    assert [s.value for s in State] == [
        "none", "new", "loading", "ready", "importing", "error", "canceled", "done",
    ]


def test_no_operation_is_none():
    assert state_of(None) is State.NONE
    assert state_of(None, valid=False) is State.NONE


@pytest.mark.parametrize(("status", "state"), VALID_STATE.items())
def test_valid_operation_state(status, state):
    assert state_of(status) == state
    assert ProgressStep(status).state == state


@pytest.mark.parametrize("status", WIRE_STEPS)
def test_invalid_operation_is_error_unless_done(status):
    expected = "done" if status == "importer_done" else "error"
    assert state_of(status, valid=False) == expected


def test_unknown_status_is_refused():
    with pytest.raises(ValueError, match="importer_bogus"):
        state_of("importer_bogus")


def test_steps_of_groups_partition_the_steps():
    groups = [steps_of(state) for state in State]
    assert steps_of(State.NONE) == ()
    assert sorted(step for group in groups for step in group) == sorted(ProgressStep)
    assert steps_of(State.READY) == (ProgressStep.USER_SELECTION,)


def test_finished_states():
    assert {s.value for s in FINISHED_STATES} == {"done", "error", "canceled"}


def test_wire_values_are_plain_strings():
    assert ProgressStep.DONE == "importer_done"
    assert f"{State.READY}" == "ready"
