"""The server's background run: it gates the run's importer and keeps ``run``'s errors."""

import threading
import time

import pytest

from importstate import (
    Accounts,
    ImporterNotDefined,
    ImportService,
    InvalidOperationStatus,
    MemoryStore,
    OperationNotFound,
)
from importstate._gate import Gate
from importstate.http import create_app
from importstate.http._worker import RunWorker, ServerStopping
from importstate.testing import RecordingImporter


def user(n):
    return {"username": f"u{n}", "emails": [f"u{n}@example.com"], "importIds": [f"id-{n}"]}


def test_the_service_importers_are_left_as_they_are(tmp_path):
    imported = []
    importers = {"api": imported.append, "other": print}
    service = ImportService(MemoryStore(), importers)
    before = dict(service.importers)
    accounts = Accounts(tmp_path / "accounts.db")
    create_app(service, accounts)
    worker = RunWorker(service)
    assert service.importers == before
    service.new_operation("admin")
    service.add_users([user(1), user(2)])
    worker.start()
    deadline = time.monotonic() + 10
    while service.current_operation().state != "done":
        assert time.monotonic() < deadline
        time.sleep(0.005)
    accounts.close()
    assert service.importers == before
    assert all(service.importers[key] is importer for key, importer in before.items())
    assert [u["importIds"] for u in imported] == [["id-1"], ["id-2"]]


def test_start_raises_the_errors_of_run_in_their_order():
    service = ImportService(MemoryStore(), {})  # no importer for the "api" key
    worker = RunWorker(service)
    with pytest.raises(OperationNotFound):
        worker.start()
    service.new_operation("admin")
    with pytest.raises(InvalidOperationStatus):  # importer_new, and the key unknown too
        worker.start()
    service.add_users([user(1)])
    with pytest.raises(ImporterNotDefined):
        worker.start()
    service.clear()
    with pytest.raises(OperationNotFound):  # there is one, but it is no longer valid
        worker.start()
    assert service.current_operation().status == "importer_user_selection"


def test_a_stopped_worker_holds_its_run_at_a_batch_boundary():
    def slow_import(_user):
        time.sleep(0.001)

    service = ImportService(MemoryStore(), {"api": slow_import})
    worker = RunWorker(service)
    service.new_operation("admin")
    service.add_users([user(n) for n in range(1000)])
    worker.start()
    while service.current_operation().count.get("completed") < 50:
        time.sleep(0.005)
    worker.stop()
    held = service.current_operation()
    time.sleep(0.2)
    assert service.current_operation() == held
    assert held.state == "importing"
    assert 50 <= held.count.get("completed") < 1000
    assert held.count.get("completed") % 50 == 0
    with pytest.raises(ServerStopping):
        worker.start()


def test_the_gate_holds_a_batch_of_any_type_and_the_run_stays_at_its_checkpoint():
    service = ImportService(MemoryStore(), {"api": RecordingImporter()}, batch_size=1)
    service.new_operation("admin")
    service.add_users([user(1)])
    service.add_channels([{"importIds": ["c1"], "name": "general"},
                          {"importIds": ["c2"], "name": "random"}])
    gate = Gate()
    gated = gate.importer_for(service)
    inner = service.importers["api"]

    class ClosesAtTheFirstChannel:
        import_batch = gated.import_batch

        def import_channels(self, channels):
            gate.close()
            return gated.import_channels(channels)

    thread = threading.Thread(target=service.run, args=(ClosesAtTheFirstChannel(),), daemon=True)
    thread.start()
    assert gate.parked.wait(10), "the gate did not hold the channels' batch"
    op = service.current_operation()
    assert op.status == "importer_importing_channels"
    assert op.count.get("completed") == 1
    assert inner.channels == [], "a held batch reached the importer"
