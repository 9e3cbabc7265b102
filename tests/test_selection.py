"""The selection: what staging offers, and a run of what the administrator chose.

Behaviour: selection.
"""


import asyncio

import attrs
import httpx
import pytest
from clocks import Clock
from hypothesis import given

from importstate import (
    Accounts,
    ImporterNotDefined,
    ImportService,
    InvalidImportOperation,
    InvalidSelection,
    MemoryStore,
    Offer,
    OperationNotFound,
    ProgressStep,
    Selection,
    SelectionNotReady,
    SQLiteStore,
)
from importstate.http import create_app
from importstate.selection import DIRECT_MESSAGES, OfferedChannel, OfferedUser
from importstate.testing import strategies as ist


class Recorder:
    def __init__(self):
        self.handed = []

    def _take(self, records):
        self.handed += [r["importIds"][0] for r in records]
        return [None] * len(records)

    import_batch = import_channels = import_messages = _take


@pytest.fixture(params=["memory", "sqlite"])
def svc(request, tmp_path):
    store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "s.db")
    yield ImportService(store, {"api": Recorder(), "csv": Recorder()}, clock=Clock(),
                        names={"csv": "CSV"}, batch_size=2, message_batch_size=2)
    store.close()


def user(n, **extra):
    return {"username": f"user{n}", "emails": [f"user{n}@example.com"], "importIds": [f"u{n}"],
            **extra}


def channel(n, **extra):
    return {"importIds": [f"c{n}"], "name": f"channel-{n}", **extra}


def message(n, room):
    return {"importIds": [f"m{n}"], "rid": room, "u": {"_id": "u1"}, "msg": "hi", "ts": n}


def staged(svc):
    svc.new_operation("admin")
    svc.add_users([user(1), user(2, deleted=True, type="bot"),
                   {"emails": ["", "x@example.com"], "importIds": ["", "u3"]}])
    svc.add_channels([
        channel(1), channel(2, t="p", archived=True),
        channel(3, t="d", users=["u1", "u2"]), channel(4, t="d"),
    ])
    svc.add_messages([message(n, room) for n, room in enumerate(["c1", "c2", "c3", "c4", "zz"])])


def test_the_selection_is_built_from_staging(svc):
    staged(svc)
    before = svc.current_operation()
    offer = svc.selection()
    assert isinstance(offer, Offer)
    assert offer.to_wire() == {
        "name": "API",
        "users": [
            {"user_id": "u1", "username": "user1", "email": "user1@example.com",
             "is_deleted": False, "is_bot": False, "do_import": True, "is_email_taken": False},
            {"user_id": "u2", "username": "user2", "email": "user2@example.com",
             "is_deleted": True, "is_bot": True, "do_import": True, "is_email_taken": False},
            {"user_id": "", "username": None, "email": "", "is_deleted": False,
             "is_bot": False, "do_import": True, "is_email_taken": False},
        ],
        "channels": [
            {"channel_id": "c1", "name": "channel-1", "is_archived": False, "do_import": True,
             "is_private": False, "is_direct": False},
            {"channel_id": "c2", "name": "channel-2", "is_archived": True, "do_import": True,
             "is_private": True, "is_direct": False},
            {"channel_id": DIRECT_MESSAGES, "name": DIRECT_MESSAGES, "is_archived": False,
             "do_import": True, "is_private": False, "is_direct": True},
        ],
        "contacts": [],
        "message_count": 5,
    }
    assert svc.current_operation() == before, "reading the selection changed the operation"


def test_the_offer_is_a_value_with_typed_entries(svc):
    staged(svc)
    offer = svc.selection()
    assert (offer.name, offer.message_count) == ("API", 5)
    assert offer.users[1] == OfferedUser(user_id="u2", username="user2",
                                         email="user2@example.com", is_deleted=True, is_bot=True)
    assert [channel.channel_id for channel in offer.channels] == ["c1", "c2", DIRECT_MESSAGES]
    assert offer.channels[2] == OfferedChannel(
        channel_id=DIRECT_MESSAGES, name=DIRECT_MESSAGES, is_archived=False, do_import=True,
        is_private=False, is_direct=True)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        offer.name = "changed"
    assert svc.selection() == offer, "two reads of unchanged staging give equal offers"


def test_there_is_no_selection_yet_while_downloading_or_preparing(svc):
    with pytest.raises(OperationNotFound):
        svc.selection()
    svc.new_operation("admin", type="CSV", importer_key="csv")
    assert svc.selection() == Offer(name="CSV")
    assert svc.selection().to_wire() == {"name": "CSV", "users": [], "channels": [],
                                         "contacts": [], "message_count": 0}
    svc.begin_loading(file="users.zip")
    assert svc.selection() == Offer(name="CSV")  # uploading: not downloading, not preparing
    for step in (ProgressStep.DOWNLOADING_FILE, ProgressStep.PREPARING_USERS,
                 ProgressStep.PREPARING_MESSAGES):
        svc.advance(step)
        with pytest.raises(SelectionNotReady) as waiting:
            svc.selection()
        assert waiting.value.step == step.value
        assert str(waiting.value) == (
            f"the selection is not ready: the operation is at '{step.value}' (downloading or"
            " preparing); ask again once it is ready")
    svc.finish_loading()
    assert svc.selection() == Offer(name="CSV")
    svc.new_operation("admin", type="CSV", importer_key="csv")
    svc.begin_loading(file="users.zip")
    svc.advance(ProgressStep.PREPARING_USERS)
    svc.clear()
    with pytest.raises(InvalidImportOperation) as refused:
        svc.selection()
    assert str(refused.value) == "error-import-operation-invalid"
    svc.new_operation("admin", importer_key="gone")
    with pytest.raises(ImporterNotDefined):
        svc.selection()


def test_a_run_imports_only_what_the_selection_keeps_and_narrows_the_counts(svc):
    staged(svc)
    done = svc.run(selection={"users": {"list": ["u2", "nobody"]}, "channels": {"list": ["c2"]}})
    handed = svc.importers["api"].handed
    assert handed == ["u2", "c2", "m1", "m4"], "messages of channels left out are left out too"
    assert done.status is ProgressStep.DONE
    assert done.count.to_wire() == {"total": 4, "completed": 4, "error": 0, "users": 1,
                                    "channels": 1, "messages": 2}
    assert list(svc.staged_records()) == [], "what was left out goes with the successes"


def test_direct_messages_are_chosen_together_and_all_means_all(svc):
    staged(svc)
    svc.run(selection={"users": {"all": True, "list": []},
                       "channels": {"list": [DIRECT_MESSAGES]}})
    assert svc.importers["api"].handed == ["u1", "u2", "", "c3", "c4", "m2", "m3", "m4"]


def test_a_type_the_selection_leaves_out_is_imported_whole(svc):
    staged(svc)
    done = svc.run(selection={"channels": {}})
    assert svc.importers["api"].handed == ["u1", "u2", "", "m4"]
    assert done.count.to_wire() == {"total": 4, "completed": 4, "error": 0, "users": 3,
                                    "channels": 0, "messages": 1}


def test_a_selection_value_runs_like_its_wire_form(svc):
    staged(svc)
    done = svc.run(selection=Selection(users=frozenset({"u1"})))
    assert svc.importers["api"].handed == ["u1", "c1", "c2", "c3", "c4", "m0", "m1", "m2",
                                           "m3", "m4"]
    assert done.count.get("total") == 10


def test_the_offer_chooses_the_selection_to_run_with(svc):
    staged(svc)
    offer = svc.selection()
    assert offer.choose() == Selection()
    chosen = offer.choose(users=["u1"], channels=["c2", DIRECT_MESSAGES])
    assert chosen == Selection(users=frozenset({"u1"}),
                               channels=frozenset({"c2", DIRECT_MESSAGES}))
    done = svc.run(selection=chosen)
    # m4's room is no staged channel, so no choice of channels leaves it out.
    assert svc.importers["api"].handed == ["u1", "c2", "c3", "c4", "m1", "m2", "m3", "m4"]
    assert done.count.get("total") == 8


@pytest.mark.parametrize(("choice", "message"), [
    ({"users": ["u1", "nobody"]}, "selection: users: 'nobody' is not offered"),
    ({"channels": ["c3"]}, "selection: channels: 'c3' is not offered"),  # direct: one entry
])
def test_the_offer_refuses_to_choose_what_it_does_not_offer(svc, choice, message):
    staged(svc)
    with pytest.raises(InvalidSelection) as refused:
        svc.selection().choose(**choice)
    assert str(refused.value) == message


@given(ist.selections(users=["u1", "u2"], channels=["c1", DIRECT_MESSAGES]))
def test_a_selection_reads_back_from_its_wire_form(wire):
    selection = Selection.from_wire(wire)
    assert Selection.from_wire(selection.to_wire()) == selection
    assert set(selection.to_wire()) == {"users", "channels"}


def test_the_wire_form_of_a_selection_says_all_or_lists():
    assert Selection(channels=frozenset({"c2", "c1"})).to_wire() == {
        "users": {"all": True}, "channels": {"list": ["c1", "c2"]}}


def test_a_cancelled_run_keeps_what_its_selection_left_out(svc):
    staged(svc)

    class CancelsAtChannels(Recorder):
        def import_channels(self, records):
            svc.cancel()
            return self._take(records)

    done = svc.run(CancelsAtChannels(), selection={"users": {"list": ["u1"]}})
    assert done.status is ProgressStep.IMPORT_CANCELLED
    assert len(list(svc.staged_records())) == 12, "a cancelled run keeps its staging"


@pytest.mark.parametrize(("selection", "field"), [
    ([], "$"),
    ({"rooms": {}}, "rooms"),
    ({"users": []}, "users"),
    ({"users": {"some": True}}, "users.some"),
    ({"users": {"all": "yes"}}, "users.all"),
    ({"channels": {"list": "c1"}}, "channels.list"),
    ({"channels": {"list": [1]}}, "channels.list"),
])
def test_a_selection_that_does_not_fit_is_refused_first(svc, selection, field):
    with pytest.raises(InvalidSelection) as refused:
        svc.run(selection=selection)  # no operation either: the selection is checked first
    assert refused.value.field == field
    assert str(refused.value).startswith(f"selection: {field}: ")


def test_a_run_with_a_selection_has_the_preconditions_of_run(svc):
    with pytest.raises(OperationNotFound):
        svc.run(selection={})
    svc.new_operation("admin")
    svc.add_users([user(1)])
    assert svc.run(selection={}).count.get("completed") == 1


def test_get_import_file_data_waits_while_preparing_then_sends_the_offer(tmp_path):
    store = SQLiteStore(tmp_path / "s.db")
    service = ImportService(store, {"csv": Recorder()}, clock=Clock())
    accounts = Accounts(tmp_path / "s.db")
    _, credentials = accounts.add("admin", permissions=["run-import"])
    app = create_app(service, accounts)
    sent = {"X-User-Id": credentials.user_id, "X-Auth-Token": credentials.auth_token}

    async def file_data():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver/api/v1/",
                                     headers=sent) as client:
            answer = await client.get("getImportFileData")
            assert answer.status_code == 200
            return answer.json()

    service.new_operation("admin", type="CSV", importer_key="csv")
    service.begin_loading(file="users.zip")
    service.advance(ProgressStep.PREPARING_USERS)
    assert asyncio.run(file_data()) == {"waiting": True, "success": True}
    service.stage([user(1)])
    service.finish_loading()
    assert asyncio.run(file_data()) == {**service.selection().to_wire(), "success": True}
    assert asyncio.run(file_data())["users"][0]["user_id"] == "u1"
    accounts.close()
    store.close()
