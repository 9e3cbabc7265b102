"""examples/custom_store.py: the folder store passes StoreTests and carries a whole import."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from example_modules import FOLDER, load

from importstate import ImportService, State
from importstate.testing import StoreTests

custom_store = load("custom_store")
FolderStore = custom_store.FolderStore


class TestFolderStore(StoreTests):
    @pytest.fixture
    def make_store(self, tmp_path):
        return lambda: FolderStore(tmp_path / "imports")


def users(count):
    return [{"username": f"user{n}", "emails": [f"user{n}@example.com"], "importIds": [str(n)]}
            for n in range(count)]


def test_an_import_runs_to_done_on_the_folder_store(tmp_path):
    failed = {"7", "19"}

    def import_user(user):
        if user["importIds"][0] in failed:
            raise ValueError("taken")

    service = ImportService(FolderStore(tmp_path / "imports"), {"api": import_user},
                            batch_size=5)
    service.new_operation("admin")
    service.add_users(users(23))
    done = service.run()
    assert done.state is State.DONE
    assert (done.count.completed, done.count.error, done.count.total) == (21, 2, 23)
    # A new handle, as another process would open: the same operation, the failures kept.
    reopened = ImportService(FolderStore(tmp_path / "imports"), {"api": import_user})
    assert reopened.current_operation() == done
    kept = list(reopened.staged_users())
    assert [record["data"]["importIds"][0] for record in kept] == ["7", "19"]
    assert all(record["errors"][0]["message"] == "taken" for record in kept)


def test_the_script_imports_its_three_users(tmp_path):
    ran = subprocess.run([sys.executable, FOLDER / "custom_store.py", tmp_path / "imports"],
                         capture_output=True, text=True, check=True)
    assert ran.stdout == "done: 2 imported, 1 failed\n"
    index = json.loads((tmp_path / "imports" / "index.json").read_text())
    assert [entry["operation"]["status"] for entry in index["operations"]] == ["importer_done"]


def test_a_commit_that_fails_before_the_rename_changes_nothing(tmp_path, monkeypatch):
    store = FolderStore(tmp_path / "imports")
    service = ImportService(store)
    service.new_operation("admin")
    service.add_users(users(3))
    before = (service.current_operation(), list(service.staged_users()))

    def power_cut(_path, _target):
        raise OSError("the disk went away")

    with monkeypatch.context() as patched:
        patched.setattr(Path, "replace", power_cut)
        with pytest.raises(OSError, match="the disk went away"):
            service.add_users(users(5)[3:])
    assert (service.current_operation(), list(service.staged_users())) == before
    # The staging file the failed commit wrote is deleted by the next commit.
    service.add_users(users(6)[3:])
    index = json.loads((tmp_path / "imports" / "index.json").read_text())
    on_disk = {path.name for path in (tmp_path / "imports" / "staging").iterdir()}
    assert on_disk == {entry["staging"] for entry in index["operations"]}
    assert len(list(service.staged_users())) == 6


WRITER = """
import sys
sys.path.insert(0, sys.argv[1])
from custom_store import FolderStore
import attrs
store = FolderStore(sys.argv[2])
for _ in range(int(sys.argv[3])):
    with store.transaction() as tx:
        operation = tx.current()
        tx.update(attrs.evolve(operation, count=operation.count.added(completed=1)))
"""


def test_writers_in_several_processes_lose_no_update(tmp_path):
    service = ImportService(FolderStore(tmp_path / "imports"))
    service.new_operation("admin")
    rounds = 25
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, FOLDER, tmp_path / "imports", str(rounds)])
        for _ in range(3)
    ]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0, 0]
    assert service.current_operation().count.completed == 3 * rounds
