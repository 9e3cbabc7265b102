"""PostgresStore on a real PostgreSQL server (started by ``_postgres``).

The store conformance suite and the service's state machine run on it as on
SQLite; then a representative run (batches, kept failures, cancel, abort on a
new operation), processes racing on one schema, a forked child, a writer kept
waiting, schema creation racing, the schema version check, and what the
suite does where PostgreSQL is not installed.
"""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator
from typing import Any

import _postgres
import psycopg
import pytest
import workers
from _postgres import drop_schema
from hypothesis.stateful import run_state_machine_as_test
from psycopg import sql

from importstate import (
    DatabaseBusy,
    ImportService,
    PostgresStore,
    ProgressStep,
    State,
)
from importstate.stores import SchemaVersionError
from importstate.stores.postgres import SCHEMA_VERSION
from importstate.testing import (
    FailingImporter,
    ImportServiceMachine,
    RecordingImporter,
    StoreTests,
)

FORK = multiprocessing.get_context("fork")
WAIT = 60  # seconds a barrier or a process waits before the test is declared stuck


@pytest.fixture
def store(postgres_dsn: str, schema: str) -> Iterator[PostgresStore]:
    opened = PostgresStore(postgres_dsn, schema=schema)
    yield opened
    opened.close()


class TestPostgresStore(StoreTests):
    @pytest.fixture
    def make_store(self, postgres_dsn, schema):
        return lambda: PostgresStore(postgres_dsn, schema=schema)


def test_the_service_on_postgres_matches_the_spec(postgres_dsn, fresh_schema):
    stores: list[PostgresStore] = []

    def make_service():
        stores.append(PostgresStore(postgres_dsn, schema=fresh_schema(), max_connections=2))
        return ImportService(stores[-1], {"api": RecordingImporter()})

    try:
        run_state_machine_as_test(ImportServiceMachine.with_factory(make_service))
    finally:
        for opened in stores:
            opened.close()


def test_importstate_imports_without_psycopg():
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "import importstate, importstate.stores\n"
        "try:\n    importstate.PostgresStore\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=WAIT)
    assert "pip install 'importstate[postgres]'" in result.stdout


@pytest.mark.parametrize(("ci", "outcome", "report"), [
    ("true", {"errors": 1}, "*CI=true: the PostgreSQL tests must run, but *initdb*"),
    ("", {"skipped": 1}, "SKIPPED*initdb and pg_ctl were not found*"),
])
def test_without_postgresql_its_tests_skip_except_in_ci(
    pytester, monkeypatch, ci, outcome, report,
):
    monkeypatch.setattr(_postgres, "binaries", lambda: None)
    monkeypatch.setenv("CI", ci)
    pytester.makeconftest('pytest_plugins = ["_postgres"]')
    pytester.makepyfile("def test_needs_a_server(postgres_dsn):\n    pass\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-rsE")
    result.assert_outcomes(**outcome)
    result.stdout.fnmatch_lines([report])


# -- the service on PostgreSQL ---------------------------------------------------------------


def test_a_run_commits_per_batch_and_keeps_failures(postgres_dsn, schema, store):
    reader = ImportService(PostgresStore(postgres_dsn, schema=schema), {"api": RecordingImporter()})
    seen_counts: list[int] = []

    def fails(user):
        # A reader in another handle sees whole batches only.
        count = reader.progress()["count"]
        seen_counts.append(count["completed"] + count["error"])
        return workers.fails(user["importIds"][0])

    importer = FailingImporter(fails, "rejected")
    service = ImportService(store, {"api": importer})
    service.new_operation("u1")
    service.add_users(workers.users(130))
    service.add_users(workers.users(100, start=130))
    done = service.run()

    assert done.status is ProgressStep.DONE
    assert done.count.get("total") == 230
    assert done.count.get("error") == 3  # users 0, 97 and 194
    assert done.count.get("completed") == 227
    assert importer.import_ids == [f"key-{n:06d}" for n in range(230)]
    assert set(seen_counts) == {0, 50, 100, 150, 200}
    kept = list(reader.staged_users())
    assert [doc["data"]["importIds"][0] for doc in kept] == ["key-000000", "key-000097",
                                                              "key-000194"]
    assert kept[0]["errors"] == [{"message": "rejected", "type": "ImportFailed"}]
    reader.store.close()


def test_cancel_from_another_handle_stops_the_run_after_its_batch(postgres_dsn, schema, store):
    other = ImportService(PostgresStore(postgres_dsn, schema=schema))

    def importer(user):
        if user["importIds"][0] == "key-000060":
            other.cancel()

    service = ImportService(store, {"api": importer})
    service.new_operation("u1")
    service.add_users(workers.users(200))
    stopped = service.run()

    assert stopped.status is ProgressStep.IMPORT_CANCELLED
    assert stopped.count.get("completed") == 100, "the batch in hand is committed, no more"
    assert len(list(service.staged_users())) == 200, "a cancelled run keeps its staging"
    other.store.close()


def test_a_new_operation_from_another_handle_aborts_the_run(postgres_dsn, schema, store):
    other = ImportService(PostgresStore(postgres_dsn, schema=schema))

    def importer(user):
        if user["importIds"][0] == "key-000010":
            other.new_operation("u2")

    service = ImportService(store, {"api": importer})
    old = service.new_operation("u1")
    service.add_users(workers.users(120))
    aborted = service.run()

    assert aborted.id == old.id
    assert aborted.status is ProgressStep.IMPORT_FAILED
    assert not aborted.valid
    assert aborted.failure is not None
    assert "cleared or replaced" in aborted.failure.message
    current = service.current_operation()
    assert current is not None
    assert current.id != old.id
    assert current.state is State.NEW
    assert list(service.staged_users()) == []
    other.store.close()


def test_a_writer_waits_at_most_timeout_then_database_busy(postgres_dsn, schema, store):
    impatient = PostgresStore(postgres_dsn, schema=schema, timeout=0.2)
    try:
        # The lock is taken with a transaction's first statement.
        with store.transaction() as holding:
            holding.current()
            with pytest.raises(DatabaseBusy, match="busy"), impatient.transaction() as waiting:
                waiting.current()
        with impatient.reading() as tx:  # readers never wait
            assert tx.current() is None
        with impatient.transaction() as tx:  # the lock went with the first transaction
            assert tx.current() is None
    finally:
        impatient.close()


def test_a_call_waits_at_most_timeout_for_a_connection(postgres_dsn, schema):
    store = PostgresStore(postgres_dsn, schema=schema, max_connections=1, timeout=0.2)
    try:
        with (
            store.reading(),
            pytest.raises(DatabaseBusy, match="connections stayed in use"),
            store.reading(),
        ):
            pass
        with store.reading() as tx:  # the connection went back to the pool
            assert tx.current() is None
    finally:
        store.close()


# -- several processes -----------------------------------------------------------------------

PROCESSES = 4
ROUNDS = 25
PER_CALL = 5


def _racer(dsn: str, schema: str, index: int, barrier: Any, errors: Any) -> None:
    try:
        service = ImportService(PostgresStore(dsn, schema=schema), {})
        for round_ in range(ROUNDS):
            barrier.wait(WAIT)
            service.new_operation(f"p{index}")
            users = workers.users(PER_CALL, start=(round_ * PROCESSES + index) * PER_CALL)
            # Another process's new operation may come in between: the users go to that one.
            service.add_users(users)
            barrier.wait(WAIT)  # the parent checks the store here
            barrier.wait(WAIT)
        service.store.close()
    except BaseException:
        errors.put(traceback.format_exc())
        barrier.abort()
        raise


def _check_one_valid_operation_with_its_users(store: PostgresStore) -> None:
    with store.reading() as tx:
        valid = tx.valid_operations()
        assert len(valid) == 1, f"{len(valid)} valid operations"
        (operation,) = valid
        staged = tx.staged(operation.id, after=None, limit=10_000)
        others = [op for op in tx.latest(10_000) if op.id != operation.id]
        assert all(tx.staged(op.id, after=None, limit=1) == [] for op in others)
    assert operation.count.get("total") == len(staged)
    keys = [record.data["importIds"][0] for record in staged]
    assert len(keys) == len(set(keys)), "a user was staged twice"
    assert len(keys) % PER_CALL == 0, "an add_users call was staged in part"


def test_processes_racing_new_operation_and_add_users_leave_one_valid_operation(
    postgres_dsn, schema, store,
):
    barrier, errors = FORK.Barrier(PROCESSES + 1), FORK.Queue()
    processes = [
        FORK.Process(target=_racer, args=(postgres_dsn, schema, index, barrier, errors))
        for index in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    try:
        for _ in range(ROUNDS):
            barrier.wait(WAIT)  # start
            barrier.wait(WAIT)  # everyone has added
            _check_one_valid_operation_with_its_users(store)
            barrier.wait(WAIT)
    except threading.BrokenBarrierError:
        pytest.fail(errors.get(timeout=WAIT))
    except BaseException:
        barrier.abort()  # a failed check must not leave the racers waiting
        raise
    finally:
        for process in processes:
            process.join(WAIT)
    assert [process.exitcode for process in processes] == [0] * PROCESSES


def _backend(store: PostgresStore) -> int:
    """The server process serving the store's (one) connection."""
    with store.reading() as tx:
        return tx.conn.info.backend_pid


def _run_in_child(store: PostgresStore, result: Any) -> None:
    service = ImportService(store, {"api": RecordingImporter()})
    service.add_users(workers.users(60))
    result.put((_backend(store), service.run().status.value))


def test_a_forked_child_uses_connections_of_its_own(postgres_dsn, schema):
    store = PostgresStore(postgres_dsn, schema=schema, max_connections=1)
    try:
        service = ImportService(store)
        service.new_operation("u1")  # the parent's pool is in use before the fork
        parents = _backend(store)
        result = FORK.Queue()
        child = FORK.Process(target=_run_in_child, args=(store, result))
        child.start()
        childs, status = result.get(timeout=WAIT)
        child.join(WAIT)
        assert child.exitcode == 0
        assert status == "importer_done"
        assert childs != parents, "the child used its parent's connection"
        assert _backend(store) == parents
        done = service.current_operation()
        assert done is not None
        assert done.count.get("completed") == 60, "the parent's connection still works"
    finally:
        store.close()


# -- the schema ------------------------------------------------------------------------------


def _version_table(schema: str) -> sql.Composed:
    return sql.SQL("{}").format(sql.Identifier(schema, "schema_version"))


def test_the_schema_is_created_once_by_racing_openers(postgres_dsn, schema):
    opened: list[PostgresStore] = []
    failures: list[BaseException] = []
    start = threading.Barrier(6)

    def open_store() -> None:
        try:
            start.wait(WAIT)
            opened.append(PostgresStore(postgres_dsn, schema=schema, max_connections=1))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    for store in opened:
        store.close()
    assert failures == []
    with psycopg.connect(postgres_dsn) as conn:
        rows = conn.execute(sql.SQL("SELECT version FROM {}").format(_version_table(schema)))
        assert rows.fetchall() == [(SCHEMA_VERSION,)]


def test_a_newer_schema_is_refused(postgres_dsn, schema, store):
    store.close()
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute(sql.SQL("UPDATE {} SET version = %s").format(_version_table(schema)),
                     (SCHEMA_VERSION + 1,))
    with pytest.raises(SchemaVersionError, match=rf"version {SCHEMA_VERSION + 1} is newer"):
        PostgresStore(postgres_dsn, schema=schema)


#: What a version 1 schema lacks: the selection's mark on staging, the type of a batch,
#: the history.
_VERSION_1_DOWNGRADE = """
    DROP TABLE {schema}.history;
    ALTER TABLE {schema}.staged DROP COLUMN selected;
    ALTER TABLE {schema}.batches DROP COLUMN data_type;
    UPDATE {schema}.schema_version SET version = 1
"""


def test_a_version_1_schema_is_upgraded_with_its_staging_all_selected(postgres_dsn, schema, store):
    service = ImportService(store)
    service.new_operation("admin")
    service.add_users(workers.users(3))
    store.close()
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute(sql.SQL(_VERSION_1_DOWNGRADE).format(schema=sql.Identifier(schema)))
    upgraded = PostgresStore(postgres_dsn, schema=schema)
    try:
        with upgraded.transaction() as tx:
            operation = tx.current()
            assert operation is not None
            pending = tx.pending(operation.id, "user", after=None, limit=10)
            assert [r.data["importIds"][0] for r in pending] == [
                "key-000000", "key-000001", "key-000002",
            ]
            tx.deselect(operation.id, [pending[0].position])
            assert tx.cut_batches(operation.id, "user", 50) == 1
        claimed = upgraded.claim_batch(operation.id, "w1", 30)
        assert claimed is not None
        assert [r.data["importIds"][0] for r in claimed[1]] == ["key-000001", "key-000002"]
    finally:
        upgraded.close()
    with psycopg.connect(postgres_dsn) as conn:
        version = conn.execute(sql.SQL("SELECT version FROM {}").format(
            _version_table(schema))).fetchone()
    assert version == (SCHEMA_VERSION,)


def test_a_version_2_schema_is_upgraded_and_records_history_from_then_on(
    postgres_dsn, schema, store,
):
    service = ImportService(store)
    old = service.new_operation("admin")
    store.close()
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute(sql.SQL("DROP TABLE {}; UPDATE {} SET version = 2").format(
            sql.Identifier(schema, "history"), _version_table(schema)))
    upgraded = PostgresStore(postgres_dsn, schema=schema)
    try:
        service = ImportService(upgraded)
        assert service.history(old.id) == []  # what was stored before has no history
        service.cancel()
        assert [entry.event for entry in service.history(old.id)] == ["cancel"]
    finally:
        upgraded.close()
    with psycopg.connect(postgres_dsn) as conn:
        version = conn.execute(sql.SQL("SELECT version FROM {}").format(
            _version_table(schema))).fetchone()
    assert version == (SCHEMA_VERSION,)


def test_a_wrong_dsn_fails_at_once(postgres_dsn):
    port = psycopg.conninfo.conninfo_to_dict(postgres_dsn)["port"]
    with pytest.raises(psycopg.OperationalError):
        PostgresStore(f"host=127.0.0.1 port={port} user=postgres dbname=no_such_database")


def test_schemas_are_separate_stores(postgres_dsn, fresh_schema):
    one, two = fresh_schema(), fresh_schema()
    first, second = (PostgresStore(postgres_dsn, schema=name) for name in (one, two))
    try:
        ImportService(first).new_operation("u1")
        assert ImportService(second).current_operation() is None
    finally:
        first.close()
        second.close()
    drop_schema(postgres_dsn, one)
    with pytest.raises(psycopg.errors.UndefinedTable), psycopg.connect(postgres_dsn) as conn:
        conn.execute(sql.SQL("SELECT 1 FROM {}").format(_version_table(one)))

