"""``BatchClaimsTests`` on PostgresStore, and on broken claims stores it must fail.

The suite runs on a real PostgreSQL server (``_postgres``). Each broken
store (``broken_claims``) gets one behaviour of the batch claims wrong; the
suite, run on all four in one pytest process of its own, must fail on each
and name the broken behaviour, and pass the rest.
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

    class Test{store}(BatchClaimsTests):
        @pytest.fixture
        def make_store(self, schema):
            return lambda: {store}(DSN, schema=schema)
"""

#: Each broken store, and the tests that must fail on it.
BROKEN = {
    "LeaselessStore": [
        "test_a_held_batch_is_not_claimed_by_another_handle",
        "test_concurrent_claimers_never_get_the_same_batch",
        "test_a_renewed_lease_holds_past_its_first_expiry",
    ],
    "HolderBlindStore": [
        "test_finish_batch_counts_only_for_the_lease_holder",
        "test_finish_batch_of_a_stranger_returns_none",
    ],
    "RenewAnyStore": ["test_renew_leases_extends_only_the_holders_lease"],
    "EagerLastStore": ["test_the_last_batch_is_claimable_only_once_every_other_is_done"],
}


def test_batch_claims_tests_name_each_broken_behaviour(
    pytester, monkeypatch, postgres_dsn, fresh_schema,
):
    # One pytest process of its own for all four, on this session's server; every
    # schema a test there makes is dropped there.
    monkeypatch.setenv("PYTHONPATH", str(HERE))
    prefix = fresh_schema()
    pytester.makeconftest(textwrap.dedent(f"""
        import itertools
        import pytest
        from _postgres import drop_schema

        _numbers = itertools.count()

        @pytest.fixture
        def schema():
            name = f"{prefix}_{{next(_numbers)}}"
            yield name
            drop_schema({postgres_dsn!r}, name)
    """))
    suite = f"DSN = {postgres_dsn!r}\n" + "".join(
        textwrap.dedent(BROKEN_SUITE.format(store=store)) for store in BROKEN
    )
    pytester.makepyfile(test_suite=suite)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rf", timeout=300)
    outcomes = result.parseoutcomes()
    # Each broken store passes most of the suite: only what it breaks fails.
    assert outcomes.get("passed", 0) >= 10 * len(BROKEN)
    for store, broken_tests in BROKEN.items():
        result.stdout.fnmatch_lines(
            [f"FAILED *Test{store}::{test}*" for test in broken_tests], consecutive=False,
        )
