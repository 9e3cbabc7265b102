import datetime as dt
import json
import sqlite3
import stat
import threading

import pytest
from workers import open_descriptors, settled_descriptors

from importstate import ImportService, MemoryStore, Operation, SQLiteStore
from importstate.stores import NewRecord, Pending
from importstate.stores._rows import pending_page
from importstate.stores.sqlite import SCHEMA_VERSION
from importstate.testing import StoreTests


class TestMemoryStore(StoreTests):
    @pytest.fixture
    def make_store(self):
        store = MemoryStore()
        return lambda: store


class TestSQLiteStore(StoreTests):
    @pytest.fixture
    def make_store(self, tmp_path):
        return lambda: SQLiteStore(tmp_path / "imports.db")


#: The schema of importstate 0.1 (SQLite schema version 1), as its databases hold it.
_VERSION_1 = """
CREATE TABLE operations (
    created INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, ts INTEGER NOT NULL,
    updated_at INTEGER NOT NULL, valid INTEGER NOT NULL, doc TEXT NOT NULL,
    checkpoint INTEGER, heartbeat INTEGER);
CREATE INDEX operations_by_ts ON operations (ts, created);
CREATE TABLE staged (
    position INTEGER PRIMARY KEY, operation TEXT NOT NULL, id TEXT NOT NULL,
    data TEXT NOT NULL, data_type TEXT NOT NULL, errors TEXT);
CREATE INDEX staged_by_operation ON staged (operation, position);
PRAGMA user_version = 1;
"""


def test_a_version_1_database_is_upgraded_with_its_operations_and_staging(tmp_path):
    path = tmp_path / "old.db"
    op = Operation.create(user="u", at=dt.datetime(2024, 5, 1, tzinfo=dt.UTC))
    op = op.fire("stage", at=op.ts, count=op.count.added(total=2, users=2))
    conn = sqlite3.connect(path)
    conn.executescript(_VERSION_1)
    conn.execute(
        "INSERT INTO operations (id, ts, updated_at, valid, doc, checkpoint)"
        " VALUES (?, 0, 0, 1, ?, 7)",
        (op.id, json.dumps(op.to_wire())),
    )
    conn.executemany(
        "INSERT INTO staged (operation, id, data, data_type, errors) VALUES (?, ?, ?, 'user', ?)",
        [(op.id, "r1", '{"username": "a"}', None),
         (op.id, "r2", '{"username": "b"}', '[{"message": "x"}]')],
    )
    conn.commit()
    conn.close()
    store = SQLiteStore(path)
    with store.reading() as tx:
        assert tx.current() == op
        assert tx.checkpoint(op.id) == 7
        staged = tx.staged(op.id, after=None, limit=10)
        pending = tx.pending(op.id, "user", after=None, limit=10)
    assert [(r.id, r.data, r.errors) for r in staged] == [
        ("r1", {"username": "a"}, ()), ("r2", {"username": "b"}, ({"message": "x"},)),
    ]
    assert [r.data for r in pending] == [{"username": "a"}, {"username": "b"}]
    store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'staged_1'").fetchone() is None
    conn.close()


#: The schema of SQLite schema version 2 (counts beside the document, staging by row number).
_VERSION_2 = """
CREATE TABLE operations (
    created INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, ts INTEGER NOT NULL,
    updated_at INTEGER NOT NULL, valid INTEGER NOT NULL, doc TEXT NOT NULL,
    checkpoint INTEGER, heartbeat INTEGER, completed INTEGER, error INTEGER);
CREATE INDEX operations_by_ts ON operations (ts, created);
CREATE TABLE staged (
    position INTEGER PRIMARY KEY, operation INTEGER NOT NULL, id TEXT NOT NULL,
    data TEXT NOT NULL, data_type TEXT NOT NULL, errors TEXT);
PRAGMA user_version = 2;
"""


def test_a_version_2_database_is_upgraded_and_its_staging_is_all_selected(tmp_path):
    path = tmp_path / "v2.db"
    op = Operation.create(user="u", at=dt.datetime(2024, 5, 1, tzinfo=dt.UTC))
    op = op.fire("stage", at=op.ts, count=op.count.added(total=2, users=1, channels=1))
    conn = sqlite3.connect(path)
    conn.executescript(_VERSION_2)
    conn.execute(
        "INSERT INTO operations (id, ts, updated_at, valid, doc) VALUES (?, 0, 0, 1, ?)",
        (op.id, json.dumps(op.to_wire())),
    )
    conn.executemany(
        "INSERT INTO staged (operation, id, data, data_type) VALUES (1, ?, ?, ?)",
        [("r1", '{"username": "a"}', "user"), ("r2", '{"name": "general"}', "channel")],
    )
    conn.commit()
    conn.close()
    store = SQLiteStore(path)
    with store.transaction() as tx:
        assert [r.data for r in tx.pending(op.id, "user", after=None, limit=10)] == [
            {"username": "a"},
        ]
        (channel,) = tx.pending(op.id, "channel", after=None, limit=10)
        tx.deselect(op.id, [channel.position])
    with store.reading() as tx:
        assert tx.pending(op.id, "channel", after=None, limit=10) == []
        assert len(tx.staged(op.id, after=None, limit=10)) == 2
    store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    conn.close()


def test_a_version_3_database_is_upgraded_and_records_history_from_then_on(tmp_path):
    path = tmp_path / "v3.db"
    service = ImportService(SQLiteStore(path))
    old = service.new_operation("admin")
    service.store.close()
    conn = sqlite3.connect(path)
    conn.executescript("DROP TABLE history; PRAGMA user_version = 3;")
    conn.close()
    service = ImportService(SQLiteStore(path))
    assert service.history(old.id) == []  # what was stored before has no history
    service.cancel()
    assert [entry.event for entry in service.history(old.id)] == ["cancel"]
    service.store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    conn.close()


def test_a_writer_sees_what_another_connection_committed_since_its_last_write(tmp_path):
    first, second = SQLiteStore(tmp_path / "s.db"), SQLiteStore(tmp_path / "s.db")
    op = Operation.create(user="u", at=dt.datetime(2024, 5, 1, tzinfo=dt.UTC))
    with first.transaction() as tx:
        tx.insert(op)
    with first.transaction() as tx:
        tx.update(tx.get(op.id).fire("stage", at=op.ts))
        tx.set_checkpoint(op.id, 1, op.ts)
    with second.transaction() as tx:
        cancelled = tx.get(op.id).fire("cancel", at=op.ts)
        tx.update(cancelled)
        tx.set_checkpoint(op.id, 2, op.ts + dt.timedelta(seconds=1))
    with first.transaction() as tx:
        assert tx.get(op.id) == cancelled
        assert tx.checkpoint(op.id) == 2
    first.close()
    second.close()


def test_a_rolled_back_write_is_not_remembered(tmp_path):
    store = SQLiteStore(tmp_path / "s.db")
    op = Operation.create(user="u", at=dt.datetime(2024, 5, 1, tzinfo=dt.UTC))
    with store.transaction() as tx:
        tx.insert(op)
    with store.transaction() as tx:
        tx.get(op.id)
        tx.set_checkpoint(op.id, 1, op.ts)

    class Undo(Exception):
        pass

    def undone():
        with store.transaction() as tx:
            tx.update(tx.get(op.id).fire("stage", at=op.ts))
            tx.set_checkpoint(op.id, 2, op.ts)
            raise Undo

    with pytest.raises(Undo):
        undone()
    with store.transaction() as tx:
        assert tx.get(op.id) == op
        assert tx.checkpoint(op.id) == 1
    store.close()




def test_a_thread_s_connection_is_closed_when_the_thread_ends(tmp_path):
    """Finding 1: 20 bursts of 16 short-lived threads leave the descriptors where they were.

    Each thread reads and writes once, as a request in a pool thread does
    before the pool retires it.
    """
    store = SQLiteStore(tmp_path / "s.db")
    op = Operation.create(user="u", at=dt.datetime(2024, 5, 1, tzinfo=dt.UTC))
    with store.transaction() as tx:
        tx.insert(op)

    def request():
        with store.reading() as tx:
            assert tx.get(op.id) is not None
        with store.transaction() as tx:
            tx.set_checkpoint(op.id, 1, op.ts)

    def burst():
        threads = [threading.Thread(target=request) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    # SQLite keeps a closed connection's descriptor on the file, for the next one to
    # use, while this thread's connection holds its lock: at most one per thread of
    # a burst stays, beside this thread's three (file, -wal, -shm).
    mine = open_descriptors(store.path)
    for _ in range(20):
        burst()
    assert settled_descriptors(store.path, mine + 16) <= mine + 16
    store.close()


def test_close_closes_the_connections_of_living_threads(tmp_path):
    store = SQLiteStore(tmp_path / "s.db")
    ready, done = threading.Event(), threading.Event()

    def hold():
        with store.reading():
            pass
        ready.set()
        done.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    ready.wait(10)
    assert open_descriptors(store.path) >= 4  # this thread's and the other's
    store.close()
    assert open_descriptors(store.path) == 0
    done.set()
    thread.join()


def test_the_database_files_are_private_and_deleted_text_is_zeroed(tmp_path):
    """Finding 9: the file, its WAL and shared-memory files are 0600; secure_delete is on."""
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    with store.transaction() as tx:
        tx.insert(Operation.create(user="u", at=dt.datetime(2024, 5, 1, tzinfo=dt.UTC)))
        assert tx.conn.execute("PRAGMA secure_delete").fetchone() == (1,)
    for name in ("s.db", "s.db-wal", "s.db-shm"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    store.close()


def test_deleted_staging_leaves_no_copy_in_the_files_once_checkpointed(tmp_path):
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    op = Operation.create(user="u", at=dt.datetime(2024, 5, 1, tzinfo=dt.UTC))
    secret = "correct-horse-battery-staple"  # noqa: S105 - a made-up password to look for
    with store.transaction() as tx:
        tx.insert(op)
        tx.stage(op.id, [NewRecord(f"r{n}", json.dumps({"password": f"{secret}-{n}"}), "user")
                         for n in range(2000)])
    with store.transaction() as tx:
        tx.remove_succeeded(op.id)
    store.checkpoint()
    files = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert secret.encode() not in files
    store.close()


def test_a_page_aggregated_by_the_store_keeps_each_position_with_its_data_in_order():
    page = pending_page("7,3,5", '[{"n": 7}, {"n": 3}, {"n": 5}]')
    assert [(r.position, r.data["n"]) for r in page] == [(3, 3), (5, 5), (7, 7)]
    assert all(isinstance(r, Pending) for r in page)
    assert pending_page(None, None) == []
