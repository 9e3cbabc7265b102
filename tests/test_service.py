import datetime as dt
import itertools
import multiprocessing
import threading
import time

import pytest
from clocks import Clock

from importstate import (
    DataType,
    ImporterCannotImport,
    ImporterNotDefined,
    ImportService,
    InvalidOperationStatus,
    InvalidRoles,
    InvalidTransition,
    InvalidUserList,
    MemoryStore,
    MissingChannelData,
    MissingMessageData,
    MissingUserData,
    OperationAlreadyFinished,
    OperationCannotReceiveData,
    OperationNotFound,
    OperationNotInitialized,
    ProgressStep,
    SQLiteStore,
    State,
)
from importstate.stores import memory


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    made = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "t.db")
    yield made
    made.close()


def user(n, **extra):
    return {"username": f"user{n}", "emails": [f"user{n}@example.com"], "importIds": [str(n)],
            **extra}


def failing_on(*ids):
    """An importer that fails the users whose first importIds entry is in ``ids``."""
    def import_user(data):
        if data["importIds"][0] in ids:
            raise ValueError(f"cannot import {data['username']}")
    return import_user


def service(store, importer=None, **options):
    return ImportService(store, {"api": importer or (lambda _user: None)}, clock=Clock(),
                         **options)


# -- new, clear, status ------------------------------------------------------------------


def test_status_without_operations(store):
    svc = service(store)
    assert svc.status() == {"state": "none"}
    assert svc.current_operation() is None
    assert svc.latest_operations() == []


def test_new_operation(store):
    svc = service(store)
    op = svc.new_operation("rbAXPnMktTFbNpwtJ")
    doc = op.to_wire()
    assert {k: doc[k] for k in ("type", "importerKey", "status", "valid", "user")} == {
        "type": "api", "importerKey": "api", "status": "importer_new", "valid": True,
        "user": "rbAXPnMktTFbNpwtJ",
    }
    assert svc.status() == {"state": "new", "operation": doc}


def test_new_operation_invalidates_the_old_one_and_clears_staging(store):
    svc = service(store)
    first = svc.new_operation("u")
    svc.add_users([user(1), user(2)])
    second = svc.new_operation("u")
    assert svc.current_operation().id == second.id
    old = next(op for op in svc.latest_operations() if op.id == first.id)
    assert not old.valid
    assert old.state is State.ERROR
    assert old.updated_at > first.updated_at
    assert list(svc.staged_users()) == []
    with store.reading() as tx:
        assert tx.staged(first.id, after=None, limit=10) == []
    assert [op.valid for op in svc.latest_operations()].count(True) == 1


def test_clear_leaves_invalid_operations_alone_and_done_stays_done(store):
    svc = service(store)
    svc.new_operation("u")
    svc.add_users([user(1)])
    done = svc.run()
    svc.clear()
    cleared = svc.current_operation()
    assert cleared.state is State.DONE
    assert not cleared.valid
    stamp = cleared.updated_at
    svc.clear()
    assert svc.current_operation().updated_at == stamp  # already invalid: not written again
    assert done.id == cleared.id


def test_clear_turns_a_ready_operation_into_error(store):
    svc = service(store)
    svc.new_operation("u")
    svc.add_users([user(1)])
    svc.clear()
    assert svc.status()["state"] == "error"
    assert list(svc.staged_users()) == []


# -- add_users: every check of Behaviour: service, in order ----------------------------------------


def test_empty_list_does_nothing_even_without_an_operation(store):
    svc = service(store)
    assert svc.add_users([]) is None
    assert svc.status() == {"state": "none"}


def test_add_users_needs_an_operation(store):
    svc = service(store)
    with pytest.raises(OperationNotInitialized) as caught:
        svc.add_users([user(1)])
    assert str(caught.value) == "Import operation not initialized."


def test_add_users_needs_a_valid_operation(store):
    svc = service(store)
    svc.new_operation("u")
    svc.clear()
    with pytest.raises(OperationNotInitialized):
        svc.add_users([user(1)])


def test_add_users_refused_while_loading(store):
    svc = service(store)
    svc.new_operation("u")
    svc.begin_loading(file="users.csv", content_type="text/csv")
    with pytest.raises(OperationCannotReceiveData) as caught:
        svc.add_users([user(1)])
    assert str(caught.value) == "The current import operation can not receive new data."


def test_add_users_refused_while_importing(store):
    svc = service(store)
    svc.new_operation("u")
    svc.add_users([user(1)])
    seen = []

    def importer(data):
        with pytest.raises(OperationCannotReceiveData):
            svc.add_users([user(2)])
        seen.append(data)

    svc.run(importer)
    assert len(seen) == 1


@pytest.mark.parametrize("finish", ["done", "cancel"])
def test_add_users_refused_when_finished(store, finish):
    svc = service(store)
    svc.new_operation("u")
    svc.add_users([user(1)])
    svc.run() if finish == "done" else svc.cancel()
    with pytest.raises(OperationAlreadyFinished) as caught:
        svc.add_users([user(2)])
    assert str(caught.value) == "The current import operation is already finished."


def test_add_users_refused_when_failed(store):
    svc = service(store)
    svc.new_operation("u")
    svc.add_users([user(1)])
    with store.transaction() as tx:  # a run that failed, as a crashed library would leave it
        op = tx.current()
        op = op.fire("start", at=op.updated_at).fire("fail", at=op.updated_at)
        tx.update(op)
    with pytest.raises(OperationAlreadyFinished):
        svc.add_users([user(2)])


@pytest.mark.parametrize("bad", [
    "not a user",
    None,
    ["emails"],
    {"importIds": ["1"]},
    {"emails": ["a@example.com"]},
    {"emails": [], "importIds": ["1"]},
    {"emails": [""], "importIds": ["1"]},
    {"emails": ["a@example.com"], "importIds": [""]},
    {"emails": "a@example.com", "importIds": ["1"]},
    {"emails": ["a@example.com"], "importIds": [1]},
])
def test_users_missing_required_data_stage_nothing(store, bad):
    svc = service(store)
    svc.new_operation("u")
    with pytest.raises(MissingUserData) as caught:
        svc.add_users([user(1), user(2), bad])
    assert str(caught.value) == "Users are missing required data."
    assert caught.value.index == 2
    assert list(svc.staged_users()) == []
    assert svc.status()["state"] == "new"


@pytest.mark.parametrize("roles", [["owner"], ["user", "superuser"], "admin", [7]])
def test_invalid_roles_stage_nothing(store, roles):
    svc = service(store)
    svc.new_operation("u")
    with pytest.raises(InvalidRoles) as caught:
        svc.add_users([user(1), user(2, roles=roles)])
    assert str(caught.value) == "One or more of the users have been assigned invalid roles."
    assert caught.value.index == 1
    assert list(svc.staged_users()) == []


def test_missing_data_is_checked_before_roles(store):
    svc = service(store)
    svc.new_operation("u")
    with pytest.raises(MissingUserData):
        svc.add_users([user(1, roles=["owner"]), {"emails": ["x@example.com"]}])


def test_the_operation_is_checked_before_the_users(store):
    svc = service(store)
    with pytest.raises(OperationNotInitialized):
        svc.add_users([{"no": "data"}])


@pytest.mark.parametrize("users", [{"users": []}, "users", 5, None])
def test_users_must_be_a_list(store, users):
    svc = service(store)
    svc.new_operation("u")
    with pytest.raises(InvalidUserList):
        svc.add_users(users)


def test_add_users_stages_with_default_roles_and_counts(store):
    svc = service(store)
    svc.new_operation("u")
    svc.add_users([user(1, roles=["admin"]), user(2, roles=["user", "bot"]), user(3)])
    op = svc.add_users([user(4)])
    assert op.state is State.READY
    assert op.count.to_wire() == {"total": 4, "users": 4}
    staged = list(svc.staged_users())
    assert [r["data"]["roles"] for r in staged] == [
        ["admin", "user"], ["user", "bot"], ["user"], ["user"],
    ]
    assert {r["dataType"] for r in staged} == {"user"}
    assert len({r["_id"] for r in staged}) == 4
    assert all("errors" not in r for r in staged)
    assert svc.status()["operation"]["status"] == "importer_user_selection"


def test_custom_role_policy(store):
    svc = service(store, known_roles=["user", "importer"], default_roles=["importer"])
    svc.new_operation("u")
    svc.add_users([user(1, roles=["user"])])
    assert next(svc.staged_users())["data"]["roles"] == ["user", "importer"]
    with pytest.raises(InvalidRoles):
        svc.add_users([user(2, roles=["admin"])])


def test_staged_data_is_a_copy(store):
    svc = service(store)
    svc.new_operation("u")
    given = user(1)
    svc.add_users([given])
    given["emails"].append("changed@example.com")
    assert next(svc.staged_users())["data"]["emails"] == ["user1@example.com"]


# -- add_users_from: a stream of chunks --------------------------------------------------


def chunked(users, size):
    return [users[i:i + size] for i in range(0, len(users), size)]


def test_add_users_from_stages_every_chunk_and_counts_once(store):
    svc = service(store)
    svc.new_operation("u")
    svc.add_users([user(0)])
    op = svc.add_users_from(iter(chunked([user(n) for n in range(1, 26)], 10)))
    assert op.state is State.READY
    assert op.count.to_wire() == {"total": 26, "users": 26}
    staged = list(svc.staged_users())
    assert [r["data"]["importIds"] for r in staged] == [[str(n)] for n in range(26)]
    assert all(r["data"]["roles"] == ["user"] for r in staged)
    assert svc.status() == {"state": "ready", "operation": op.to_wire()}


def test_add_users_from_nothing_does_nothing_even_without_an_operation(store):
    svc = service(store)
    assert svc.add_users_from([]) is None
    assert svc.add_users_from([[], [], []]) is None
    assert svc.status() == {"state": "none"}


@pytest.mark.parametrize(("bad", "error", "index"), [
    ({"emails": ["x@example.com"]}, MissingUserData, 23),
    (user(99, roles=["owner"]), InvalidRoles, 23),
])
def test_a_bad_user_in_a_later_chunk_rolls_back_every_chunk(store, bad, error, index):
    svc = service(store)
    svc.new_operation("u")
    users = [user(n) for n in range(30)]
    users[23] = bad
    with pytest.raises(error) as raised:
        svc.add_users_from(chunked(users, 10))
    assert raised.value.index == index  # counted over the whole stream
    assert svc.status()["state"] == "new"
    assert list(svc.staged_users()) == []


def test_a_stream_that_raises_stages_nothing(store):
    svc = service(store)
    svc.new_operation("u")

    def chunks():
        yield [user(1), user(2)]
        raise OSError("the file went away")

    with pytest.raises(OSError, match="went away"):
        svc.add_users_from(chunks())
    assert svc.status()["state"] == "new"
    assert list(svc.staged_users()) == []


def test_add_users_from_checks_the_operation_before_reading_on(store):
    svc = service(store)
    read = []

    def chunks():
        for n in range(3):
            read.append(n)
            yield [user(n)]

    with pytest.raises(OperationNotInitialized):
        svc.add_users_from(chunks())
    assert read == [0]
    svc.new_operation("u")
    svc.cancel()
    with pytest.raises(OperationAlreadyFinished):
        svc.add_users_from([[user(1)]])


def test_add_users_from_refuses_a_chunk_that_is_not_a_list(store):
    svc = service(store)
    svc.new_operation("u")
    with pytest.raises(InvalidUserList):
        svc.add_users_from([[user(1)], user(2)])
    assert list(svc.staged_users()) == []


# -- run ---------------------------------------------------------------------------------


def test_run_without_operation(store):
    with pytest.raises(OperationNotFound) as caught:
        service(store).run()
    assert str(caught.value) == "error-operation-not-found"


def test_run_on_an_invalid_operation(store):
    svc = service(store)
    svc.new_operation("u")
    svc.add_users([user(1)])
    svc.clear()
    with pytest.raises(OperationNotFound):
        svc.run()


@pytest.mark.parametrize("setup", ["new", "done"])
def test_run_needs_user_selection(store, setup):
    svc = service(store)
    svc.new_operation("u")
    if setup == "done":
        svc.add_users([user(1)])
        svc.run()
    with pytest.raises(InvalidOperationStatus) as caught:
        svc.run()
    assert str(caught.value) == "error-invalid-operation-status"


def test_run_with_an_unknown_importer(store):
    svc = ImportService(store, {}, clock=Clock())
    svc.new_operation("u", type="CSV", importer_key="csv")
    with store.transaction() as tx:
        op = tx.current()
        tx.update(op.fire("stage", at=op.updated_at))
    with pytest.raises(ImporterNotDefined) as caught:
        svc.run()
    assert str(caught.value) == "error-importer-not-defined"
    assert caught.value.key == "csv"
    assert svc.status()["state"] == "ready"  # nothing changed
    assert svc.run(importer=lambda _u: None).status is ProgressStep.DONE


def test_run_imports_in_batches_and_keeps_failures(store):
    batches = []

    class Recorder:
        def import_batch(self, users):
            batches.append([u["importIds"][0] for u in users])
            return [ValueError("duplicate") if u["importIds"][0] in {"7", "120"} else None
                    for u in users]

    svc = service(store)
    svc.new_operation("u")
    svc.add_users([user(n) for n in range(123)])
    op = svc.run(Recorder())
    assert [len(b) for b in batches] == [50, 50, 23]
    assert [i for b in batches for i in b] == [str(n) for n in range(123)]
    assert op.state is State.DONE
    assert op.count.to_wire() == {"total": 123, "users": 123, "completed": 121, "error": 2}
    failed = list(svc.staged_users())
    assert [r["data"]["importIds"][0] for r in failed] == ["7", "120"]
    assert failed[0]["errors"] == [{"message": "duplicate", "type": "ValueError"}]
    assert svc.status() == {"state": "done", "operation": op.to_wire()}


def test_done_even_when_no_user_was_imported(store):
    def refuse(_data):
        raise RuntimeError

    svc = service(store, refuse)
    svc.new_operation("u")
    svc.add_users([user(n) for n in range(3)])
    op = svc.run()
    assert op.state is State.DONE
    assert op.count.get("completed") == 0
    assert op.count.get("error") == 3
    assert [r["errors"] for r in svc.staged_users()] == [[{"message": "RuntimeError",
                                                           "type": "RuntimeError"}]] * 3


def test_run_walks_the_importing_steps(store):
    seen = []

    def importer(_data):
        seen.append(svc.current_operation().status)

    svc = service(store, importer)
    svc.new_operation("u")
    svc.add_users([user(1)])
    svc.run()
    assert seen == [ProgressStep.IMPORTING_USERS]
    assert svc.current_operation().status is ProgressStep.DONE


def test_a_batch_importer_that_raises_fails_its_batch_only(store):
    class Flaky:
        calls = 0

        def import_batch(self, users):
            self.calls += 1
            if self.calls == 2:
                raise ConnectionError("target went away")
            return [None] * len(users)

    svc = service(store)
    svc.new_operation("u")
    svc.add_users([user(n) for n in range(120)])
    op = svc.run(Flaky())
    assert op.state is State.DONE
    assert (op.count.get("completed"), op.count.get("error")) == (70, 50)
    failed = list(svc.staged_users())
    assert [r["data"]["importIds"][0] for r in failed] == [str(n) for n in range(50, 100)]
    assert failed[0]["errors"] == [{"message": "target went away", "type": "ConnectionError"}]


def test_a_batch_importer_with_the_wrong_number_of_results_fails_the_batch(store):
    class Short:
        def import_batch(self, users):
            return [None] * (len(users) - 1)

    svc = service(store)
    svc.new_operation("u")
    svc.add_users([user(1), user(2)])
    op = svc.run(Short())
    assert op.count.get("error") == 2
    assert "returned 1 results for 2 users" in next(svc.staged_users())["errors"][0]["message"]


def test_huge_error_messages_are_cut(store):
    def verbose(_data):
        raise ValueError("x" * 100_000)

    svc = service(store, verbose)
    svc.new_operation("u")
    svc.add_users([user(1)])
    svc.run()
    message = next(svc.staged_users())["errors"][0]["message"]
    assert len(message) < 2100
    assert message.endswith("(truncated)")


def test_a_store_error_fails_the_run_with_its_message(store, monkeypatch):
    svc = service(store)
    svc.new_operation("u")
    svc.add_users([user(n) for n in range(60)])
    with store.reading() as tx:
        transaction_type = type(tx)
    real = transaction_type.set_checkpoint
    calls = itertools.count()

    def breaking(self, *args, **kwargs):
        # The run's start, its entering the users' phase, the first batch, then the second.
        if next(calls) == 3:
            raise OSError("disk I/O error")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(transaction_type, "set_checkpoint", breaking)
    op = svc.run()
    assert op.status is ProgressStep.IMPORT_FAILED
    assert op.failure.message == "disk I/O error"
    assert op.count.get("completed") == 50
    assert svc.status()["operation"]["failure"]["message"] == "disk I/O error"


# -- cancel and invalidation at batch boundaries ------------------------------------------


def test_cancel_without_operation(store):
    with pytest.raises(OperationNotFound):
        service(store).cancel()


def test_cancel_a_ready_operation_keeps_staging(store):
    svc = service(store)
    svc.new_operation("u")
    svc.add_users([user(1), user(2)])
    op = svc.cancel()
    assert op.state is State.CANCELED
    assert svc.status()["state"] == "canceled"
    assert len(list(svc.staged_users())) == 2
    with pytest.raises(OperationAlreadyFinished):
        svc.cancel()


def test_cancel_while_running_stops_after_the_batch_in_hand(store):
    calls = []

    def importer(data):
        calls.append(data)
        if len(calls) == 60:  # inside the second batch
            svc.cancel()
            assert svc.status()["state"] == "canceled"  # at once

    svc = service(store, importer)
    svc.new_operation("u")
    svc.add_users([user(n) for n in range(500)])
    op = svc.run()
    assert len(calls) == 100
    assert op.status is ProgressStep.IMPORT_CANCELLED
    assert (op.count.get("completed"), op.count.get("error")) == (100, 0)
    assert len(list(svc.staged_users())) == 500  # staged records stay


def test_new_operation_while_running_fails_the_old_run(store):
    calls = []
    holder = {}

    def importer(data):
        calls.append(data)
        if len(calls) == 10:
            holder["new"] = svc.new_operation("other")
            svc.add_users([user(n) for n in range(1000, 1003)])

    svc = service(store, importer)
    old = svc.new_operation("u")
    svc.add_users([user(n) for n in range(300)])
    op = svc.run()
    assert op.id == old.id
    assert len(calls) == 50  # at most the batch in hand
    assert op.status is ProgressStep.IMPORT_FAILED
    assert not op.valid
    assert op.failure is not None
    assert op.count.get("completed") == 50
    current = svc.current_operation()
    assert current.id == holder["new"].id
    assert current.state is State.READY
    assert [r["data"]["importIds"][0] for r in svc.staged_users()] == ["1000", "1001", "1002"]


def test_clear_at_the_last_batch_fails_instead_of_finishing(store):
    def importer(_data):
        svc.clear()

    svc = service(store, importer)
    svc.new_operation("u")
    svc.add_users([user(1)])
    op = svc.run()
    assert op.status is ProgressStep.IMPORT_FAILED
    assert op.state is State.ERROR


# -- loading path (file importers) ---------------------------------------------------------


def test_file_importer_loading_path(store):
    svc = service(store, names={"csv": "CSV"})
    svc.importers["csv"] = lambda _u: None
    svc.new_operation("u", type="CSV", importer_key="csv")
    op = svc.begin_loading(file="users.csv", content_type="text/csv")
    assert (op.status, op.file, op.content_type) == (ProgressStep.UPLOADING, "users.csv",
                                                      "text/csv")
    for step in (ProgressStep.DOWNLOADING_FILE, ProgressStep.FILE_LOADED,
                 ProgressStep.PREPARING_STARTED, ProgressStep.PREPARING_USERS):
        assert svc.advance(step).state is State.LOADING
    svc.stage([user(1), user(2)])
    with pytest.raises(MissingUserData):
        svc.stage([user(3), {"emails": []}])
    with pytest.raises(InvalidTransition) as caught:
        svc.advance(ProgressStep.FILE_LOADED)
    assert caught.value.state == "loading"
    assert caught.value.event == "advance"
    op = svc.finish_loading()
    assert op.state is State.READY
    assert op.count.to_wire() == {"total": 2, "users": 2}
    assert svc.progress()["name"] == "CSV"
    assert svc.run().state is State.DONE


def test_stage_only_while_loading(store):
    svc = service(store)
    svc.new_operation("u")
    with pytest.raises(InvalidTransition):
        svc.stage([user(1)])
    with pytest.raises(InvalidTransition):
        svc.finish_loading()
    with pytest.raises(InvalidTransition):
        svc.advance(ProgressStep.IMPORTING_USERS)


def test_loading_needs_a_valid_operation(store):
    svc = service(store)
    with pytest.raises(OperationNotFound):
        svc.begin_loading()


# -- reading: progress, latest operations ------------------------------------------------


def test_progress(store):
    svc = service(store)
    with pytest.raises(OperationNotFound):
        svc.progress()
    svc.new_operation("u")
    svc.add_users([user(n) for n in range(3)])
    assert svc.progress() == {"key": "api", "name": "API", "step": "importer_user_selection",
                              "count": {"completed": 0, "total": 3, "error": 0}}
    svc.run(failing_on("1"))
    svc.clear()  # progress still answers for an invalid current operation
    assert svc.progress()["count"] == {"completed": 2, "total": 3, "error": 1}


def test_progress_of_an_unregistered_importer(store):
    svc = ImportService(store, {}, clock=Clock())
    svc.new_operation("u")
    with pytest.raises(ImporterNotDefined):
        svc.progress()


def test_latest_operations_newest_update_first_at_most_twenty(store):
    svc = service(store)
    made = [svc.new_operation("u").id for _ in range(25)]
    latest = svc.latest_operations()
    assert len(latest) == 20
    # each new operation invalidated the previous one, so the order is by creation
    assert latest[0].id == made[-1]
    assert [op.updated_at for op in latest] == sorted((op.updated_at for op in latest),
                                                      reverse=True)
    assert len(svc.latest_operations(limit=100)) == 25


def test_current_is_the_newest_by_ts_with_creation_order_for_ties(store):
    frozen = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    svc = ImportService(store, {"api": lambda _u: None}, clock=lambda: frozen)
    svc.new_operation("a")
    second = svc.new_operation("b")
    assert svc.current_operation().id == second.id
    assert svc.latest_operations()[0].id == second.id


# -- the flush property, observed from another process -------------------------------------


def _watch(path, queue):
    reader = ImportService(SQLiteStore(path))
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = reader.status()
        op = status.get("operation")
        if op is not None and op["status"] != "importer_user_selection":
            count = op.get("count", {})
            seen.append((op["status"], count.get("completed", 0), count.get("error", 0)))
            if status["state"] in {"done", "error", "canceled"}:
                break
    queue.put(seen)


def test_a_concurrent_reader_only_sees_whole_batches(tmp_path):
    path = tmp_path / "flush.db"
    svc = ImportService(SQLiteStore(path), {"api": failing_on(*map(str, range(0, 2013, 7)))})
    svc.new_operation("u")
    total = 2013
    svc.add_users([user(n) for n in range(total)])
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    watcher = context.Process(target=_watch, args=(path, queue))
    watcher.start()
    time.sleep(1.0)  # let the watcher start polling before the run begins

    slow = failing_on(*map(str, range(0, 2013, 7)))

    def importer(data):
        if data["importIds"][0].endswith("00"):
            time.sleep(0.02)  # give the reader time to look mid-run
        slow(data)

    final = svc.run(importer)
    seen = queue.get(timeout=90)
    watcher.join(timeout=30)
    assert final.state is State.DONE
    assert (final.count.get("completed"), final.count.get("error")) == (total - 288, 288)
    processed = [c + e for _, c, e in seen]
    assert len(set(processed)) > 5, "the reader should have seen the run progress"
    for (status, completed, error), done in zip(seen, processed, strict=True):
        assert done % 50 == 0 or done == total, (status, completed, error)
        if status == "importer_done":
            assert done == total
    assert seen[-1][0] == "importer_done"


def test_a_reader_thread_never_sees_a_partial_batch(tmp_path):
    path = tmp_path / "threads.db"
    svc = ImportService(SQLiteStore(path), {"api": lambda _u: time.sleep(0.0002)})
    svc.new_operation("u")
    svc.add_users([user(n) for n in range(777)])
    reader = ImportService(SQLiteStore(path))
    seen = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            count = reader.status()["operation"].get("count", {})
            seen.append(count.get("completed", 0) + count.get("error", 0))

    thread = threading.Thread(target=watch)
    thread.start()
    svc.run()
    stop.set()
    thread.join()
    assert {n % 50 for n in seen if n != 777} <= {0}
    assert len(set(seen)) > 3


def test_a_store_may_read_several_batches_per_query(monkeypatch):
    class ReadingAhead(MemoryStore):
        read_ahead = 3
        queries = 0

    pending = memory._MemoryTransaction.pending

    def counted(tx, *args, **kwargs):
        ReadingAhead.queries += 1
        return pending(tx, *args, **kwargs)

    monkeypatch.setattr(memory._MemoryTransaction, "pending", counted)

    batches = []

    class Recorder:
        def import_batch(self, users):
            batches.append(len(users))
            return [None] * len(users)

    store = ReadingAhead()
    svc = service(store)
    svc.new_operation("u")
    svc.add_users([user(n) for n in range(170)])
    ReadingAhead.queries = 0
    op = svc.run(Recorder())
    assert batches == [50, 50, 50, 20]
    assert op.count.get("completed") == 170
    assert ReadingAhead.queries == 2 + 1  # two pages, then the empty read that ends the stream


# -- channels and messages (Behaviour: records) ----------------------------------------------------


def channel(n, **extra):
    return {"importIds": [f"c{n}"], "name": f"channel-{n}", **extra}


def message(n, room="c1", author="1", **extra):
    return {"importIds": [f"m{n}"], "rid": room, "u": {"_id": author}, "msg": f"hello {n}",
            "ts": 1635280600083 + n, **extra}


class Recorder:
    """An importer of every type: records each batch as (type, status seen, first ids)."""

    def __init__(self, svc=None, fails=()):
        self.svc, self.fails, self.batches = svc, set(fails), []

    def _batch(self, kind, records):
        status = self.svc.current_operation().status if self.svc else None
        self.batches.append((kind, status, [r["importIds"][0] for r in records]))
        return [ValueError(f"no {r['importIds'][0]}") if r["importIds"][0] in self.fails
                else None for r in records]

    def import_batch(self, users):
        return self._batch("user", users)

    def import_channels(self, channels):
        return self._batch("channel", channels)

    def import_messages(self, messages):
        return self._batch("message", messages)


ADD = {"user": ("add_users", user), "channel": ("add_channels", channel),
       "message": ("add_messages", message)}


@pytest.mark.parametrize("data_type", ["channel", "message"])
def test_channels_and_messages_have_the_state_checks_of_users_in_their_order(store, data_type):
    method, make = ADD[data_type]
    svc = service(store)
    add = getattr(svc, method)
    assert add([]) is None
    assert svc.status() == {"state": "none"}
    with pytest.raises(OperationNotInitialized):
        add([make(1)])
    svc.new_operation("u")
    svc.begin_loading(file="export.zip")
    with pytest.raises(OperationCannotReceiveData):
        add([make(1)])
    svc.new_operation("u")
    svc.cancel()
    with pytest.raises(OperationAlreadyFinished):
        add([make(1)])
    svc.new_operation("u")
    with pytest.raises((MissingChannelData, MissingMessageData)):
        add([make(1), {"importIds": ["x"]}])
    assert svc.current_operation().status is ProgressStep.NEW, "a refused list staged nothing"
    assert list(svc.staged_records()) == []


def test_staging_channels_and_messages_counts_them_and_the_total(store):
    svc = service(store)
    svc.new_operation("u")
    svc.add_messages([message(n) for n in range(3)])
    assert svc.status()["state"] == "ready"
    svc.add_users([user(1)])
    op = svc.add_channels([channel(1), channel(2, t="d", users=["1"])])
    assert op.count.to_wire() == {"total": 6, "users": 1, "channels": 2, "messages": 3}
    staged = list(svc.staged_records())
    assert [r["dataType"] for r in staged] == ["message"] * 3 + ["user", "channel", "channel"]
    assert staged[4]["data"] == {"t": "c", "users": [], **channel(1)}
    assert staged[5]["data"] == channel(2, t="d", users=["1"])
    assert [r["dataType"] for r in svc.staged_records("channel")] == ["channel"] * 2
    assert [r["dataType"] for r in svc.staged_users()] == ["user"]


def test_a_run_imports_users_then_channels_then_messages_in_their_batch_sizes(store):
    svc = service(store)
    importer = Recorder(svc)
    svc.new_operation("u")
    svc.add_messages([message(n) for n in range(1100)])
    svc.add_channels([channel(n) for n in range(60)])
    svc.add_users([user(n) for n in range(120)])
    op = svc.run(importer)
    assert [(kind, status, len(ids)) for kind, status, ids in importer.batches] == [
        ("user", ProgressStep.IMPORTING_USERS, 50),
        ("user", ProgressStep.IMPORTING_USERS, 50),
        ("user", ProgressStep.IMPORTING_USERS, 20),
        ("channel", ProgressStep.IMPORTING_CHANNELS, 50),
        ("channel", ProgressStep.IMPORTING_CHANNELS, 10),
        ("message", ProgressStep.IMPORTING_MESSAGES, 500),
        ("message", ProgressStep.IMPORTING_MESSAGES, 500),
        ("message", ProgressStep.IMPORTING_MESSAGES, 100),
    ]
    handed = [i for kind, _, ids in importer.batches if kind == "message" for i in ids]
    assert handed == [f"m{n}" for n in range(1100)], "each type goes in staging order"
    assert op.status is ProgressStep.DONE
    assert op.count.to_wire() == {"total": 1280, "completed": 1280, "error": 0, "users": 120,
                                  "channels": 60, "messages": 1100}
    assert list(svc.staged_records()) == []


def test_message_batches_follow_message_batch_size(store):
    svc = service(store, batch_size=2, message_batch_size=3)
    importer = Recorder()
    svc.new_operation("u")
    svc.add_channels([channel(n) for n in range(3)])
    svc.add_messages([message(n) for n in range(7)])
    svc.run(importer)
    assert [(kind, len(ids)) for kind, _, ids in importer.batches] == [
        ("channel", 2), ("channel", 1), ("message", 3), ("message", 3), ("message", 1),
    ]


def test_a_phase_without_records_is_passed_through(store):
    svc = service(store)
    importer = Recorder(svc)
    svc.new_operation("u")
    svc.add_messages([message(1)])
    op = svc.run(importer)
    assert importer.batches == [("message", ProgressStep.IMPORTING_MESSAGES, ["m1"])]
    assert op.status is ProgressStep.DONE
    assert op.count.to_wire() == {"total": 1, "completed": 1, "error": 0, "messages": 1}


def test_failed_records_of_every_type_stay_staged_with_their_errors(store):
    svc = service(store)
    svc.new_operation("u")
    svc.add_users([user(n) for n in range(3)])
    svc.add_channels([channel(n) for n in range(3)])
    svc.add_messages([message(n) for n in range(3)])
    op = svc.run(Recorder(fails={"1", "c2", "m0"}))
    assert (op.count.get("completed"), op.count.get("error")) == (6, 3)
    kept = [(r["dataType"], r["data"]["importIds"][0], r["errors"]) for r in svc.staged_records()]
    assert kept == [
        ("user", "1", [{"message": "no 1", "type": "ValueError"}]),
        ("channel", "c2", [{"message": "no c2", "type": "ValueError"}]),
        ("message", "m0", [{"message": "no m0", "type": "ValueError"}]),
    ]


def test_a_reader_only_sees_counts_at_a_sum_of_whole_batches_of_each_phase(tmp_path):
    path = tmp_path / "phases.db"
    svc = ImportService(SQLiteStore(path), {"api": Recorder()}, batch_size=50)
    svc.new_operation("u")
    svc.add_users([user(n) for n in range(130)])          # 50, 50, 30
    svc.add_channels([channel(n) for n in range(70)])     # 50, 20
    svc.add_messages([message(n) for n in range(1234)])   # 500, 500, 234
    reader = ImportService(SQLiteStore(path))
    seen = set()
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            op = reader.status()["operation"]
            count = op.get("count", {})
            seen.add((op["status"], count.get("completed", 0) + count.get("error", 0)))

    class Slow(Recorder):
        def _batch(self, kind, records):
            time.sleep(0.01)
            return super()._batch(kind, records)

    thread = threading.Thread(target=watch)
    thread.start()
    svc.run(Slow())
    stop.set()
    thread.join()
    final = reader.status()["operation"]  # the reader may have stopped before the last commit
    seen.add((final["status"], final["count"]["completed"] + final["count"]["error"]))
    allowed = {
        "importer_importing_users": {0, 50, 100},
        "importer_importing_channels": {130, 180},
        "importer_importing_messages": {200, 700, 1200},
        "importer_done": {1434},
    }
    for status, done in seen:
        if status in allowed:
            assert done in allowed[status], (status, done)
    assert {status for status, _ in seen} >= set(allowed), f"the reader missed a phase: {seen}"


def test_an_importer_that_cannot_import_a_staged_type_is_refused_before_anything(store):
    svc = service(store)  # its importer takes users one at a time, nothing else
    svc.new_operation("u")
    svc.add_users([user(1)])
    svc.add_messages([message(1)])
    before = svc.current_operation()
    with pytest.raises(ImporterCannotImport) as refused:
        svc.run()
    assert str(refused.value) == "The importer (api) cannot import message records."
    assert (refused.value.key, refused.value.data_type) == ("api", "message")
    assert svc.current_operation() == before, "a refused run changed the operation"

    class ChannelsOnly:
        def import_channels(self, channels):
            return [None] * len(channels)

    with pytest.raises(ImporterCannotImport, match=r"cannot import user records\.$"):
        svc.run(ChannelsOnly())
    assert svc.run(Recorder()).status is ProgressStep.DONE


def test_the_status_checks_come_before_the_importer_checks(store):
    svc = service(store)
    svc.new_operation("u")
    svc.add_messages([message(1)])
    svc.cancel()
    with pytest.raises(InvalidOperationStatus):
        svc.run()


def test_a_cancel_in_the_channels_phase_stops_after_the_batch_in_hand(store):
    svc = service(store, batch_size=10)
    svc.new_operation("u")
    svc.add_users([user(n) for n in range(5)])
    svc.add_channels([channel(n) for n in range(35)])
    svc.add_messages([message(n) for n in range(5)])

    class CancelsInChannels(Recorder):
        def import_channels(self, channels):
            if len(self.batches) == 2:  # the users, then a first channel batch done
                svc.cancel()
            return super().import_channels(channels)

    importer = CancelsInChannels()
    op = svc.run(importer)
    assert op.status is ProgressStep.IMPORT_CANCELLED
    assert [kind for kind, _, _ in importer.batches] == ["user", "channel", "channel"]
    assert (op.count.get("completed"), op.count.get("error")) == (25, 0)
    assert len(list(svc.staged_records())) == 45, "a cancelled run keeps its staging"


def test_the_loading_path_stages_channels_and_messages(store):
    svc = service(store)
    svc.new_operation("u", type="slack", importer_key="slack")
    svc.begin_loading(file="export.zip", content_type="application/zip")
    svc.advance(ProgressStep.PREPARING_CHANNELS)
    svc.stage([channel(1)], "channel")
    svc.advance(ProgressStep.PREPARING_MESSAGES)
    op = svc.stage([message(1)], DataType.MESSAGE)
    assert op.count.to_wire() == {"total": 2, "channels": 1, "messages": 1}
    with pytest.raises(MissingMessageData):
        svc.stage([{"msg": "no ids"}], "message")
    with pytest.raises(ValueError, match="contact"):
        svc.stage([channel(2)], "contact")
    assert svc.finish_loading().state is State.READY


# -- pruning -------------------------------------------------------------------------------


def finished_operations(service, count):
    """``count`` operations that ran to done, each with a failed user left in staging."""
    ids = []
    for n in range(count):
        service.new_operation("admin")
        service.add_users([user(n), user(1000 + n)])
        ids.append(service.run(importer=failing_on(str(1000 + n))).id)
    return ids


def test_prune_deletes_finished_operations_beyond_the_latest(store):
    service = ImportService(store, {"api": lambda _user: None}, clock=Clock())
    old = finished_operations(service, 4)
    service.new_operation("admin")  # the current one, which is never pruned
    assert service.prune(keep=2) == 3  # the two latest are the current one and old[3]
    assert [op.id for op in service.latest_operations()][1:] == old[3:]
    with store.reading() as tx:
        assert all(tx.get(operation_id) is None for operation_id in old[:3])
        assert tx.staged(old[0], after=None, limit=10) == []
    assert service.prune(keep=0) == 1
    assert [op.state for op in service.latest_operations()] == ["new"]
    assert service.prune(keep=0) == 0


def test_prune_older_than_keeps_what_was_updated_since(store):
    clock = Clock()
    service = ImportService(store, {"api": lambda _user: None}, clock=clock)
    first = finished_operations(service, 1)
    second = finished_operations(service, 1)  # its new operation touched the first
    clock.now += dt.timedelta(days=2)
    finished_operations(service, 1)  # and this one the second, two days on
    assert service.prune(older_than=dt.timedelta(days=1)) == 1
    remaining = {op.id for op in service.latest_operations()}
    assert first[0] not in remaining
    assert second[0] in remaining


def test_prune_leaves_an_invalidated_operation_whose_run_may_still_write(store):
    service = ImportService(store, {"api": lambda _user: None})
    service.new_operation("admin")
    service.add_users([user(1)])
    with store.transaction() as tx:  # as a run does at its start
        running = tx.current().fire("start", at=service.clock())
        tx.update(running)
    service.new_operation("admin")  # invalidates it; its run would stop at its next batch
    assert service.prune(keep=0) == 0
    assert running.id in {op.id for op in service.latest_operations()}
