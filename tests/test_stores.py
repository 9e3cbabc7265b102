import pytest

from importstate import MemoryStore, SQLiteStore
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
