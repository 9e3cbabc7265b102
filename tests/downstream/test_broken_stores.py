"""The kit must fail on a broken store, and say which behaviour is broken."""

import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).parent

STORE_SUITE = """
    import pytest
    from hypothesis import Phase, settings
    from acme_import import Database
    from acme_import.broken import {store}
    from importstate.testing import StoreTests

    # Finding the bug is what matters here; shrinking it would only cost time.
    settings.register_profile("find", phases=[Phase.generate], database=None)
    settings.load_profile("find")

    class TestBroken(StoreTests):
        @pytest.fixture
        def make_store(self):
            database = Database()
            return lambda: {store}(database)
"""

MACHINE = """
    from hypothesis import Phase, settings
    from acme_import import Database, Directory
    from acme_import.broken import {store}
    from importstate import ImportService
    from importstate.testing import ImportServiceMachine

    def make_broken_service():
        return ImportService({store}(Database()), {{"api": Directory().import_user}})

    TestBroken = ImportServiceMachine.with_factory(make_broken_service).TestCase
    # Finding the bug is what matters here; shrinking it would only cost time.
    TestBroken.settings = settings(max_examples=200, stateful_step_count=30, deadline=None,
                                   database=None, phases=[Phase.generate])
"""


@pytest.fixture
def run_suite(pytester, monkeypatch):
    # A process of its own: the suite loads a Hypothesis profile of its own.
    monkeypatch.setenv("PYTHONPATH", str(HERE))

    def run(source, store):
        pytester.makepyfile(test_suite=textwrap.dedent(source.format(store=store)))
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)

    return run


@pytest.mark.parametrize(("store", "broken_test"), [
    ("FirstComeStore", "test_current_ties_on_ts_go_to_the_later_created"),
    ("ForgetfulStore", "test_remove_succeeded_keeps_failed_records_of_that_operation"),
    ("LeakyStore", "test_a_transaction_that_raises_rolls_back?stage?"),
])
def test_store_tests_name_the_broken_behaviour(run_suite, store, broken_test):
    result = run_suite(STORE_SUITE, store)
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 1
    result.stdout.fnmatch_lines([f"FAILED *TestBroken::{broken_test}*"])


@pytest.mark.parametrize(("store", "complaint"), [
    ("FirstComeStore", r"status_matches_the_model|current_operation_matches_the_model"),
    ("ForgetfulStore", "staging after done does not hold|staged records differ from the spec"),
])
def test_the_machine_catches_the_broken_store(run_suite, store, complaint):
    result = run_suite(MACHINE, store)
    result.assert_outcomes(failed=1)
    result.stdout.re_match_lines([f".*({complaint})"])
