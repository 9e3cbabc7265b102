import datetime as dt
import json
import sqlite3

import pytest

from importstate import MemoryStore, Operation, SQLiteStore
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
