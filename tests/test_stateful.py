import itertools

import attrs
import pytest
from hypothesis import Phase, settings
from hypothesis.stateful import rule, run_state_machine_as_test

from importstate import (
    ImportService,
    MemoryStore,
    OperationAlreadyFinished,
    OperationNotFound,
    SQLiteStore,
)
from importstate.steps import FINISHED_STATES
from importstate.testing import FailingImporter, ImportServiceMachine, RecordingImporter


def test_the_service_on_memory_matches_the_spec():
    def make_service():
        return ImportService(MemoryStore(), {"api": RecordingImporter()})

    run_state_machine_as_test(ImportServiceMachine.with_factory(make_service))


def test_the_service_on_sqlite_matches_the_spec(tmp_path):
    files = (tmp_path / f"{n}.db" for n in itertools.count())

    def make_service():
        return ImportService(SQLiteStore(next(files)), {"api": RecordingImporter()})

    run_state_machine_as_test(ImportServiceMachine.with_factory(make_service))


def test_the_importers_own_failures_are_expected_too():
    # Users whose first import id starts with a digit fail in the importer itself.
    def make_service():
        failing = FailingImporter(lambda user: user["importIds"][0][:1].isdigit(), "no digits")
        return ImportService(MemoryStore(), {"api": failing})

    run_state_machine_as_test(ImportServiceMachine.with_factory(make_service))


def test_a_batch_importer_under_test_is_wrapped_too():
    class Batch:
        def import_batch(self, users):
            return [ValueError("odd") if len(u["emails"]) % 2 else None for u in users]

    def make_service():
        return ImportService(MemoryStore(), {"api": Batch()})

    run_state_machine_as_test(ImportServiceMachine.with_factory(make_service))


def test_the_machine_needs_a_factory():
    with pytest.raises(TypeError, match="with_factory"):
        ImportServiceMachine()


def test_the_factory_must_register_the_api_importer():
    machine = ImportServiceMachine.with_factory(lambda: ImportService(MemoryStore()))
    with pytest.raises(TypeError, match="'api'"):
        machine()


# The documented way: a unittest test case pytest collects.
TestServiceOnMemory = ImportServiceMachine.with_factory(
    lambda: ImportService(MemoryStore(), {"api": RecordingImporter()}),
).TestCase


class SloppyClearService(ImportService):
    """Forgets to empty staging on clear: import.clear leaves staged users behind."""

    def clear(self):
        with self.store.transaction() as tx:
            for op in tx.valid_operations():
                tx.update(op.fire("invalidate", at=self.clock()))


class MiscountingService(ImportService):
    """Counts a failed user as completed, as Rocket.Chat does (Behaviour: counts says error)."""

    def run(self, importer=None, **options):
        done = super().run(importer, **options)
        error = done.count.get("error")
        recounted = attrs.evolve(done, count=done.count.added(completed=error, error=-error))
        with self.store.transaction() as tx:
            tx.update(recounted)
        return recounted


@pytest.mark.parametrize("service_class", [SloppyClearService, MiscountingService])
def test_the_machine_catches_a_broken_service(service_class):
    def make_service():
        return service_class(MemoryStore(), {"api": RecordingImporter()})

    with pytest.raises(AssertionError):
        run_state_machine_as_test(
            ImportServiceMachine.with_factory(make_service),
            settings=settings(max_examples=200, database=None, phases=[Phase.generate]),
        )


class UnrecordedCancelService(ImportService):
    """Cancels through the store's own transaction: the change is stored, its history is not."""

    def cancel(self):
        with self.store.transaction() as tx:
            operation = tx.current()
            if operation is None or not operation.valid:
                raise OperationNotFound
            if operation.state in FINISHED_STATES:
                raise OperationAlreadyFinished
            cancelled = operation.fire("cancel", at=self.clock())
            tx.update(cancelled)
        return cancelled


def test_the_machine_catches_a_change_stored_without_its_history():
    def make_service():
        return UnrecordedCancelService(MemoryStore(), {"api": RecordingImporter()})

    with pytest.raises(AssertionError, match=r"the history of .* ends at"):
        run_state_machine_as_test(
            ImportServiceMachine.with_factory(make_service),
            settings=settings(max_examples=200, database=None, phases=[Phase.generate]),
        )


def test_subclasses_add_rules_that_see_the_service_and_the_model():
    seen = []

    class WithStagedCount(ImportServiceMachine.with_factory(
        lambda: ImportService(MemoryStore(), {"api": RecordingImporter()}),
    )):
        @rule()
        def count_staged_users(self):
            current = self.model.current
            staged = len(list(self.service.staged_users()))
            users = [r for r in current.staged if r.data_type == "user"] if current else []
            assert staged == len(users)
            seen.append(staged)

    # Enough examples that the one added rule, among the machine's many, is always drawn.
    run_state_machine_as_test(WithStagedCount, settings=settings(max_examples=50))
    assert seen, "the subclass's rule never ran"
