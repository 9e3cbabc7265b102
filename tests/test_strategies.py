import datetime as dt
import doctest
import itertools
import os
import subprocess
import sys
import textwrap
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument, NonInteractiveExampleWarning

from importstate import (
    Count,
    ImportService,
    InvalidRoles,
    MemoryStore,
    MissingUserData,
    Operation,
    ProgressStep,
    SQLiteStore,
    State,
    state_of,
)
from importstate.errors import ImportStateError
from importstate.testing import FailingImporter, ImportFailed, RecordingImporter, ServiceCall
from importstate.testing import strategies as ist
from importstate.testing._reference import rejection


@given(st.data())
def test_states_and_steps_cover_the_tables(data):
    assert data.draw(ist.states()) in set(State)
    assert data.draw(ist.progress_steps()) in set(ProgressStep)


@pytest.mark.parametrize("state", [s for s in State if s is not State.NONE])
@given(data=st.data())
def test_progress_steps_of_a_state(state, data):
    step = data.draw(ist.progress_steps(state))
    assert state_of(step) is state


def test_no_step_is_in_state_none():
    with pytest.raises(InvalidArgument):
        ist.progress_steps("none").example()


@pytest.mark.parametrize("state", [s for s in State if s is not State.NONE])
@given(data=st.data())
def test_operations_in_a_state(state, data):
    assert data.draw(ist.operations(state=state)).state is state


@given(ist.operations())
def test_operations_are_consistent(op):
    count = op.count
    assert count.get("completed") + count.get("error") <= count.get("total")
    if op.status is ProgressStep.DONE:
        assert count.get("completed") + count.get("error") == count.get("total")
    if op.status.position < ProgressStep.IMPORTING_STARTED.position:
        assert count.completed is None
        assert count.error is None
    assert op.ts <= op.updated_at
    assert op.ts.tzinfo is dt.UTC
    assert op.ts.microsecond % 1000 == 0
    assert op.updated_at.microsecond % 1000 == 0
    assert op.failure is None or op.status is ProgressStep.IMPORT_FAILED


@given(ist.operations(status="importer_user_selection", valid=False, counts=Count(total=3)))
def test_operations_pinned(op):
    assert op.status is ProgressStep.USER_SELECTION
    assert not op.valid
    assert op.state is State.ERROR
    assert op.count == Count(total=3)


@pytest.mark.parametrize("pins", [
    {"state": "none"},
    {"state": "new", "valid": False},
    {"state": "ready", "status": "importer_done"},
])
def test_contradicting_pins_are_refused(pins):
    with pytest.raises(InvalidArgument):
        ist.operations(**pins).example()


def test_unknown_ts_form_is_refused():
    with pytest.raises(InvalidArgument, match="ts_form"):
        ist.wire_documents("seconds").example()


def test_from_type_works_without_importing_the_kit():
    script = textwrap.dedent("""
        import sys
        from hypothesis import given, settings, strategies as st
        from importstate import Operation, ProgressStep, State
        assert "importstate.testing.strategies" not in sys.modules

        @settings(max_examples=20, database=None)
        @given(st.from_type(Operation), st.from_type(ProgressStep), st.from_type(State))
        def check(op, step, state):
            assert Operation.from_wire(op.to_wire()) == op
            assert isinstance(step, ProgressStep) and isinstance(state, State)

        check()
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.stdout.strip() == "ok", done.stderr


def _service(store=None, importer=None):
    clock = (dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=n)
             for n in itertools.count())
    return ImportService(store or MemoryStore(), {"api": importer or RecordingImporter()},
                         clock=lambda: next(clock))


@given(st.lists(ist.users(), min_size=1, max_size=5))
def test_generated_users_are_accepted_and_staged_as_given(users):
    service = _service()
    service.new_operation("u1")
    op = service.add_users(users)
    assert op is not None
    assert op.count.total == len(users)
    staged = [record["data"] for record in service.staged_users()]
    assert [{k: v for k, v in data.items() if k != "roles"} for data in staged] == [
        {k: v for k, v in user.items() if k != "roles"} for user in users
    ]


@pytest.mark.parametrize("error", [None, MissingUserData, InvalidRoles])
@given(data=st.data())
def test_invalid_user_lists_are_refused_with_their_message(error, data):
    users, message = data.draw(ist.invalid_user_lists(error))
    if error is not None:
        assert message == error.message
    service = _service()
    service.new_operation("u1")
    with pytest.raises(ImportStateError) as refused:
        service.add_users(users)
    assert str(refused.value) == message
    assert rejection(users, service.known_roles) == message
    assert list(service.staged_users()) == []
    assert service.status()["state"] == "new"


@given(
    channels=st.lists(ist.channels(), min_size=1, max_size=4),
    messages=st.lists(ist.messages(), min_size=1, max_size=4),
)
def test_generated_channels_and_messages_are_accepted(channels, messages):
    service = _service()
    service.new_operation("u1")
    service.add_channels(channels)
    op = service.add_messages(messages)
    assert op is not None
    assert op.count.to_wire() == {"total": len(channels) + len(messages),
                                  "channels": len(channels), "messages": len(messages)}
    assert [r["data"] for r in service.staged_records("message")] == messages
    for given_channel, record in zip(channels, service.staged_records("channel"), strict=True):
        assert record["data"] == {"t": "c", "users": [], **given_channel}


@pytest.mark.parametrize(("strategy", "add", "data_type"), [
    (ist.invalid_channel_lists(), "add_channels", "channel"),
    (ist.invalid_message_lists(), "add_messages", "message"),
])
@given(data=st.data())
def test_invalid_channel_and_message_lists_are_refused_with_their_message(
    strategy, add, data_type, data,
):
    records, message = data.draw(strategy)
    service = _service()
    service.new_operation("u1")
    with pytest.raises(ImportStateError) as refused:
        getattr(service, add)(records)
    assert str(refused.value) == message
    assert rejection(records, service.known_roles, data_type) == message
    assert list(service.staged_records()) == []


@given(data=st.data())
def test_selections_are_read_and_run(data):
    selection = data.draw(ist.selections(["a"], ["c"]))
    service = _service()
    service.new_operation("u1")
    service.add_users([{"emails": ["a@example.com"], "importIds": ["a"]}])
    service.add_channels([{"importIds": ["c"], "name": "general"}])
    done = service.run(selection=selection)
    assert done.status is ProgressStep.DONE
    assert done.count.get("completed") == done.count.get("total")


def test_invalid_user_lists_refuse_other_errors():
    with pytest.raises(InvalidArgument):
        ist.invalid_user_lists(ValueError).example()


def _comparable(result):
    if isinstance(result, Operation):
        return {**result.to_wire(), "_id": None}
    if isinstance(result, ImportStateError):
        return ("refused", str(result))
    if isinstance(result, list):
        return [_comparable(item) for item in result]
    if isinstance(result, dict) and "operation" in result:
        return {**result, "operation": {**result["operation"], "_id": None}}
    return result


@given(calls=ist.events(max_size=12))
def test_both_stores_answer_every_call_alike(tmp_path_factory, calls):
    memory = _service(MemoryStore())
    sqlite = _service(SQLiteStore(tmp_path_factory.mktemp("events") / "e.db"))
    try:
        for call in calls:
            assert _comparable(call.apply(memory)) == _comparable(call.apply(sqlite)), call
    finally:
        sqlite.store.close()


def test_service_call_reports_refusals_and_reads_well():
    call = ServiceCall("run")
    assert str(call.apply(_service())) == "error-operation-not-found"
    assert repr(ServiceCall("new_operation", {"user_id": "u1"})) == (
        "service.new_operation(user_id='u1')"
    )


def test_recording_and_failing_importers():
    recording = RecordingImporter()
    recording({"importIds": ["a"]})
    assert recording.import_ids == ["a"]
    failing = FailingImporter(lambda user: user["importIds"][0] == "b", "nope")
    failing({"importIds": ["a"]})
    with pytest.raises(ImportFailed, match="nope"):
        failing({"importIds": ["b"]})
    assert failing.import_ids == ["a", "b"]
    assert failing.failed == [{"importIds": ["b"]}]
    assert recording.import_channels([{"importIds": ["c"]}]) == [None]
    assert recording.import_messages([{"importIds": ["m"]}]) == [None]
    assert (recording.channels, recording.messages) == ([{"importIds": ["c"]}],
                                                         [{"importIds": ["m"]}])
    [refused, imported] = failing.import_messages([{"importIds": ["b"]}, {"importIds": ["m"]}])
    assert isinstance(refused, ImportFailed)
    assert imported is None
    assert failing.messages == [{"importIds": ["b"]}, {"importIds": ["m"]}]


# -- the pytest plugin ---------------------------------------------------------------------

def test_plugin_service_runs_with_the_recording_importer(import_service, recording_importer):
    import_service.new_operation("u1")
    import_service.add_users([{"emails": ["a@example.com"], "importIds": ["a"]}])
    assert import_service.run().status is ProgressStep.DONE
    assert recording_importer.import_ids == ["a"]


def test_plugin_failing_importer_fails_everyone(import_service, failing_importer):
    import_service.new_operation("u1")
    import_service.add_users([{"emails": ["a@example.com"], "importIds": ["a"]}])
    op = import_service.run(importer=failing_importer)
    assert (op.count.completed, op.count.error) == (0, 1)
    assert [r["errors"][0]["message"] for r in import_service.staged_users()] == ["import failed"]


def test_plugin_is_cheap_and_needs_no_hypothesis(tmp_path):
    (tmp_path / "test_it.py").write_text(textwrap.dedent("""
        import sys

        def test_service(import_service, recording_importer):
            assert "hypothesis" not in sys.modules
            import_service.new_operation("u1")
            assert import_service.status()["state"] == "new"
    """))
    script = textwrap.dedent(f"""
        import sys

        class NoHypothesis:  # as if Hypothesis were not installed
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in {{"hypothesis", "_hypothesis_pytestplugin"}}:
                    raise ImportError(name)

        sys.meta_path.insert(0, NoHypothesis())
        import pytest
        sys.exit(pytest.main(["-q", "-p", "no:hypothesispytest", "-p", "no:cacheprovider",
                              {str(tmp_path)!r}]))
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False, cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


def test_the_docstring_examples_hold():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonInteractiveExampleWarning)
        results = doctest.testmod(ist, optionflags=doctest.ELLIPSIS)
    assert results.attempted >= 8
    assert results.failed == 0


def test_importing_importstate_hashes_no_password():
    # pytest loads importstate in every run (the plugin), so importing it must stay cheap.
    script = textwrap.dedent("""
        import hashlib
        calls = []
        real = hashlib.scrypt
        hashlib.scrypt = lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs)
        import importstate.testing.pytest_plugin
        assert not calls, "importing importstate ran scrypt"
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.stdout.strip() == "ok", done.stderr
