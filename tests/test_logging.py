"""Logging: the importstate hierarchy, silent by default; runs at INFO, batches at DEBUG."""

from __future__ import annotations

import logging

import pytest

from importstate import DatabaseBusy, ImportService, MemoryStore, ProgressStep


def users(count: int) -> list[dict[str, object]]:
    return [{"emails": [f"u{n}@example.com"], "importIds": [str(n)]} for n in range(count)]


def test_the_library_logger_has_a_null_handler():
    handlers = logging.getLogger("importstate").handlers
    assert any(isinstance(handler, logging.NullHandler) for handler in handlers)


def test_a_run_logs_its_start_and_end_at_info_and_each_batch_at_debug(caplog):
    service = ImportService(MemoryStore(), {"api": lambda _user: None}, batch_size=2)
    service.new_operation("admin")
    service.add_users(users(5))
    with caplog.at_level(logging.DEBUG, logger="importstate"):
        done = service.run()
    runs = [r for r in caplog.records if r.name == "importstate.run"]
    info = [r for r in runs if r.levelno == logging.INFO]
    assert [r.getMessage().split(":")[0] for r in info] == [
        f"import {done.id} started", f"import {done.id} finished",
    ]
    assert (info[-1].operation_id, info[-1].status, info[-1].completed, info[-1].total) == (
        done.id, ProgressStep.DONE.value, 5, 5)
    batches = [r for r in runs if r.levelno == logging.DEBUG]
    assert [(r.batch_completed, r.completed, r.data_type) for r in batches] == [
        (2, 2, "user"), (2, 4, "user"), (1, 5, "user"),
    ]
    assert all(r.operation_id == done.id for r in batches)


def test_a_failed_run_logs_why_at_info(caplog):
    class Locked:
        def import_batch(self, _users: object) -> list[BaseException | None]:
            raise DatabaseBusy  # the target's database stayed locked: the run fails

    service = ImportService(MemoryStore(), {"api": Locked()})
    service.new_operation("admin")
    service.add_users(users(3))
    with caplog.at_level(logging.INFO, logger="importstate"):
        failed = service.run()
    assert failed.status is ProgressStep.IMPORT_FAILED
    (end,) = [r for r in caplog.records if r.getMessage().startswith(f"import {failed.id} failed")]
    assert end.levelno == logging.INFO
    assert failed.failure is not None
    assert failed.failure.message in end.getMessage()
    assert (end.operation_id, end.status) == (failed.id, "importer_import_failed")
    assert not [r for r in caplog.records if r.levelno == logging.DEBUG]


def test_a_resumed_run_logs_resumed_then_how_it_ended(caplog):
    class Interrupted:
        """Stops the process's run as Ctrl-C would, on the second batch."""

        def __init__(self) -> None:
            self.batches = 0

        def import_batch(self, batch: list[object]) -> list[BaseException | None]:
            self.batches += 1
            if self.batches == 2:
                raise KeyboardInterrupt
            return [None] * len(batch)

    service = ImportService(MemoryStore(), {"api": Interrupted()}, batch_size=2)
    service.new_operation("admin")
    service.add_users(users(5))
    with pytest.raises(KeyboardInterrupt):
        service.run()
    with caplog.at_level(logging.INFO, logger="importstate"):
        done = service.resume()
    said = [r.getMessage().split(":")[0] for r in caplog.records if r.name == "importstate.run"]
    assert said == [f"import {done.id} resumed", f"import {done.id} finished"]
    resumed = caplog.records[0]
    assert (resumed.status, resumed.completed) == ("importer_importing_users", 2)
