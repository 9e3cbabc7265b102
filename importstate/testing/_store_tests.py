"""The conformance suite every store passes: subclass :class:`StoreTests` to run it."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any, Final, Generic, TypeVar

import attrs

from importstate._extras import needs

with needs("testing", "importstate.testing.StoreTests"):
    import pytest
    from hypothesis import given, settings
    from hypothesis import strategies as st

from importstate.history import HistoryEntry
from importstate.model import Count, Failure, Operation
from importstate.steps import ProgressStep
from importstate.stores import HistoryTransaction, NewRecord, StagedRecord, Store, Transaction
from importstate.testing import strategies as ist

_T0: Final = dt.datetime(2024, 5, 1, 9, 0, tzinfo=dt.UTC)
_THREAD_TIMEOUT: Final = 30.0


def _at(millis: int) -> dt.datetime:
    return _T0 + dt.timedelta(milliseconds=millis)


def _operation(
    number: int, *, ts: int = 0, updated: int | None = None, valid: bool = True,
) -> Operation:
    """A distinct operation; times are milliseconds after a fixed start."""
    return Operation(
        id=f"{number:024x}",
        type="api",
        importer_key="api",
        ts=_at(ts),
        status=ProgressStep.USER_SELECTION,
        valid=valid,
        user=f"user{number}",
        updated_at=_at(updated if updated is not None else ts),
        count=Count(total=3, users=3),
    )


def _user(name: str) -> dict[str, Any]:
    return {"username": name, "emails": [f"{name}@example.com"], "importIds": [name],
            "nested": {"n": [1, "é", None, 2.5, True]}}


def _records(*names: str, data_type: str = "user") -> list[NewRecord]:
    return [NewRecord(f"r-{name}", json.dumps(_user(name)), data_type) for name in names]


_TYPES: Final = ("user", "channel", "message")


def _mixed(tx: Transaction, operation_id: str) -> None:
    """Stage users, channels and messages of the operation, their types interleaved."""
    for turn in range(2):
        for data_type in _TYPES:
            tx.stage(operation_id, _records(f"{data_type}{turn}a", f"{data_type}{turn}b",
                                            data_type=data_type))


def _two_operations(tx: Transaction, first: list[str], second: list[str]) -> tuple[str, str]:
    """Insert operations 1 and 2, staging the users named in ``first`` and ``second``."""
    for number, names in ((1, first), (2, second)):
        tx.insert(_operation(number))
        tx.stage(_operation(number).id, _records(*names))
    return _operation(1).id, _operation(2).id


#: The steps and events of the history tests' entries, creation first.
_STEPS: Final = (ProgressStep.NEW, ProgressStep.USER_SELECTION, ProgressStep.IMPORT_CANCELLED)
_EVENTS: Final = ("create", "stage", "cancel")


def _entry(operation_id: str, number: int) -> HistoryEntry:
    """The ``number``-th entry of the operation's history in the tests (0: its creation)."""
    return HistoryEntry(
        operation_id, _STEPS[number - 1] if number else None, _STEPS[number], _EVENTS[number],
        _at(1000 * number + 1), "user:alice" if number % 2 else "cli:bob",
    )


def _keeping_history(tx: Transaction) -> HistoryTransaction:
    """``tx`` as a transaction with history; the test is skipped for a store without it."""
    if not isinstance(tx, HistoryTransaction):
        pytest.skip("the store keeps no history (svc.history() raises HistoryUnsupported)")
    return tx


def _usernames(records: list[StagedRecord]) -> list[str]:
    return [record.data["username"] for record in records]


def _ids(operations: list[Operation]) -> list[str]:
    return [operation.id for operation in operations]


class _Boom(Exception):
    """Raised inside a transaction to make it roll back."""


StoreFactory = Callable[[], Store]
_S = TypeVar("_S", bound=Store)


class _Handles(Generic[_S]):
    """The ``open_store`` and ``store`` fixtures a suite builds on its ``make_store``."""

    @pytest.fixture
    def open_store(self, make_store: Callable[[], _S]) -> Iterator[Callable[[], _S]]:
        """``make_store``, closing every handle it opened when the test ends."""
        opened: list[_S] = []

        def open_() -> _S:
            store = make_store()
            opened.append(store)
            return store

        yield open_
        for store in reversed(opened):
            store.close()

    @pytest.fixture
    def store(self, open_store: Callable[[], _S]) -> _S:
        """One handle on the store under test."""
        return open_store()


class StoreTests(_Handles[Store]):
    """The store conformance suite, as a pytest base class.

    Subclass it (the subclass's name must start with ``Test``) and provide a
    fixture ``make_store``: a zero-argument callable, each call returning a
    new handle on the same store, which is empty when the test starts. For
    an in-process store the handle may be the same object each time; for a
    store on a file or server, open a new connection each time, so that the
    tests see whether handles observe each other's writes::

        class TestMyStore(StoreTests):
            @pytest.fixture
            def make_store(self, tmp_path):
                return lambda: MyStore(tmp_path / "imports.db")

    Every test is named after the behaviour it checks, so a failure report
    says what the store gets wrong. Handles opened through ``make_store`` are
    closed after each test.
    """

    # -- the protocol ----------------------------------------------------------------------

    def test_satisfies_the_store_protocol(self, store: Store) -> None:
        assert isinstance(store, Store)

    def test_empty_store_has_no_operations(self, store: Store) -> None:
        with store.reading() as tx:
            assert tx.current() is None
            assert tx.latest(20) == []
            assert tx.valid_operations() == []
            assert tx.get(_operation(1).id) is None
            assert tx.staged(_operation(1).id, after=None, limit=10) == []
            assert tx.pending(_operation(1).id, "user", after=None, limit=10) == []

    # -- operations ------------------------------------------------------------------------

    def test_operation_round_trips_every_field(self, store: Store) -> None:
        full = attrs.evolve(
            _operation(1, ts=5, updated=9),
            status=ProgressStep.IMPORT_FAILED,
            count=Count(total=4, completed=1, error=2, users=4, channels=0, messages=7),
            content_type="text/csv",
            file="users.csv",
            failure=Failure("disk full", _at(9)),
        )
        with store.transaction() as tx:
            tx.insert(full)
        with store.reading() as tx:
            assert tx.get(full.id) == full

    def test_current_is_the_newest_ts_valid_or_not(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.insert(_operation(1, ts=20))
            tx.insert(_operation(2, ts=10, updated=99))
            tx.insert(_operation(3, ts=30, valid=False))
        with store.reading() as tx:
            current = tx.current()
        assert current is not None
        assert current.id == _operation(3).id

    def test_current_ties_on_ts_go_to_the_later_created(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.insert(_operation(2, ts=10))
            tx.insert(_operation(1, ts=10))
        with store.reading() as tx:
            current = tx.current()
        assert current is not None
        assert current.id == _operation(1).id, "a tie on ts must go to the later created"

    def test_latest_orders_by_updated_at_then_ts_then_creation(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.insert(_operation(1, ts=0, updated=50))
            tx.insert(_operation(2, ts=5, updated=50))   # same _updatedAt, newer ts
            tx.insert(_operation(3, ts=5, updated=50))   # same both, created later
            tx.insert(_operation(4, ts=1, updated=60))   # newest _updatedAt
            tx.insert(_operation(5, ts=9, updated=10))
        with store.reading() as tx:
            latest = tx.latest(20)
        assert _ids(latest) == _ids([_operation(n) for n in (4, 3, 2, 1, 5)])

    def test_latest_returns_at_most_limit(self, store: Store) -> None:
        with store.transaction() as tx:
            for n in range(5):
                tx.insert(_operation(n, ts=n))
        with store.reading() as tx:
            assert _ids(tx.latest(2)) == _ids([_operation(4), _operation(3)])
            assert tx.latest(0) == []

    def test_valid_operations_in_creation_order(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.insert(_operation(3, ts=30))
            tx.insert(_operation(1, ts=10, valid=False))
            tx.insert(_operation(2, ts=5))
        with store.reading() as tx:
            assert _ids(tx.valid_operations()) == _ids([_operation(3), _operation(2)])

    def test_update_replaces_the_operation_and_moves_it_in_order(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.insert(_operation(1, ts=0, updated=0))
            tx.insert(_operation(2, ts=1, updated=1))
        changed = attrs.evolve(_operation(1), valid=False, updated_at=_at(5), ts=_at(2))
        with store.transaction() as tx:
            tx.update(changed)
        with store.reading() as tx:
            assert tx.get(changed.id) == changed
            assert _ids(tx.latest(20)) == _ids([_operation(1), _operation(2)])
            assert tx.valid_operations() == [_operation(2, ts=1, updated=1)]
            current = tx.current()
        assert current == changed, "current must follow an updated ts"

    def test_a_run_s_count_updates_read_back_between_status_changes(
        self, open_store: StoreFactory,
    ) -> None:
        writer, reader = open_store(), open_store()
        op = _operation(1)
        with writer.transaction() as tx:
            tx.insert(op)
        expected = op
        for step, completed in ((ProgressStep.IMPORTING_USERS, 0), (None, 50), (None, 100),
                                (ProgressStep.FINISHING, 100), (None, 150)):
            with writer.transaction() as tx:
                stored = tx.get(op.id)
                assert stored == expected
                changes: dict[str, Any] = {"count": Count(total=3, users=3, completed=completed,
                                                          error=completed // 50)}
                if step is not None:
                    changes["status"] = step
                expected = stored.touched(_at(completed + 1), **changes)
                tx.update(expected)
                tx.set_checkpoint(op.id, completed, _at(completed))
            with reader.reading() as tx:
                assert tx.get(op.id) == expected, "a reader must see every committed count"
                assert tx.current() == expected
                assert tx.latest(1) == [expected]

    def test_update_of_an_unknown_operation_raises_key_error(self, store: Store) -> None:
        with pytest.raises(KeyError), store.transaction() as tx:
            tx.update(_operation(1))

    def test_current_and_latest_follow_the_ordering_rules(self, store: Store) -> None:
        plans = st.lists(
            st.tuples(ist.operations(), st.integers(0, 3), st.integers(0, 3)), max_size=6,
        )

        # The store outlives the examples (make_store gives one store per test):
        # fresh ids and later times keep them apart, and the checks only look
        # at each example's own rows.
        @given(plan=plans)
        @settings(max_examples=25, deadline=None)
        def check(plan: list[tuple[Operation, int, int]]) -> None:
            with store.reading() as tx:
                before = {op.id for op in tx.latest(10_000)}
            base = 1_000_000 + 10 * len(before)
            made = []
            with store.transaction() as tx:
                for index, (generated, ts, updated) in enumerate(plan):
                    # Few distinct times, so that ties are common.
                    op = attrs.evolve(
                        generated, id=f"{len(before) + index:024x}",
                        ts=_at(base + ts), updated_at=_at(base + ts + updated),
                    )
                    tx.insert(op)
                    made.append((op, index))
            with store.reading() as tx:
                latest = [op for op in tx.latest(10_000) if op.id not in before]
                current = tx.current()
            by_update = sorted(made, key=lambda p: (p[0].updated_at, p[0].ts, p[1]), reverse=True)
            assert _ids(latest) == [op.id for op, _ in by_update], "latest breaks a tie wrongly"
            if made:
                newest = max(made, key=lambda p: (p[0].ts, p[1]))[0]
                assert current == newest, "current breaks a tie wrongly"

        check()

    # -- staging ---------------------------------------------------------------------------

    def test_staged_records_keep_order_and_data(self, store: Store) -> None:
        op = _operation(1)
        with store.transaction() as tx:
            tx.insert(op)
            tx.stage(op.id, _records("a", "b"))
            tx.stage(op.id, _records("c"))
            tx.stage(op.id, [])
        with store.reading() as tx:
            staged = tx.staged(op.id, after=None, limit=10)
        assert _usernames(staged) == ["a", "b", "c"]
        assert [r.id for r in staged] == ["r-a", "r-b", "r-c"]
        assert [r.data for r in staged] == [_user(name) for name in "abc"]
        assert {r.data_type for r in staged} == {"user"}
        assert all(r.errors == () for r in staged)
        positions = [r.position for r in staged]
        assert positions == sorted(set(positions)), "positions must increase in staging order"

    def test_staged_pages_with_after_and_limit(self, store: Store) -> None:
        op = _operation(1)
        names = [f"u{n:02d}" for n in range(12)]
        with store.transaction() as tx:
            tx.insert(op)
            tx.stage(op.id, _records(*names))
        seen: list[str] = []
        after = None
        with store.reading() as tx:
            while page := tx.staged(op.id, after=after, limit=5):
                assert len(page) <= 5
                seen += _usernames(page)
                after = page[-1].position
            assert tx.staged(op.id, after=after, limit=5) == []
        assert seen == names

    def test_staging_is_kept_per_operation(self, store: Store) -> None:
        with store.transaction() as tx:
            first, second = _two_operations(tx, ["a", "b"], ["x"])
            tx.stage(first, _records("c"))
        with store.reading() as tx:
            assert _usernames(tx.staged(first, after=None, limit=10)) == ["a", "b", "c"]
            assert _usernames(tx.staged(second, after=None, limit=10)) == ["x"]

    def test_staged_data_is_a_copy(self, store: Store) -> None:
        op = _operation(1)
        with store.transaction() as tx:
            tx.insert(op)
            tx.stage(op.id, _records("a"))
        with store.reading() as tx:
            tx.staged(op.id, after=None, limit=1)[0].data["username"] = "changed by a reader"
            assert _usernames(tx.staged(op.id, after=None, limit=1)) == ["a"]

    def test_staged_lists_every_type_in_staging_order(self, store: Store) -> None:
        op = _operation(1)
        with store.transaction() as tx:
            tx.insert(op)
            _mixed(tx, op.id)
        with store.reading() as tx:
            staged = tx.staged(op.id, after=None, limit=100)
        assert [(r.data_type, r.data["username"]) for r in staged] == [
            (data_type, f"{data_type}{turn}{half}")
            for turn in range(2) for data_type in _TYPES for half in "ab"
        ]

    @pytest.mark.parametrize("data_type", _TYPES)
    def test_pending_reads_one_type_of_what_staged_reads(
        self, store: Store, data_type: str,
    ) -> None:
        first, second = _operation(1).id, _operation(2).id
        with store.transaction() as tx:
            tx.insert(_operation(1))
            tx.insert(_operation(2))
            _mixed(tx, first)
            _mixed(tx, second)
        with store.reading() as tx:
            staged = [r for r in tx.staged(first, after=None, limit=100)
                      if r.data_type == data_type]
            pending = tx.pending(first, data_type, after=None, limit=100)
            assert [(r.position, r.data) for r in pending] == [
                (r.position, r.data) for r in staged
            ], f"pending({data_type!r}) is not the {data_type} records staged reads"
            after = staged[0].position
            assert [r.position for r in tx.pending(first, data_type, after=after, limit=2)] == [
                r.position for r in staged[1:3]
            ], "pending pages by position within its type"
            assert tx.pending(first, data_type, after=staged[-1].position, limit=10) == []

    def test_deselected_records_are_left_out_of_pending_but_staged(self, store: Store) -> None:
        with store.transaction() as tx:
            first, second = _two_operations(tx, ["a", "b", "c"], ["x"])
            a, b, c = tx.staged(first, after=None, limit=10)
            (x,) = tx.staged(second, after=None, limit=10)
            tx.deselect(first, [b.position, x.position])  # x is not the first operation's
            tx.deselect(first, [])
        with store.reading() as tx:
            assert [r.position for r in tx.pending(first, "user", after=None, limit=10)] == [
                a.position, c.position,
            ], "a deselected record was read for the run"
            assert _usernames(tx.staged(first, after=None, limit=10)) == ["a", "b", "c"], (
                "staged must still list a deselected record"
            )
            assert _usernames(tx.staged(second, after=None, limit=10)) == ["x"]
            assert [r.position for r in tx.pending(second, "user", after=None, limit=10)] == [
                x.position,
            ], "deselect touched another operation's record"

    def test_remove_succeeded_removes_the_deselected_records(self, store: Store) -> None:
        with store.transaction() as tx:
            first, _second = _two_operations(tx, ["a", "b", "c"], [])
            a, b, _c = tx.staged(first, after=None, limit=10)
            tx.deselect(first, [a.position])
            tx.record_errors(first, [(b.position, {"message": "failed"})])
        with store.transaction() as tx:
            assert tx.remove_succeeded(first) == 2
        with store.reading() as tx:
            assert _usernames(tx.staged(first, after=None, limit=10)) == ["b"]

    def test_delete_removes_an_operation_and_only_its_staging(self, store: Store) -> None:
        with store.transaction() as tx:
            first, second = _two_operations(tx, ["a", "b"], ["x"])
            delete = getattr(tx, "delete", None)
            if delete is None:
                pytest.skip("the store has no delete(): operations cannot be pruned")
        with store.transaction() as tx:
            assert tx.delete(first) is True  # type: ignore[attr-defined]
            assert tx.delete(first) is False  # type: ignore[attr-defined]
            assert tx.get(first) is None
        with store.reading() as tx:
            assert tx.get(first) is None
            assert tx.staged(first, after=None, limit=10) == []
            assert _usernames(tx.staged(second, after=None, limit=10)) == ["x"]
            assert _ids(tx.latest(10)) == [second]

        def undone() -> None:
            with store.transaction() as tx:
                tx.delete(second)  # type: ignore[attr-defined]
                raise _Boom

        with pytest.raises(_Boom):
            undone()
        with store.reading() as tx:
            assert tx.get(second) is not None
            assert _usernames(tx.staged(second, after=None, limit=10)) == ["x"]

    def test_delete_removes_staging_of_every_type_and_what_was_deselected(
        self, store: Store,
    ) -> None:
        first, second = _operation(1).id, _operation(2).id
        with store.transaction() as tx:
            if getattr(tx, "delete", None) is None:
                pytest.skip("the store has no delete(): operations cannot be pruned")
            tx.insert(_operation(1))
            tx.insert(_operation(2))
            _mixed(tx, first)
            _mixed(tx, second)
            tx.deselect(first, [r.position for r in tx.staged(first, after=None, limit=2)])
        with store.transaction() as tx:
            assert tx.delete(first) is True  # type: ignore[attr-defined]
        with store.reading() as tx:
            assert tx.staged(first, after=None, limit=100) == []
            assert len(tx.staged(second, after=None, limit=100)) == 12
            assert all(tx.pending(second, data_type, after=None, limit=100)
                       for data_type in _TYPES), "delete touched another operation's staging"

    # -- history (optional) ---------------------------------------------------------------

    def test_history_reads_back_in_the_order_appended(self, store: Store) -> None:
        first, second = _operation(1).id, _operation(2).id
        with store.transaction() as tx:
            _two_operations(tx, [], [])
            _keeping_history(tx).append_history([_entry(first, 0), _entry(second, 0)])
        with store.transaction() as tx:
            _keeping_history(tx).append_history([_entry(first, 1), _entry(first, 2)])
            assert _keeping_history(tx).history(first) == [_entry(first, n) for n in range(3)]
        with store.reading() as tx:
            assert _keeping_history(tx).history(first) == [_entry(first, n) for n in range(3)]
            assert _keeping_history(tx).history(second) == [_entry(second, 0)]
            assert _keeping_history(tx).history(_operation(3).id) == []

    def test_history_rolls_back_with_the_change_it_records(self, store: Store) -> None:
        first = _operation(1).id
        with store.transaction() as tx:
            tx.insert(_operation(1))
            _keeping_history(tx).append_history([_entry(first, 0)])

        def change_then_fail() -> None:
            with store.transaction() as tx:
                tx.update(attrs.evolve(_operation(1), status=ProgressStep.IMPORT_CANCELLED))
                _keeping_history(tx).append_history([_entry(first, 1)])
                raise _Boom

        with pytest.raises(_Boom):
            change_then_fail()
        with store.reading() as tx:
            assert tx.get(first) == _operation(1)
            assert _keeping_history(tx).history(first) == [_entry(first, 0)]

    def test_history_is_seen_by_other_handles_once_committed(
        self, open_store: StoreFactory,
    ) -> None:
        writer, reader = open_store(), open_store()
        first = _operation(1).id
        with writer.transaction() as tx:
            tx.insert(_operation(1))
            _keeping_history(tx).append_history([_entry(first, 0), _entry(first, 1)])
        with reader.reading() as tx:
            assert _keeping_history(tx).history(first) == [_entry(first, 0), _entry(first, 1)]

    def test_delete_removes_the_operation_s_history_only(self, store: Store) -> None:
        first, second = _operation(1).id, _operation(2).id
        with store.transaction() as tx:
            if getattr(tx, "delete", None) is None:
                pytest.skip("the store has no delete(): operations cannot be pruned")
            _two_operations(tx, ["a"], ["x"])
            _keeping_history(tx).append_history([_entry(first, 0), _entry(second, 0)])
        with store.transaction() as tx:
            assert tx.delete(first) is True  # type: ignore[attr-defined]
        with store.reading() as tx:
            assert _keeping_history(tx).history(first) == []
            assert _keeping_history(tx).history(second) == [_entry(second, 0)]

    def test_record_errors_appends_every_error_in_order(self, store: Store) -> None:
        op = _operation(1)
        with store.transaction() as tx:
            tx.insert(op)
            tx.stage(op.id, _records("a", "b", "c"))
            a, b, _c = tx.staged(op.id, after=None, limit=10)
            tx.record_errors(op.id, [(b.position, {"message": "first"})])
        with store.transaction() as tx:
            tx.record_errors(op.id, [(b.position, {"message": "first"}),
                                     (a.position, {"message": "other", "type": "E"})])
        with store.reading() as tx:
            errors = [r.errors for r in tx.staged(op.id, after=None, limit=10)]
        assert errors == [
            ({"message": "other", "type": "E"},),
            ({"message": "first"}, {"message": "first"}),  # duplicates are kept
            (),
        ]

    def test_record_errors_touches_only_its_operation(self, store: Store) -> None:
        with store.transaction() as tx:
            first, second = _two_operations(tx, ["a"], [])
            (a,) = tx.staged(first, after=None, limit=1)
            tx.record_errors(second, [(a.position, {"message": "wrong operation"})])
        with store.reading() as tx:
            assert tx.staged(first, after=None, limit=1)[0].errors == ()

    def test_remove_succeeded_keeps_failed_records_of_that_operation(self, store: Store) -> None:
        with store.transaction() as tx:
            first, second = _two_operations(tx, ["a", "b", "c"], ["x"])
            b = tx.staged(first, after=None, limit=10)[1]
            tx.record_errors(first, [(b.position, {"message": "failed"})])
        with store.transaction() as tx:
            assert tx.remove_succeeded(first) == 2
        with store.reading() as tx:
            kept = tx.staged(first, after=None, limit=10)
            assert _usernames(kept) == ["b"]
            assert kept[0].errors == ({"message": "failed"},)
            assert _usernames(tx.staged(second, after=None, limit=10)) == ["x"]

    def test_unstage_all_empties_every_operation(self, store: Store) -> None:
        with store.transaction() as tx:
            first, second = _two_operations(tx, ["a", "b"], ["x"])
        with store.transaction() as tx:
            assert tx.unstage_all() == 3
        with store.reading() as tx:
            assert tx.staged(first, after=None, limit=10) == []
            assert tx.staged(second, after=None, limit=10) == []
            assert len(tx.latest(10)) == 2, "unstage_all must keep the operations"

    # -- checkpoint and heartbeat ----------------------------------------------------------

    def test_checkpoint_and_heartbeat(self, store: Store) -> None:
        op = _operation(1)
        beat = dt.datetime(2024, 5, 1, 9, 30, 15, 123000, tzinfo=dt.UTC)
        with store.transaction() as tx:
            tx.insert(op)
            assert tx.checkpoint(op.id) is None
            assert tx.heartbeat(op.id) is None
            tx.set_checkpoint(op.id, 7, beat)
        with store.reading() as tx:
            assert tx.checkpoint(op.id) == 7
            assert tx.heartbeat(op.id) == beat
            assert tx.get(op.id) == op, "bookkeeping must not change the wire document"
        with store.transaction() as tx:
            tx.set_checkpoint(op.id, None, beat + dt.timedelta(seconds=1))
        with store.reading() as tx:
            assert tx.checkpoint(op.id) is None
            assert tx.heartbeat(op.id) == beat + dt.timedelta(seconds=1)

    def test_checkpoint_of_an_unknown_operation_raises_key_error(self, store: Store) -> None:
        unknown = _operation(1).id
        with store.transaction() as tx:
            with pytest.raises(KeyError):
                tx.checkpoint(unknown)
            with pytest.raises(KeyError):
                tx.heartbeat(unknown)
            with pytest.raises(KeyError):
                tx.set_checkpoint(unknown, 1, _T0)

    # -- transactions ----------------------------------------------------------------------

    def _populate(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.insert(_operation(1, ts=1))
            tx.stage(_operation(1).id, _records("a", "b"))
            a = tx.staged(_operation(1).id, after=None, limit=1)[0]
            tx.record_errors(_operation(1).id, [(a.position, {"message": "kept"})])
            tx.set_checkpoint(_operation(1).id, a.position, _T0)

    def _snapshot(self, store: Store) -> object:
        with store.reading() as tx:
            operations = tx.latest(1000)
            return (
                operations,
                tx.valid_operations(),
                [tx.staged(op.id, after=None, limit=1000) for op in operations],
                [tx.pending(op.id, "user", after=None, limit=1000) for op in operations],
                [(tx.checkpoint(op.id), tx.heartbeat(op.id)) for op in operations],
            )

    _WRITES: Final[dict[str, Callable[[Transaction], object]]] = {
        "insert": lambda tx: tx.insert(_operation(2, ts=2)),
        "update": lambda tx: tx.update(attrs.evolve(_operation(1, ts=1), valid=False)),
        "stage": lambda tx: tx.stage(_operation(1).id, _records("z")),
        "record_errors": lambda tx: tx.record_errors(_operation(1).id, [
            (r.position, {"message": "lost"}) for r in tx.staged(_operation(1).id, after=None,
                                                                  limit=10)
        ]),
        "deselect": lambda tx: tx.deselect(_operation(1).id, [
            r.position for r in tx.staged(_operation(1).id, after=None, limit=10)
        ]),
        "remove_succeeded": lambda tx: tx.remove_succeeded(_operation(1).id),
        "unstage_all": lambda tx: tx.unstage_all(),
        "set_checkpoint": lambda tx: tx.set_checkpoint(_operation(1).id, None, _at(99)),
    }

    @pytest.mark.parametrize("write", sorted(_WRITES))
    def test_a_transaction_that_raises_rolls_back(
        self, open_store: StoreFactory, write: str,
    ) -> None:
        writer, reader = open_store(), open_store()
        self._populate(writer)
        before = self._snapshot(reader)

        def write_then_fail() -> None:
            with writer.transaction() as tx:
                self._WRITES[write](tx)
                raise _Boom

        with pytest.raises(_Boom):
            write_then_fail()
        assert self._snapshot(reader) == before, f"{write} was not rolled back"
        assert self._snapshot(writer) == before, f"{write} was not rolled back"

    def test_a_transaction_reads_its_own_writes(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.insert(_operation(1))
            assert tx.get(_operation(1).id) == _operation(1)
            tx.stage(_operation(1).id, _records("a"))
            assert _usernames(tx.staged(_operation(1).id, after=None, limit=5)) == ["a"]

    # -- several handles -------------------------------------------------------------------

    def test_handles_see_each_others_writes(self, open_store: StoreFactory) -> None:
        one, two = open_store(), open_store()
        with one.transaction() as tx:
            tx.insert(_operation(1))
            tx.stage(_operation(1).id, _records("a"))
        with two.reading() as tx:
            assert tx.get(_operation(1).id) == _operation(1)
            assert _usernames(tx.staged(_operation(1).id, after=None, limit=5)) == ["a"]
        with two.transaction() as tx:
            tx.update(attrs.evolve(_operation(1), valid=False))
            tx.set_checkpoint(_operation(1).id, 3, _T0)
        with one.reading() as tx:
            current = tx.current()
            assert current is not None
            assert not current.valid
            assert tx.checkpoint(_operation(1).id) == 3

    def test_a_closed_handle_leaves_the_others_working(self, open_store: StoreFactory) -> None:
        one, two = open_store(), open_store()
        with one.transaction() as tx:
            tx.insert(_operation(1))
        one.close()
        with two.reading() as tx:
            assert tx.get(_operation(1).id) == _operation(1)

    def test_a_reader_never_sees_an_uncommitted_write(self, open_store: StoreFactory) -> None:
        writer, reader = open_store(), open_store()
        written, committing = threading.Event(), threading.Event()
        seen: list[tuple[bool, bool]] = []

        def write() -> None:
            with writer.transaction() as tx:
                tx.insert(_operation(1))
                written.set()
                # Give the reader time to look while the write is uncommitted.
                committing.wait(0.2)
                committing.set()

        def read() -> None:
            written.wait(_THREAD_TIMEOUT)
            with reader.reading() as tx:
                found = tx.get(_operation(1).id) is not None
            seen.append((found, committing.is_set()))

        _run_threads([write, read])
        (found, after_commit_began), = seen
        assert not found or after_commit_began, "a reader saw a write before its commit"

    def test_concurrent_writers_lose_no_update(self, open_store: StoreFactory) -> None:
        with open_store().transaction() as tx:
            tx.insert(_operation(1))
        rounds = 15

        def add_one_at_a_time(handle: Store) -> Callable[[], None]:
            def work() -> None:
                for _ in range(rounds):
                    with handle.transaction() as tx:
                        op = tx.get(_operation(1).id)
                        assert op is not None
                        tx.update(attrs.evolve(op, count=op.count.added(completed=1)))
            return work

        _run_threads([add_one_at_a_time(open_store()) for _ in range(3)])
        with open_store().reading() as tx:
            op = tx.get(_operation(1).id)
        assert op is not None
        assert op.count.completed == 3 * rounds, "concurrent transactions lost an update"


def _run_threads(work: list[Callable[[], None]]) -> None:
    """Run each callable in a thread; re-raise the first failure."""
    failures: list[BaseException] = []

    def guarded(job: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                job()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
                failures.append(exc)
        return run

    threads = [threading.Thread(target=guarded(job)) for job in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(_THREAD_TIMEOUT)
        assert not thread.is_alive(), "a store call did not return (deadlock?)"
    if failures:
        raise failures[0]

