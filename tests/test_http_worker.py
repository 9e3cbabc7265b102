"""The server's background run: it gates the run's importer and keeps ``run``'s errors."""

import asyncio
import datetime as dt
import logging
import threading
import time

import httpx
import pytest
from workers import settled_descriptors

from importstate import (
    Accounts,
    ImporterNotDefined,
    ImportService,
    InvalidOperationStatus,
    MemoryStore,
    OperationNotFound,
    SQLiteStore,
)
from importstate._gate import Gate
from importstate.http import create_app
from importstate.http._lease import RunLease
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




def test_descriptors_stay_flat_over_a_hundred_background_runs(tmp_path):
    """Finding 1: each run is a new thread; its store connection goes with it."""
    store = SQLiteStore(tmp_path / "runs.db")
    service = ImportService(store, {"api": lambda _user: None})
    worker = RunWorker(service)

    def one_run(n):
        service.new_operation("admin")
        service.add_users([user(n)])
        worker.start()
        deadline = time.monotonic() + 10
        while service.current_operation().state != "done":
            assert time.monotonic() < deadline
            time.sleep(0.001)
        worker.wait()

    one_run(0)
    before = settled_descriptors(store.path, 3)
    for n in range(1, 101):
        one_run(n)
    assert settled_descriptors(store.path, before) <= before
    store.close()


class ReadOnlyAfter:
    """A batch importer that turns the run's own connection read-only at its third batch.

    ``PRAGMA query_only`` stands in for a file that became read-only: as root,
    ``chmod`` would not stop a write.
    """

    def __init__(self, store):
        self.store = store
        self.batches = 0

    def import_batch(self, users):
        self.batches += 1
        if self.batches == 3:
            self.store._connection().execute("PRAGMA query_only=1")
        return [None] * len(users)


def test_a_write_error_mid_run_fails_the_operation_and_the_server_goes_on(tmp_path, caplog):
    """Finding 3: the run cannot write; the operation fails with the message, logged once."""
    db = tmp_path / "ro.db"
    store = SQLiteStore(db)
    service = ImportService(store, {"api": ReadOnlyAfter(store)})
    accounts = Accounts(db)
    _, credentials = accounts.add("admin", permissions=["run-import"])
    app = create_app(service, accounts)
    sent = {"X-User-Id": credentials.user_id, "X-Auth-Token": credentials.auth_token}
    caplog.set_level(logging.INFO, logger="importstate")

    async def drive():
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=transport, base_url="http://testserver/api/v1/", headers=sent,
        ) as client:
            (await client.post("import.new")).raise_for_status()
            (await client.post("import.addUsers", json={"users": [user(n) for n in range(500)]})) \
                .raise_for_status()
            assert (await client.post("import.run")).json() == {"success": True}
            deadline = time.monotonic() + 15
            while (status := (await client.get("import.status")).json())["state"] == "importing":
                assert time.monotonic() < deadline, status
                await asyncio.sleep(0.02)
            assert status["state"] == "error"
            assert "readonly database" in status["operation"]["failure"]["message"]
            assert (await client.post("import.new")).status_code == 200
            assert (await client.get("import.status")).json()["state"] == "new"

    asyncio.run(drive())
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "readonly database" in errors[0].getMessage()
    accounts.close()
    store.close()


def test_the_watch_prunes_finished_operations_older_than_the_limit(tmp_path):
    now = [dt.datetime(2024, 5, 1, tzinfo=dt.UTC)]
    service = ImportService(MemoryStore(), {"api": lambda _user: None}, clock=lambda: now[0])
    for n in range(3):
        service.new_operation("admin")
        service.add_users([user(n)])
        service.run()
    now[0] += dt.timedelta(days=2)
    service.new_operation("admin")
    worker = RunWorker(service, RunLease(tmp_path / "lease.db", takeover_after=30),
                       prune_after=86400)
    worker.tick()
    assert [op.state for op in service.latest_operations()] == ["new", "done"]  # touched at +2 d
    worker.stop()


def test_the_server_s_run_leaves_no_imported_password_in_the_files(tmp_path):
    """Finding 9: once a background run ends, its staging has left the database's files."""
    db = tmp_path / "secrets.db"
    store = SQLiteStore(db)
    service = ImportService(store, {"api": lambda _user: None})
    worker = RunWorker(service)
    service.new_operation("admin")
    service.add_users([{**user(n), "password": f"hunter2-{n:04d}"} for n in range(500)])
    worker.start()
    worker.wait()
    assert service.current_operation().state == "done"
    files = b"".join(path.read_bytes() for path in tmp_path.iterdir())
    assert b"hunter2-" not in files
    store.close()
