import threading

import pytest

from importstate import ImportService, SQLiteStore
from importstate.errors import DuplicateChannel, DuplicateUser, MissingReference
from importstate.users_table import UsersTableImporter


def user(n, *, username=None, email=None, import_id=None):
    doc = {
        "emails": [email or f"u{n}@example.com"],
        "importIds": [import_id or f"id-{n}"],
    }
    if username is not False:
        doc["username"] = username or f"u{n}"
    return doc


@pytest.fixture
def db(tmp_path):
    return tmp_path / "importstate.db"


@pytest.fixture
def importer(db):
    importer = UsersTableImporter(db)
    yield importer
    importer.close()


def test_imports_every_clean_user(importer):
    outcomes = importer.import_batch([user(1), user(2), user(3, username=False)])
    assert outcomes == [None, None, None]
    assert importer.count() == 3
    row = importer.get("id-2")
    assert row is not None
    assert (row.username, row.email, row.data) == ("u2", "u2@example.com", user(2))
    assert importer.get("id-3").username is None


@pytest.mark.parametrize(
    ("second", "field"),
    [
        (user(2, username="ALICE"), "username"),
        (user(2, username="Alice"), "username"),
        (user(2, email="ALICE@Example.COM"), "email"),
        (user(2, username="straße", email="x@example.com"), None),
    ],
)
def test_username_and_first_email_are_unique_ignoring_case(importer, second, field):
    first = user(1, username="alice", email="alice@example.com")
    assert importer.import_batch([first]) == [None]
    [outcome] = importer.import_batch([second])
    if field is None:
        assert outcome is None
        return
    assert isinstance(outcome, DuplicateUser)
    assert outcome.field == field
    assert outcome.taken_by == "id-1"
    assert field in str(outcome)
    assert importer.count() == 1


def test_unicode_case_folding_applies(importer):
    assert importer.import_batch([user(1, username="STRASSE")]) == [None]
    [outcome] = importer.import_batch([user(2, username="straße")])
    assert isinstance(outcome, DuplicateUser)


def test_a_duplicate_inside_one_batch_fails_only_the_later_user(importer):
    outcomes = importer.import_batch(
        [user(1, username="bob"), user(2, username="BOB"), user(3)],
    )
    assert outcomes[0] is None
    assert isinstance(outcomes[1], DuplicateUser)
    assert outcomes[2] is None
    assert importer.count() == 2


def test_only_the_first_email_is_unique(importer):
    first = {"emails": ["a@example.com", "shared@example.com"], "importIds": ["1"]}
    second = {"emails": ["b@example.com", "shared@example.com"], "importIds": ["2"]}
    assert importer.import_batch([first, second]) == [None, None]


def test_a_rerun_batch_counts_its_own_users_as_imported(importer):
    batch = [user(n) for n in range(50)]
    assert importer.import_batch(batch) == [None] * 50
    # The same batch again (a resumed run after a crash) must not fail its own users.
    assert importer.import_batch(batch) == [None] * 50
    assert importer.count() == 50


def test_same_import_id_wins_over_a_changed_username(importer):
    assert importer.import_batch([user(1)]) == [None]
    assert importer.import_batch([user(1, username="renamed")]) == [None]
    assert importer.get("id-1").username == "u1"


@pytest.mark.parametrize(
    "bad",
    [
        {"emails": [], "importIds": ["1"]},
        {"emails": ["a@example.com"], "importIds": [""]},
        {"emails": "a@example.com", "importIds": ["1"]},
        {"emails": ["a@example.com"], "importIds": ["1"], "username": 7},
    ],
)
def test_a_malformed_user_fails_alone(importer, bad):
    outcomes = importer.import_batch([bad, user(2)])
    assert isinstance(outcomes[0], ValueError)
    assert outcomes[1] is None


def test_the_table_lives_beside_the_store_and_survives_reopening(db):
    store = SQLiteStore(db)
    importer = UsersTableImporter(db)
    importer.import_batch([user(1)])
    importer.close()
    reopened = UsersTableImporter(db)
    assert reopened.count() == 1
    reopened.close()
    with store.reading() as tx:
        assert tx.current() is None
    store.close()


def test_threads_share_one_importer(importer):
    def work(start):
        importer.import_batch([user(n) for n in range(start, start + 50)])

    threads = [threading.Thread(target=work, args=(k * 50,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert importer.count() == 200


def test_with_the_service_duplicates_stay_staged_with_their_error(db, importer):
    store = SQLiteStore(db)
    service = ImportService(store, {"api": importer})
    service.new_operation("admin")
    clashing = [user(999, username="U7"), user(998, email="U8@EXAMPLE.com")]
    users = [user(n) for n in range(120)] + clashing
    service.add_users(users)
    done = service.run()
    assert done.status == "importer_done"
    assert (done.count.completed, done.count.error, done.count.total) == (120, 2, 122)
    staged = list(service.staged_users())
    assert [r["data"]["importIds"][0] for r in staged] == ["id-999", "id-998"]
    assert "username 'U7' is already taken" in staged[0]["errors"][0]["message"]
    assert staged[0]["errors"][0]["type"] == "DuplicateUser"
    assert importer.count() == 120
    store.close()


def test_channels_and_messages_land_in_their_tables_and_refer_to_what_was_imported(importer):
    assert importer.import_batch([user(1)]) == [None]
    channels = [{"importIds": ["c1"], "name": "General", "t": "c"},
                {"importIds": ["c2"], "name": "general"},
                {"importIds": ["c3"], "name": "random", "t": "p"}]
    [one, taken, three] = importer.import_channels(channels)
    assert (one, three) == (None, None)
    assert isinstance(taken, DuplicateChannel)
    assert (taken.name, taken.taken_by) == ("general", "c1")
    assert str(taken) == "channel name 'general' is already taken by channel 'c1'"
    messages = [
        {"importIds": ["m1"], "rid": "c1", "u": {"_id": "id-1"}, "msg": "hi", "ts": 1},
        {"importIds": ["m2"], "rid": "c2", "u": {"_id": "id-1"}, "msg": "hi", "ts": 2},
        {"importIds": ["m3"], "rid": "c3", "u": {"_id": "id-9"}, "msg": "hi", "ts": 3},
    ]
    [imported, no_channel, no_author] = importer.import_messages(messages)
    assert imported is None
    assert isinstance(no_channel, MissingReference)
    assert str(no_channel) == "rid refers to channel 'c2', which was not imported"
    assert isinstance(no_author, MissingReference)
    assert (no_author.field, no_author.import_id, no_author.kind) == ("u._id", "id-9", "user")
    assert importer.import_messages(messages[:1]) == [None], "a message imported again is fine"
    assert importer.import_channels(channels[:1]) == [None], "so is a channel"
    assert (importer.count(), importer.count("channel"), importer.count("message")) == (1, 2, 1)


def test_the_built_in_importer_runs_every_phase(db, importer):
    service = ImportService(SQLiteStore(db), {"api": importer})
    service.new_operation("admin")
    service.add_users([user(1), user(2)])
    service.add_channels([{"importIds": ["c1"], "name": "general", "users": ["id-1"]}])
    service.add_messages([
        {"importIds": [f"m{n}"], "rid": "c1", "u": {"_id": f"id-{n % 3 + 1}"}, "msg": "hi",
         "ts": n} for n in range(6)
    ])
    done = service.run()
    assert done.count.to_wire() == {"total": 9, "completed": 7, "error": 2, "users": 2,
                                    "channels": 1, "messages": 6}
    assert [r["data"]["importIds"][0] for r in service.staged_records()] == ["m2", "m5"]
    assert importer.count("message") == 4
