"""The conformance suite of the optional batch claims: subclass :class:`BatchClaimsTests`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, suppress
from typing import Final, Protocol

from importstate.stores import (
    Batch,
    BatchClaims,
    BatchTransaction,
    StagedRecord,
    Store,
)
from importstate.testing._store_tests import (
    _Boom,
    _Handles,
    _operation,
    _records,
    _run_threads,
    _usernames,
)

#: A lease no test outlives: the batch stays with its holder.
_LONG: Final = 60.0
#: A lease that expires within a test, and a wait after which it has expired.
_SHORT: Final = 0.2
_EXPIRED: Final = 0.35
_THREAD_TIMEOUT: Final = 30.0


class ClaimsStore(Store, BatchClaims, Protocol):
    """A store with :class:`~importstate.stores.BatchClaims`: what ``make_store`` returns."""

    def transaction(self) -> AbstractContextManager[BatchTransaction]:
        """A read-write transaction with the batch table."""


ClaimsStoreFactory = Callable[[], ClaimsStore]


def _cut(store: ClaimsStore, users: int, size: int, *, number: int = 1) -> str:
    """Insert operation ``number``, stage ``users`` users and cut them into batches of ``size``."""
    operation_id = _operation(number).id
    with store.transaction() as tx:
        tx.insert(_operation(number))
        tx.stage(operation_id, _records(*(f"op{number}-u{n}" for n in range(users))))
        tx.cut_batches(operation_id, "user", size)
    return operation_id


def _claim(
    store: ClaimsStore, operation_id: str, holder: str, lease: float = _LONG,
) -> tuple[Batch, list[StagedRecord]]:
    """Claim a batch that must be claimable."""
    claimed = store.claim_batch(operation_id, holder, lease)
    assert claimed is not None, f"{holder} found no claimable batch"
    assert claimed[0].holder == holder
    assert claimed[0].operation_id == operation_id
    return claimed


def _finish(store: ClaimsStore, batch: Batch) -> int | None:
    """``finish_batch`` in a transaction of its own."""
    with store.transaction() as tx:
        return tx.finish_batch(batch)


def _staged(store: ClaimsStore, operation_id: str) -> list[StagedRecord]:
    with store.reading() as tx:
        return tx.staged(operation_id, after=None, limit=10_000)


def _rolled_back(
    store: ClaimsStore, write: Callable[[BatchTransaction], int | None],
) -> int | None:
    """``write``'s result, in a transaction that raises afterwards, so it rolls back."""
    result: list[int | None] = []
    with suppress(_Boom), store.transaction() as tx:
        result.append(write(tx))
        raise _Boom
    return result[0]


class BatchClaimsTests(_Handles[ClaimsStore]):
    """The conformance suite of :class:`~importstate.stores.BatchClaims`, as a pytest base class.

    For a store that offers parallel workers batch claims. Subclass it (the
    subclass's name must start with ``Test``) and provide the same fixture
    ``make_store`` as for :class:`~importstate.testing.StoreTests`: a
    zero-argument callable, each call returning a new handle on the same
    store, empty when the test starts. Handles must be separate clients
    (connections) where the store has them: exclusivity between workers is
    checked between handles, from several threads at once::

        class TestMyStore(StoreTests, BatchClaimsTests):
            @pytest.fixture
            def make_store(self, my_server):
                return lambda: MyStore(my_server.url)

    It checks what ``ImportService.run(workers=N)`` and ``work()`` rely on:
    staged users cut into fixed batches by staging order (one type per cut,
    numbered after the cuts before, without the records a selection left
    out), claims in batch order, one holder per batch while its lease holds, the last batch only
    once every other is done, expired leases taken over, ``finish_batch``
    counting only for the holder, ``renew_leases`` extending only the
    holder's lease, and ``unstage_all`` dropping the batches. Leases in these
    tests last a fraction of a second, so the store's lease clock must
    resolve them (no whole-second rounding); each test takes under a second
    or two. Handles opened through ``make_store`` are closed after each test.
    """

    # -- the protocol ----------------------------------------------------------------------

    def test_satisfies_the_batch_claims_protocol(self, store: ClaimsStore) -> None:
        """The store and its transactions have every method of the batch claims."""
        assert isinstance(store, BatchClaims)
        with store.transaction() as tx:
            assert isinstance(tx, BatchTransaction)

    # -- cutting ---------------------------------------------------------------------------

    def test_an_operation_not_cut_has_no_batches(self, store: ClaimsStore) -> None:
        """Before ``cut_batches`` the operation does not run in batches: count 0, no claim."""
        operation_id = _operation(1).id
        with store.transaction() as tx:
            tx.insert(_operation(1))
            tx.stage(operation_id, _records("a", "b"))
        with store.transaction() as tx:
            assert tx.batch_count(operation_id) == 0
        assert store.claim_batch(operation_id, "w1", _LONG) is None

    def test_cut_batches_returns_how_many_batches_of_size(self, store: ClaimsStore) -> None:
        """7 users in batches of 3 make 3 batches (the last short); 6 in batches of 3 make 2."""
        with store.transaction() as tx:
            for number, users in ((1, 7), (2, 6), (3, 1)):
                tx.insert(_operation(number))
                tx.stage(_operation(number).id, _records(*(f"u{n}" for n in range(users))))
            assert tx.cut_batches(_operation(1).id, "user", 3) == 3
            assert tx.cut_batches(_operation(2).id, "user", 3) == 2
            assert tx.cut_batches(_operation(3).id, "user", 50) == 1
        with store.transaction() as tx:
            assert tx.batch_count(_operation(1).id) == 3
            assert tx.batch_count(_operation(2).id) == 2
            assert tx.batch_count(_operation(3).id) == 1

    def test_cut_batches_of_zero_staged_users_makes_none(self, store: ClaimsStore) -> None:
        """An operation without staged users is cut into 0 batches: nothing to claim."""
        operation_id = _operation(1).id
        with store.transaction() as tx:
            tx.insert(_operation(1))
            assert tx.cut_batches(operation_id, "user", 50) == 0
        with store.transaction() as tx:
            assert tx.batch_count(operation_id) == 0
        assert store.claim_batch(operation_id, "w1", _LONG) is None

    def test_batch_count_keeps_counting_done_batches(self, store: ClaimsStore) -> None:
        """``batch_count`` is how many batches the run was cut into, done or not."""
        operation_id = _cut(store, 3, 2)
        while (got := store.claim_batch(operation_id, "w1", _LONG)) is not None:
            _finish(store, got[0])
        with store.transaction() as tx:
            assert tx.batch_count(operation_id) == 2

    def test_batches_hold_the_staged_users_in_staging_order(self, store: ClaimsStore) -> None:
        """Batch ``n`` is staged users ``n*size``.. by position; the last one is short."""
        operation_id = _cut(store, 7, 3)
        staged = _staged(store, operation_id)
        claimed = []
        while (got := store.claim_batch(operation_id, "w1", _LONG)) is not None:
            claimed.append(got)
            assert _finish(store, got[0]) is not None
        assert [batch.number for batch, _ in claimed] == [0, 1, 2]
        for (batch, records), expected in zip(
            claimed, (staged[0:3], staged[3:6], staged[6:7]), strict=True,
        ):
            assert records == expected
            assert (batch.first, batch.last) == (expected[0].position, expected[-1].position)

    def test_batches_hold_only_their_operations_users(self, store: ClaimsStore) -> None:
        """Users of two operations staged in turns: each operation's batches hold its own."""
        first, second = _operation(1).id, _operation(2).id
        with store.transaction() as tx:
            tx.insert(_operation(1))
            tx.insert(_operation(2))
            for turn in range(3):
                tx.stage(first, _records(f"a{turn}"))
                tx.stage(second, _records(f"b{turn}"))
            assert tx.cut_batches(first, "user", 2) == 2
            assert tx.cut_batches(second, "user", 3) == 1
        batch, records = _claim(store, first, "w1")
        assert _usernames(records) == ["a0", "a1"]
        assert _usernames(_claim(store, second, "w1")[1]) == ["b0", "b1", "b2"]
        _finish(store, batch)
        assert _usernames(_claim(store, first, "w1")[1]) == ["a2"]

    def test_a_cut_takes_one_type_numbered_after_the_batches_cut_before(
        self, store: ClaimsStore,
    ) -> None:
        """A run cuts a type's batches once the ones before are done: they follow in number.

        Types staged in turns: each batch holds records of its own type only,
        and the last batch of the later cut is claimable once every other of
        that cut is done.
        """
        operation_id = _operation(1).id
        with store.transaction() as tx:
            tx.insert(_operation(1))
            for turn in range(3):
                tx.stage(operation_id, _records(f"u{turn}"))
                tx.stage(operation_id, _records(f"c{turn}a", f"c{turn}b", data_type="channel"))
            assert tx.cut_batches(operation_id, "user", 2) == 2
        users = []
        while (got := store.claim_batch(operation_id, "w1", _LONG)) is not None:
            users.append(got)
            _finish(store, got[0])
        assert [(b.number, _usernames(r)) for b, r in users] == [(0, ["u0", "u1"]), (1, ["u2"])]
        with store.transaction() as tx:
            assert tx.cut_batches(operation_id, "channel", 4) == 2
            assert tx.batch_count(operation_id) == 4
        first, records = _claim(store, operation_id, "w1")
        assert first.number == 2
        assert _usernames(records) == ["c0a", "c0b", "c1a", "c1b"]
        assert {r.data_type for r in records} == {"channel"}
        assert store.claim_batch(operation_id, "w2", _LONG) is None, (
            "the last batch of a cut was claimable while another of that cut was in hand"
        )
        assert _finish(store, first) == 1
        last, records = _claim(store, operation_id, "w2")
        assert (last.number, _usernames(records)) == (3, ["c2a", "c2b"])
        assert _finish(store, last) == 0

    def test_deselected_records_are_neither_cut_nor_handed_out(self, store: ClaimsStore) -> None:
        """What a run's selection left out is in no batch, and comes with no claim."""
        operation_id = _operation(1).id
        with store.transaction() as tx:
            tx.insert(_operation(1))
            tx.stage(operation_id, _records(*(f"u{n}" for n in range(5))))
            staged = tx.staged(operation_id, after=None, limit=10)
            tx.deselect(operation_id, [staged[1].position, staged[2].position])
            assert tx.cut_batches(operation_id, "user", 2) == 2
        handed = []
        while (got := store.claim_batch(operation_id, "w1", _LONG)) is not None:
            handed += _usernames(got[1])
            _finish(store, got[0])
        assert handed == ["u0", "u3", "u4"]

    def test_a_rolled_back_cut_leaves_no_batches(self, store: ClaimsStore) -> None:
        """A run whose starting transaction rolls back does not run in batches."""
        operation_id = _operation(1).id
        with store.transaction() as tx:
            tx.insert(_operation(1))
            tx.stage(operation_id, _records("a", "b", "c"))
        assert _rolled_back(store, lambda tx: tx.cut_batches(operation_id, "user", 2)) == 2
        with store.transaction() as tx:
            assert tx.batch_count(operation_id) == 0
        assert store.claim_batch(operation_id, "w1", _LONG) is None

    # -- claiming --------------------------------------------------------------------------

    def test_claims_go_in_batch_number_order(self, store: ClaimsStore) -> None:
        """Each claim leases the lowest-numbered claimable batch, to the given holder."""
        operation_id = _cut(store, 10, 2)
        numbers = [_claim(store, operation_id, f"w{n}")[0].number for n in range(4)]
        assert numbers == [0, 1, 2, 3]

    def test_a_held_batch_is_not_claimed_by_another_handle(
        self, open_store: ClaimsStoreFactory,
    ) -> None:
        """While its lease holds, a batch goes to nobody else, through any handle."""
        first, second = open_store(), open_store()
        operation_id = _cut(first, 6, 2)
        assert _claim(first, operation_id, "w1")[0].number == 0
        assert _claim(second, operation_id, "w2")[0].number == 1
        assert second.claim_batch(operation_id, "w3", _LONG) is None, (
            "batches 0 and 1 are held and batch 2, the last, waits for them"
        )

    def test_a_holder_does_not_claim_its_own_held_batch_again(self, store: ClaimsStore) -> None:
        """A second claim by the same holder leases the next batch, not the one in hand."""
        operation_id = _cut(store, 6, 2)
        assert _claim(store, operation_id, "w1")[0].number == 0
        assert _claim(store, operation_id, "w1")[0].number == 1

    def test_concurrent_claimers_never_get_the_same_batch(
        self, open_store: ClaimsStoreFactory,
    ) -> None:
        """Four handles claiming at once from four threads: every batch goes to one of them."""
        batches = 21
        operation_id = _cut(open_store(), batches, 1)
        handles = [open_store() for _ in range(4)]
        claimed: list[int] = []
        lock = threading.Lock()
        start = threading.Barrier(len(handles), timeout=_THREAD_TIMEOUT)
        deadline = time.monotonic() + _THREAD_TIMEOUT

        def claimer(handle: ClaimsStore, holder: str) -> Callable[[], None]:
            def claim_all() -> None:
                start.wait()
                # A claim may find nothing while others lock rows: claim until all are taken.
                while time.monotonic() < deadline:
                    with lock:
                        if len(claimed) >= batches - 1:
                            return
                    got = handle.claim_batch(operation_id, holder, _LONG)
                    if got is not None:
                        with lock:
                            claimed.append(got[0].number)
            return claim_all

        _run_threads([claimer(handle, f"w{n}") for n, handle in enumerate(handles)])
        assert sorted(claimed) == list(range(batches - 1)), (
            "each batch but the last must be claimed exactly once"
        )

    def test_a_single_batch_is_claimable_at_once(self, store: ClaimsStore) -> None:
        """One batch is both first and last: nothing else has to be done first."""
        operation_id = _cut(store, 3, 50)
        batch, records = _claim(store, operation_id, "w1")
        assert batch.number == 0
        assert len(records) == 3

    def test_the_last_batch_is_claimable_only_once_every_other_is_done(
        self, store: ClaimsStore,
    ) -> None:
        """The last batch commits last: it waits until each other batch is done, not just held."""
        operation_id = _cut(store, 5, 2)
        zero, _ = _claim(store, operation_id, "w1")
        one, _ = _claim(store, operation_id, "w2")
        assert store.claim_batch(operation_id, "w3", _LONG) is None, (
            "the last batch was claimable while batches 0 and 1 were in hand"
        )
        assert _finish(store, zero) is not None
        assert store.claim_batch(operation_id, "w3", _LONG) is None, (
            "the last batch was claimable while batch 1 was in hand"
        )
        assert _finish(store, one) is not None
        last, records = _claim(store, operation_id, "w3")
        assert last.number == 2
        assert len(records) == 1

    def test_an_expired_lease_makes_the_batch_claimable_again(
        self, open_store: ClaimsStoreFactory,
    ) -> None:
        """A batch whose worker died goes to the next claimer once its lease runs out.

        It comes before the batches nobody claimed yet: the lowest number first.
        """
        first, second = open_store(), open_store()
        operation_id = _cut(first, 8, 2)
        lost, records = _claim(first, operation_id, "dead", _SHORT)
        time.sleep(_EXPIRED)
        taken, again = _claim(second, operation_id, "w2")
        assert taken.number == lost.number == 0, (
            "the batch whose lease expired was not claimed again, before batch 1"
        )
        assert again == records
        assert _claim(second, operation_id, "w3")[0].number == 1, "the batch taken over was not"

    def test_a_renewed_lease_holds_past_its_first_expiry(
        self, open_store: ClaimsStoreFactory,
    ) -> None:
        """``renew_leases`` extends the holder's lease from now: nobody takes the batch over."""
        first, second = open_store(), open_store()
        operation_id = _cut(first, 6, 2)
        held, _ = _claim(first, operation_id, "w1", _SHORT)
        first.renew_leases([held], _LONG)
        time.sleep(_EXPIRED)
        assert _claim(second, operation_id, "w2")[0].number == 1, (
            "a renewed lease was taken over"
        )
        assert _finish(first, held) == 2

    def test_renew_leases_extends_only_the_holders_lease(
        self, open_store: ClaimsStoreFactory,
    ) -> None:
        """A worker whose batch was taken over cannot renew the new holder's lease."""
        first, second, third = open_store(), open_store(), open_store()
        operation_id = _cut(first, 6, 2)
        lost, _ = _claim(first, operation_id, "slow", _SHORT)
        time.sleep(_EXPIRED)
        assert _claim(second, operation_id, "w2", _SHORT)[0].number == 0
        first.renew_leases([lost], _LONG)
        time.sleep(_EXPIRED)
        assert _claim(third, operation_id, "w3")[0].number == 0, (
            "renewing a lost lease extended another holder's lease"
        )

    def test_renew_leases_of_no_batches_does_nothing(self, store: ClaimsStore) -> None:
        """A renewal round with nothing in hand is harmless."""
        operation_id = _cut(store, 2, 1)
        store.renew_leases([], _LONG)
        assert _claim(store, operation_id, "w1")[0].number == 0

    # -- finishing -------------------------------------------------------------------------

    def test_finish_batch_returns_how_many_batches_are_left(self, store: ClaimsStore) -> None:
        """Each finish counts down the batches not done; the last one's finish returns 0."""
        operation_id = _cut(store, 7, 2)
        left = []
        while (got := store.claim_batch(operation_id, "w1", _LONG)) is not None:
            left.append(_finish(store, got[0]))
        assert left == [3, 2, 1, 0]

    def test_finish_batch_counts_only_for_the_lease_holder(
        self, open_store: ClaimsStoreFactory,
    ) -> None:
        """A worker whose lease was taken over gets ``None`` and writes nothing."""
        first, second = open_store(), open_store()
        operation_id = _cut(first, 6, 2)
        lost, _ = _claim(first, operation_id, "slow", _SHORT)
        time.sleep(_EXPIRED)
        taken, _ = _claim(second, operation_id, "w2")
        assert _finish(first, lost) is None, "a finish counted for a holder whose lease was lost"
        assert _finish(second, taken) == 2, "the lost holder's finish changed the batch"

    def test_finish_batch_of_a_stranger_returns_none(self, store: ClaimsStore) -> None:
        """A holder that never claimed the batch cannot finish it."""
        operation_id = _cut(store, 6, 2)
        held, _ = _claim(store, operation_id, "w1")
        assert _finish(store, held._replace(holder="stranger")) is None
        assert _finish(store, held) == 2

    def test_finish_batch_of_a_done_batch_returns_none(self, store: ClaimsStore) -> None:
        """A batch is done once: finishing it again counts nothing."""
        operation_id = _cut(store, 6, 2)
        held, _ = _claim(store, operation_id, "w1")
        assert _finish(store, held) == 2
        assert _finish(store, held) is None
        assert _claim(store, operation_id, "w1")[0].number == 1, "a done batch was claimed"

    def test_finish_batch_counts_after_expiry_if_nobody_took_over(
        self, store: ClaimsStore,
    ) -> None:
        """An expired lease nobody claimed since is still the holder's: its finish counts."""
        operation_id = _cut(store, 6, 2)
        held, _ = _claim(store, operation_id, "w1", _SHORT)
        time.sleep(_EXPIRED)
        assert _finish(store, held) == 2

    def test_a_rolled_back_finish_leaves_the_batch_in_hand(self, store: ClaimsStore) -> None:
        """A batch commit that rolls back does not mark the batch done; its holder can retry."""
        operation_id = _cut(store, 6, 2)
        held, _ = _claim(store, operation_id, "w1")
        assert _rolled_back(store, lambda tx: tx.finish_batch(held)) == 2
        assert _claim(store, operation_id, "w2")[0].number == 1, "the batch was taken from w1"
        assert _finish(store, held) == 2

    def test_a_batch_being_finished_is_not_taken_over(
        self, open_store: ClaimsStoreFactory,
    ) -> None:
        """A lease that expires while its holder's finishing transaction is open stays its own.

        The claim in another thread either skips the batch or waits for the
        commit; either way it must not get it.
        """
        first, second = open_store(), open_store()
        operation_id = _cut(first, 6, 2)
        held, _ = _claim(first, operation_id, "w1", _SHORT)
        claims: list[int | None] = []

        def claim() -> None:
            got = second.claim_batch(operation_id, "w2", _LONG)
            claims.append(got[0].number if got is not None else None)

        claimer = threading.Thread(target=claim)
        with first.transaction() as tx:
            assert tx.finish_batch(held) == 2
            time.sleep(_EXPIRED)
            claimer.start()
            claimer.join(0.5)  # a store whose claim waits for the commit is still waiting
        claimer.join(_THREAD_TIMEOUT)
        assert not claimer.is_alive(), "the claim did not return (deadlock?)"
        assert claims == [1], "a batch was taken over while its holder was committing it"

    def test_concurrent_finishes_count_down_to_zero_once(
        self, open_store: ClaimsStoreFactory,
    ) -> None:
        """Batches finished at once from several handles: each count left is seen once.

        The service finishes the run when a finish returns 0, so two commits
        must never both see the same number of batches left.
        """
        batches = 6
        operation_id = _cut(open_store(), batches, 1)
        handles = [open_store() for _ in range(batches - 1)]
        held = [_claim(handle, operation_id, f"w{n}")[0] for n, handle in enumerate(handles)]
        left: list[int | None] = []
        start = threading.Barrier(len(handles), timeout=_THREAD_TIMEOUT)

        def finisher(handle: ClaimsStore, batch: Batch) -> Callable[[], None]:
            def finish() -> None:
                start.wait()
                left.append(_finish(handle, batch))
            return finish

        _run_threads([finisher(h, b) for h, b in zip(handles, held, strict=True)])
        assert None not in left, f"a holder's finish did not count: {left}"
        assert sorted(n for n in left if n is not None) == list(range(1, batches)), (
            f"two finishes saw the same number of batches left: {left}"
        )
        last, _ = _claim(handles[0], operation_id, "w-last")
        assert _finish(handles[0], last) == 0

    # -- unstaging -------------------------------------------------------------------------

    def test_unstage_all_drops_the_batches(self, store: ClaimsStore) -> None:
        """After ``unstage_all`` (a new operation) no operation has batches left to claim."""
        first = _cut(store, 4, 2, number=1)
        second = _cut(store, 3, 2, number=2)
        _claim(store, first, "w1")
        with store.transaction() as tx:
            assert tx.unstage_all() == 7
        with store.transaction() as tx:
            assert tx.batch_count(first) == 0
            assert tx.batch_count(second) == 0
        assert store.claim_batch(first, "w1", _LONG) is None
        assert store.claim_batch(second, "w1", _LONG) is None
