import sqlite3

import pytest

from importstate import SQLiteStore, UsersTableImporter
from importstate._setup import open_setup


def test_the_built_in_importer_writes_to_the_sqlite_file_of_the_store(tmp_path):
    db = tmp_path / "importstate.db"
    setup = open_setup(db)
    try:
        assert isinstance(setup.store, SQLiteStore)
        # The file importers' operations run on it too.
        assert setup.service.importers == dict.fromkeys(
            ["api", "csv", "slack", "slack-users"], setup.importer)
        setup.service.new_operation("admin")
        setup.service.add_users([{"emails": ["a@example.com"], "importIds": ["a"]}])
        setup.service.run()
        assert setup.importer.count() == 1
    finally:
        setup.close()
    assert UsersTableImporter(db).count() == 1


def test_a_db_the_importer_cannot_open_closes_the_store(tmp_path, monkeypatch):
    closed = []
    close = SQLiteStore.close

    def record_close(store):
        closed.append(store.path)
        close(store)

    def refuse(*_, **__):
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(SQLiteStore, "close", record_close)

    monkeypatch.setattr(UsersTableImporter, "__init__", refuse)
    with pytest.raises(sqlite3.OperationalError):
        open_setup(tmp_path / "importstate.db")
    assert closed == [str(tmp_path / "importstate.db")]
