"""Acme's own tests, using importstate.testing exactly as its README shows."""

import pytest
from acme_import import Database, Directory, DocumentStore, make_service
from hypothesis import given, settings
from hypothesis import strategies as st

from importstate.testing import ImportServiceMachine, StoreTests
from importstate.testing import strategies as ist


class TestDocumentStore(StoreTests):
    @pytest.fixture
    def make_store(self):
        database = Database()
        return lambda: DocumentStore(database)


def make_acme_service():
    return make_service(Database(), Directory())


TestAcmeService = ImportServiceMachine.with_factory(make_acme_service).TestCase
TestAcmeService.settings = settings(max_examples=30, stateful_step_count=30, deadline=None)


@given(st.lists(ist.users(), min_size=1, max_size=10, unique_by=lambda u: u["importIds"][0]))
def test_every_user_lands_in_the_directory_once(users):
    directory = Directory()
    service = make_service(Database(), directory)
    service.new_operation("admin")
    service.add_users(users)
    done = service.run()
    failed = list(service.staged_users())
    assert done.count.completed + done.count.error == len(users)
    assert len(directory.accounts) == done.count.completed
    assert all(r["errors"][0]["type"] == "UsernameTaken" for r in failed)


def test_the_pytest_plugin_fixtures(import_service, failing_importer):
    import_service.new_operation("admin")
    import_service.add_users([{"emails": ["a@acme.test"], "importIds": ["1"]}])
    assert import_service.run(importer=failing_importer).count.error == 1
