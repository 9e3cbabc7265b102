"""examples/custom_loader.py: a Mattermost bulk export loaded into the built-in target."""

import json
import subprocess
import sys

import pytest
from example_modules import FOLDER, load
from loader_plugins import installed_plugin

from importstate import ImportService, SQLiteStore, State, UsersTableImporter
from importstate.loaders import Loader, available

custom_loader = load("custom_loader")
MattermostLoader = custom_loader.MattermostLoader


def export(*lines):
    return "".join(json.dumps(line) + "\n" for line in lines)


VERSION = {"type": "version", "version": 1}


def user(name, *channels, **extra):
    teams = [{"name": "acme", "channels": [{"name": c} for c in channels]}]
    return {"type": "user", "user": {"username": name, "email": f"{name}@example.com",
                                     "teams": teams, **extra}}


@pytest.fixture
def setup(tmp_path):
    database = tmp_path / "imports.db"
    target = UsersTableImporter(database)
    store = SQLiteStore(database)
    service = ImportService(store, {"mattermost": target},
                            loaders={"mattermost": MattermostLoader()})
    yield service, target, tmp_path / "export.jsonl"
    target.close()
    store.close()


def test_the_loader_meets_the_protocol():
    assert isinstance(MattermostLoader(), Loader)


def test_an_export_is_loaded_then_imported_into_the_built_in_target(setup):
    service, target, path = setup
    path.write_text(export(
        VERSION,
        {"type": "team", "team": {"name": "acme", "display_name": "Acme", "type": "O"}},
        {"type": "channel", "channel": {"team": "acme", "name": "town-square", "type": "O",
                                        "header": "all of us"}},
        {"type": "channel", "channel": {"team": "acme", "name": "board", "type": "P"}},
        user("ann", "town-square", "board", first_name="Ann", last_name="Lee",
             roles="system_user system_admin"),
        user("bob", "town-square", delete_at=1700000000000),
        {"type": "post", "post": {"team": "acme", "channel": "town-square", "user": "ann",
                                  "message": "hello", "create_at": 1700000000000}},
        {"type": "post", "post": {"team": "acme", "channel": "board", "user": "ann",
                                  "message": "minutes", "create_at": 1700000001000}},
        {"type": "direct_channel", "direct_channel": {"members": ["bob", "ann"]}},
        {"type": "direct_post", "direct_post": {"channel_members": ["ann", "bob"],
                                                "user": "bob", "message": "hi",
                                                "create_at": 1700000002000}},
    ))
    loaded = service.load_file(path, "mattermost", user_id="admin")
    assert (loaded.state, loaded.type, loaded.content_type) == (
        State.READY, "Mattermost", "application/x-ndjson")
    counts = loaded.count
    assert (counts.get("users"), counts.get("channels"), counts.get("messages")) == (2, 3, 3)
    records = {r["data"]["importIds"][0]: r["data"] for r in service.staged_records()}
    assert records["ann"]["name"] == "Ann Lee"
    assert "admin" in records["ann"]["roles"]
    assert records["bob"]["deleted"] is True
    assert records["acme/town-square"]["users"] == ["ann", "bob"]
    assert (records["acme/board"]["t"], records["acme/board"]["users"]) == ("p", ["ann"])
    assert records["dm:ann,bob"]["t"] == "d"
    assert records["post:10"]["rid"] == "dm:ann,bob"

    done = service.run()
    assert done.state is State.DONE
    assert (done.count.completed, done.count.error) == (8, 0)
    assert (target.count("user"), target.count("channel"), target.count("message")) == (2, 3, 3)
    assert sorted(target.members("acme/town-square")) == ["ann", "bob"]


@pytest.mark.parametrize(("lines", "message"), [
    ([VERSION, {"type": "user", "user": {"username": "ann"}}],
     "export.jsonl: line 2: a user needs a username and an email"),
    ([VERSION, user("ann"), "{not json"],
     ("export.jsonl: line 3: not JSON: Expecting property name enclosed in double quotes:"
      " line 1 column 2 (char 1)")),
    ([VERSION, user("ann"), {"type": "channel", "channel": {"team": "acme", "name": "x"}}],
     "export.jsonl: line 3: a channel line after a user line"),
    ([VERSION, {"type": "emoji", "emoji": {}}],
     "export.jsonl: line 2: not a line of the export (type 'emoji')"),
    ([{"type": "user", "user": {}}],
     'export.jsonl: line 1: expected {"type": "version", "version": 1}'),
    ([VERSION, user("ann"), {"type": "post", "post": {"user": "ann", "create_at": "today"}}],
     "export.jsonl: line 3: a post needs a user and create_at (epoch milliseconds)"),
])
def test_a_bad_line_fails_the_load_naming_the_line(setup, lines, message):
    service, _, path = setup
    path.write_text("".join(line + "\n" if isinstance(line, str) else export(line)
                            for line in lines))
    failed = service.load_file(path, "mattermost")
    assert failed.state is State.ERROR
    assert failed.failure.message == message
    assert list(service.staged_records()) == []


def test_a_line_over_the_limit_is_refused_before_it_is_parsed(setup):
    service, _, path = setup
    long_name = "a" * 200
    path.write_text(export(VERSION, user("ann"), user(long_name)))
    fits = len(export(user(long_name))) - 1  # the line without its line break
    assert service.load_file(path, "mattermost", max_line=fits).state is State.READY
    failed = service.load_file(path, "mattermost", max_line=fits - 1)
    assert failed.failure.message == f"export.jsonl: line 3: a line longer than {fits - 1} bytes"


def test_the_loader_registers_through_an_entry_point(tmp_path, monkeypatch):
    with installed_plugin(tmp_path, monkeypatch, distribution="acme-import", key="mattermost",
                          target="custom_loader:MattermostLoader"):
        assert available()["mattermost"].name == "Mattermost"
        target = UsersTableImporter(tmp_path / "s.db")
        service = ImportService(SQLiteStore(tmp_path / "s.db"), {"mattermost": target})
        path = tmp_path / "export.jsonl"
        path.write_text(custom_loader.SAMPLE)
        assert service.load_file(path, "mattermost").state is State.READY
        assert service.run().count.completed == 6
        target.close()
        service.store.close()


def test_the_script_loads_and_imports_its_sample():
    ran = subprocess.run([sys.executable, FOLDER / "custom_loader.py"],
                         capture_output=True, text=True, check=True)
    assert ran.stdout == "done: 2 users, 2 channels and 2 messages: 6 imported, 0 failed\n"
