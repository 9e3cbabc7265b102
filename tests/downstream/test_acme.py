"""Acme's own tests: the README's "Testing your importer" example, verbatim."""

import pytest
from acme_import import Database, Directory, DocumentStore, make_service
from hypothesis import given, settings
from hypothesis import strategies as st

from importstate.testing import ImportServiceMachine, StoreTests
from importstate.testing import strategies as ist


# 1. The store passes the conformance suite every built-in store passes.
class TestDocumentStore(StoreTests):
    @pytest.fixture
    def make_store(self):
        database = Database()                    # one store, empty when the test starts;
        return lambda: DocumentStore(database)   # each call: a new handle on it


# 2. The service, with the real importer, against a model of the spec.
def make_acme_service():
    return make_service(Database(), Directory())  # empty store, importer under "api"


TestAcmeService = ImportServiceMachine.with_factory(make_acme_service).TestCase
TestAcmeService.settings = settings(max_examples=30, stateful_step_count=30, deadline=None)


# 3. Your own properties over generated users.
@given(st.lists(ist.users(), min_size=1, max_size=10, unique_by=lambda u: u["importIds"][0]))
def test_every_user_lands_in_the_directory_once(users):
    directory = Directory()
    service = make_service(Database(), directory)
    service.new_operation("admin")
    service.add_users(users)
    done = service.run()
    assert done.count.completed + done.count.error == len(users)
    assert len(directory.accounts) == done.count.completed


# 4. Fixtures from the pytest plugin, loaded wherever importstate is installed.
def test_the_pytest_plugin_fixtures(import_service, failing_importer):
    import_service.new_operation("admin")
    import_service.add_users([{"emails": ["a@acme.test"], "importIds": ["1"]}])
    assert import_service.run(importer=failing_importer).count.error == 1
