"""A downstream project's own tests of its importer, written with importstate's test kit.

Acme imports a helpdesk's agents into its directory with importstate; its
importer (:class:`DirectoryImporter`, which in a real project lives in the
project's package) must hold whatever users it is handed. These tests say
so with Hypothesis over the users :mod:`importstate.testing.strategies`
generates, with the fixtures importstate's pytest plugin provides wherever
importstate is installed, and with the service checked against the
reference model (:class:`importstate.testing.ImportServiceMachine`).

Run them with ``pip install importstate[testing]`` (Hypothesis and pytest),
then ``pytest examples/test_downstream_property.py``; the project's own
suite does, in ``tests/test_example_downstream.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from importstate import ImportService, MemoryStore, State
from importstate.testing import FailingImporter, ImportServiceMachine, RecordingImporter
from importstate.testing import strategies as ist

# -- the project's importer -----------------------------------------------------------------


class EmailTaken(Exception):
    """Another agent already has this email address (compared case-insensitively)."""


class Directory:
    """Acme's agents, by import id; each email address belongs to one agent."""

    def __init__(self) -> None:
        self.agents: dict[str, dict[str, Any]] = {}
        self.owners: dict[str, str] = {}  # casefolded email -> import id
        self.lock = threading.Lock()


def _first(values: Sequence[str]) -> str:
    return next(value for value in values if value)


class DirectoryImporter:
    """Adds each user of a batch as an agent; a user already there is left as it is.

    An import may hand a batch over again (a run resumed after a crash), so
    a user whose import id is already in the directory counts as imported.
    """

    def __init__(self, directory: Directory) -> None:
        self.directory = directory

    def import_batch(self, users: list[dict[str, Any]]) -> list[BaseException | None]:
        """Add the batch's users; per user, the error that failed it or ``None``."""
        with self.directory.lock:
            return [self._add(user) for user in users]

    def _add(self, user: dict[str, Any]) -> BaseException | None:
        key, email = _first(user["importIds"]), _first(user["emails"])
        owner = self.directory.owners.setdefault(email.casefold(), key)
        if owner != key:
            return EmailTaken(f"{email} belongs to agent {owner}")
        self.directory.agents[key] = {"email": email, "name": user.get("name")}
        return None


def make_service(directory: Directory | None = None) -> ImportService:
    """The service as Acme builds it: its importer registered under ``api``."""
    return ImportService(MemoryStore(), {"api": DirectoryImporter(directory or Directory())},
                         batch_size=4)


# -- properties over generated users ---------------------------------------------------------

_USERS = st.lists(ist.users(), min_size=1, max_size=20,
                  unique_by=lambda user: _first(user["importIds"]))


@st.composite
def users_sharing_emails(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Users of which some reuse an earlier user's email, in other letter case."""
    users = draw(_USERS)
    for index in range(1, len(users)):
        if draw(st.booleans()):
            earlier = _first(users[draw(st.integers(0, index - 1))]["emails"])
            users[index] = {**users[index], "emails": [earlier.upper()]}
    return users


@given(users_sharing_emails())
@settings(max_examples=40, deadline=None)
def test_the_first_user_of_each_email_becomes_an_agent(users: list[dict[str, Any]]) -> None:
    directory = Directory()
    service = make_service(directory)
    service.new_operation("admin")
    service.add_users(users)
    done = service.run()

    firsts: dict[str, str] = {}
    for user in users:
        firsts.setdefault(_first(user["emails"]).casefold(), _first(user["importIds"]))
    assert done.state is State.DONE
    assert set(directory.agents) == set(firsts.values())
    assert (done.count.completed, done.count.error) == (len(firsts), len(users) - len(firsts))
    failed = {_first(record["data"]["importIds"]) for record in service.failed_records()}
    assert failed == {_first(user["importIds"]) for user in users} - set(firsts.values())


class Crash(BaseException):
    """The process dies here: nothing in importstate catches a ``BaseException``."""


class CrashingImporter(DirectoryImporter):
    """Imports its first ``batches`` batches, then dies before finishing the next."""

    def __init__(self, directory: Directory, batches: int) -> None:
        super().__init__(directory)
        self.batches = batches

    def import_batch(self, users: list[dict[str, Any]]) -> list[BaseException | None]:
        """As :class:`DirectoryImporter`, but the batch after ``batches`` dies halfway."""
        if self.batches == 0:
            super().import_batch(users[: len(users) // 2])
            raise Crash
        self.batches -= 1
        return super().import_batch(users)


@given(users_sharing_emails(), st.integers(0, 5))
@settings(max_examples=30, deadline=None)
def test_a_run_resumed_after_a_crash_ends_as_one_that_never_crashed(
    users: list[dict[str, Any]], crash_after: int,
) -> None:
    calm, crashed = Directory(), Directory()
    uninterrupted = make_service(calm)
    uninterrupted.new_operation("admin")
    uninterrupted.add_users(users)
    expected = uninterrupted.run()

    service = make_service(crashed)
    service.new_operation("admin")
    service.add_users(users)
    try:
        ended = service.run(CrashingImporter(crashed, crash_after))
    except Crash:
        assert service.status()["state"] == State.IMPORTING.value
        ended = service.resume()
    assert crashed.agents == calm.agents
    assert (ended.state, ended.count) == (expected.state, expected.count)


@given(st.data())
@settings(max_examples=30, deadline=None)
def test_a_selection_imports_exactly_the_agents_it_names(data: st.DataObject) -> None:
    users = data.draw(_USERS, label="users")
    ids = [user["importIds"][0] for user in users]  # a selection names a user by its first
    selection = data.draw(ist.selections(users=ids), label="selection")
    directory = Directory()
    service = make_service(directory)
    service.new_operation("admin")
    service.add_users(users)
    service.run(selection=selection)

    chosen = selection.get("users", {"all": True})  # a type left out is imported whole
    wanted = set(ids) if chosen.get("all") else set(chosen.get("list", []))
    kept = [user for user in users if user["importIds"][0] in wanted]
    emails = {_first(user["emails"]).casefold() for user in kept}
    assert set(directory.agents) <= {_first(user["importIds"]) for user in kept}
    assert len(directory.agents) == len(emails)


def test_the_offer_lists_the_staged_users_and_chooses_some() -> None:
    directory = Directory()
    service = make_service(directory)
    service.new_operation("admin")
    service.add_users([{"emails": [f"{n}@acme.test"], "importIds": [str(n)], "username": f"a{n}"}
                       for n in range(5)])
    offer = service.selection()
    assert [user.username for user in offer.users] == ["a0", "a1", "a2", "a3", "a4"]
    everyone_but_3 = [user.user_id for user in offer.users if user.user_id != "3"]
    done = service.run(selection=offer.choose(users=everyone_but_3))
    assert sorted(directory.agents) == ["0", "1", "2", "4"]
    assert done.count.total == 4


# -- the pytest plugin's fixtures ------------------------------------------------------------


def test_the_importer_works_on_both_built_in_stores(
    import_service: ImportService, recording_importer: RecordingImporter,
) -> None:
    directory = Directory()
    import_service.new_operation("admin")
    import_service.add_users([
        {"emails": ["ann@acme.test"], "importIds": ["1"], "name": "Ann"},
        {"emails": ["ANN@acme.test"], "importIds": ["2"]},
    ])
    done = import_service.run(DirectoryImporter(directory))
    assert (done.count.completed, done.count.error) == (1, 1)
    assert directory.agents == {"1": {"email": "ann@acme.test", "name": "Ann"}}
    assert recording_importer.calls == []  # the fixture's importer was not used


def test_a_target_that_refuses_everyone_keeps_every_user_staged(
    import_service: ImportService, failing_importer: FailingImporter,
) -> None:
    import_service.new_operation("admin")
    import_service.add_users([{"emails": [f"{n}@acme.test"], "importIds": [str(n)]}
                              for n in range(3)])
    done = import_service.run(failing_importer)
    assert (done.count.completed, done.count.error) == (0, 3)
    assert [record["data"]["importIds"] for record in import_service.failed_records()] == [
        ["0"], ["1"], ["2"],
    ]


# -- the service against the reference model ------------------------------------------------


TestDirectoryService = ImportServiceMachine.with_factory(make_service).TestCase
TestDirectoryService.settings = settings(max_examples=15, stateful_step_count=20, deadline=None)

