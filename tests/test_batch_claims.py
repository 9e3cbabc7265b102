"""``BatchClaimsTests`` on PostgresStore, and on broken claims stores it must fail.

The suite runs on a real PostgreSQL server (``_postgres``). Each broken
store (``broken_claims``) gets one behaviour of the batch claims wrong; the
suite, run on it in a pytest process of its own, must fail and name that
behaviour.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from importstate import PostgresStore
from importstate.testing import BatchClaimsTests

HERE = Path(__file__).parent


class TestPostgresBatchClaims(BatchClaimsTests):
    @pytest.fixture
    def make_store(self, postgres_dsn, schema):
        return lambda: PostgresStore(postgres_dsn, schema=schema)


BROKEN_SUITE = """
    import pytest
    from broken_claims import {store}
    from importstate.testing import BatchClaimsTests

    class TestBroken(BatchClaimsTests):
        @pytest.fixture
        def make_store(self, schema):
            return lambda: {store}(DSN, schema=schema)
"""


@pytest.fixture
def run_suite(pytester, monkeypatch, postgres_dsn, fresh_schema):
    # A process of its own, on this session's server, in schemas dropped afterwards.
    monkeypatch.setenv("PYTHONPATH", str(HERE))
    prefix = fresh_schema()

    def run(store):
        conftest = textwrap.dedent(f"""
            import itertools
            import pytest
            from _postgres import drop_schema

            _numbers = itertools.count()

            @pytest.fixture
            def schema():
                name = f"{prefix}_{{next(_numbers)}}"
                yield name
                drop_schema({postgres_dsn!r}, name)
        """)
        pytester.makeconftest(conftest)
        suite = f"DSN = {postgres_dsn!r}\n" + textwrap.dedent(BROKEN_SUITE.format(store=store))
        pytester.makepyfile(test_suite=suite)
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)

    return run


@pytest.mark.parametrize(("store", "broken_tests"), [
    ("LeaselessStore", [
        "test_a_held_batch_is_not_claimed_by_another_handle",
        "test_concurrent_claimers_never_get_the_same_batch",
        "test_a_renewed_lease_holds_past_its_first_expiry",
    ]),
    ("HolderBlindStore", [
        "test_finish_batch_counts_only_for_the_lease_holder",
        "test_finish_batch_of_a_stranger_returns_none",
    ]),
    ("RenewAnyStore", ["test_renew_leases_extends_only_the_holders_lease"]),
    ("EagerLastStore", ["test_the_last_batch_is_claimable_only_once_every_other_is_done"]),
])
def test_batch_claims_tests_name_the_broken_behaviour(run_suite, store, broken_tests):
    result = run_suite(store)
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 10, "the broken store should pass everything else"
    assert outcomes.get("failed", 0) >= len(broken_tests)
    result.stdout.fnmatch_lines(
        [f"FAILED *TestBroken::{test}*" for test in broken_tests], consecutive=False,
    )
