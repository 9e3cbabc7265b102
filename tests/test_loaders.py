"""File importers: CSV, Slack and Slack member lists, round trips, bad files, plug-ins."""

import csv
import io
import json
import re
import sys
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from loader_plugins import installed_plugin

from importstate import ImportService, MemoryStore, SQLiteStore, UsersTableImporter
from importstate.errors import FileFormatError, ImporterNotDefined, SelectionNotReady
from importstate.loaders import BUILTIN_LOADERS, Loader, available, samples
from importstate.records import DataType
from importstate.steps import ProgressStep, State
from importstate.testing import strategies as ist

KEYS = ("csv", "slack", "slack-users")


def _zip(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content if isinstance(content, bytes) else content.encode())
    return path


def _service(tmp_path, key="csv"):
    db = tmp_path / "imports.db"
    importer = UsersTableImporter(db)
    return ImportService(SQLiteStore(db), {key: importer}), importer


def _data(service, data_type):
    return [record["data"] for record in service.staged_records(data_type)]


# -- round trips ---------------------------------------------------------------------------

CSV_EXPORT = {
    "users.csv": 'ann,ann@example.com,Ann Smith\nbob,bob@example.com,"Bob, Jr."\n'
                 "cy,cy@example.com,Cy\n",
    "channels.csv": "general,ann,public,ann;bob;cy\nsecret,bob,private,bob;cy\n",
    "general/2023.csv": 'ann,1700000000000,hello\nbob,1700000001000,"hi, ""ann""\nhow are you"\n',
    "secret/1.csv": "cy,1700000002000,psst\n",
    "directmessages/all.csv": "bob,ann,1700000003000,a word\nann,bob,1700000004000,yes?\n"
                              "cy,ann,1700000005000,hey\n",
    "__MACOSX/._users.csv": b"\x00\x05\x16\x07",
    "general/": "",
}


def test_a_csv_zip_stages_users_channels_direct_channels_and_messages(tmp_path):
    service, _ = _service(tmp_path)
    steps = []
    operation = service.load_file(_zip(tmp_path / "export.zip", CSV_EXPORT), "csv",
                                  progress=lambda op: steps.append(op.status))
    assert operation.state is State.READY, operation.failure
    assert (operation.type, operation.importer_key) == ("CSV", "csv")
    assert (operation.file, operation.content_type) == ("export.zip", "application/zip")
    assert operation.count.to_wire() == {"total": 13, "users": 3, "channels": 4, "messages": 6}
    assert list(dict.fromkeys(steps)) == [
        ProgressStep.UPLOADING, ProgressStep.FILE_LOADED, ProgressStep.PREPARING_STARTED,
        ProgressStep.PREPARING_USERS, ProgressStep.PREPARING_CHANNELS,
        ProgressStep.PREPARING_MESSAGES, ProgressStep.USER_SELECTION,
    ]
    users = _data(service, "user")
    assert [u["importIds"] for u in users] == [["ann"], ["bob"], ["cy"]]
    assert users[1] == {"importIds": ["bob"], "emails": ["bob@example.com"], "username": "bob",
                        "type": "user", "name": "Bob, Jr.", "roles": ["user"]}
    channels = {c["importIds"][0]: c for c in _data(service, "channel")}
    assert channels["general"] == {"importIds": ["general"], "name": "general", "t": "c",
                                   "users": ["ann", "bob", "cy"], "u": {"_id": "ann"}}
    assert channels["secret"]["t"] == "p"
    assert channels["ann/bob"] == {"importIds": ["ann/bob"], "name": "ann/bob", "t": "d",
                                   "users": ["ann", "bob"]}
    assert channels["ann/cy"]["users"] == ["ann", "cy"]
    messages = {m["importIds"][0]: m for m in _data(service, "message")}
    assert messages["general/2023.csv:2"] == {
        "importIds": ["general/2023.csv:2"], "rid": "general", "u": {"_id": "bob"},
        "msg": 'hi, "ann"\nhow are you', "ts": 1700000001000,
    }
    assert messages["directmessages/all.csv:3"]["rid"] == "ann/cy"
    assert sorted(m["rid"] for m in messages.values()).count("ann/bob") == 2
    offer = service.selection()
    assert offer.name == "CSV"
    assert [c.channel_id for c in offer.channels] == ["general", "secret", "__directMessages__"]


SLACK_EXPORT = {
    "users.json": json.dumps([
        {"id": "U1", "name": "ann", "real_name": "Ann", "is_admin": True, "tz_offset": -18000,
         "profile": {"email": "ann@example.com", "real_name": "Ann Smith"}},
        {"id": "U2", "name": "bob", "deleted": True, "profile": {"email": "bob@example.com"}},
        {"id": "B1", "name": "beeper", "is_bot": True, "profile": {}},
    ], indent=4),
    "channels.json": json.dumps([{"id": "C1", "name": "general", "creator": "U1",
                                  "members": ["U1", "U2"], "is_archived": False,
                                  "topic": {"value": "all"}, "purpose": {"value": "talk"},
                                  "created": 1500000000}], indent=4),
    "groups.json": json.dumps([{"id": "G1", "name": "secret", "members": ["U1"],
                                "is_archived": True}]),
    "mpims.json": "[]",
    "dms.json": json.dumps([{"id": "D1", "members": ["U1", "U2"], "created": 1500000000}]),
    "integration_logs.json": "[]",
    "general/2017-08-22.json": json.dumps([
        {"type": "message", "user": "U1", "text": "hello", "ts": "1503435956.000247",
         "thread_ts": "1503435956.000247",
         "reactions": [{"name": "wave", "users": ["U2"], "count": 1}]},
        {"type": "message", "user": "U2", "text": "hi", "ts": "1503435957.100000",
         "thread_ts": "1503435956.000247"},
        {"type": "message", "subtype": "channel_purpose", "ts": "1503435958.000000"},
    ], indent=4),
    "general/2017-08-23.json": json.dumps([
        {"type": "message", "bot_id": "B1", "text": "beep", "ts": "1503522000"},
    ]),
    "secret/2017-08-22.json": json.dumps([{"user": "U1", "text": "x", "ts": "1503435959.5",
                                           "files": [{"name": "a.png",
                                                      "url_private": "https://f/a.png"}]}]),
    "D1/2017-08-22.json": json.dumps([{"user": "U2", "text": "psst", "ts": "1503435960.0"}]),
}


def test_a_slack_export_stages_users_conversations_threads_and_messages(tmp_path):
    service, _ = _service(tmp_path, "slack")
    operation = service.load_file(_zip(tmp_path / "slack.zip", SLACK_EXPORT), "slack")
    assert operation.state is State.READY, operation.failure
    assert operation.type == "Slack"
    # The bot has no email: a staged user needs one. The purpose change has no author.
    assert operation.count.to_wire() == {"total": 10, "users": 2, "channels": 3, "messages": 5}
    users = _data(service, "user")
    assert users[0] == {"importIds": ["U1"], "emails": ["ann@example.com"], "username": "ann",
                        "name": "Ann Smith", "type": "user", "roles": ["admin", "user"],
                        "utcOffset": -5.0}
    assert users[1]["deleted"] is True
    channels = {c["importIds"][0]: c for c in _data(service, "channel")}
    assert channels["C1"] == {"importIds": ["C1"], "name": "general", "t": "c",
                              "users": ["U1", "U2"], "archived": False, "u": {"_id": "U1"},
                              "topic": "all", "description": "talk", "ts": 1500000000000}
    assert (channels["G1"]["t"], channels["G1"]["archived"]) == ("p", True)
    assert (channels["D1"]["t"], channels["D1"]["name"]) == ("d", "D1")
    messages = {m["importIds"][0]: m for m in _data(service, "message")}
    assert messages["C1/1503435956.000247"] == {
        "importIds": ["C1/1503435956.000247"], "rid": "C1", "u": {"_id": "U1"},
        "msg": "hello", "ts": 1503435956000, "reactions": [{"name": "wave", "users": ["U2"]}],
    }
    assert messages["C1/1503435957.100000"]["tmid"] == "C1/1503435956.000247"
    assert messages["C1/1503435957.100000"]["ts"] == 1503435957100
    assert messages["C1/1503522000"]["u"] == {"_id": "B1"}
    assert messages["G1/1503435959.5"]["attachments"] == [
        {"title": "a.png", "url": "https://f/a.png"}]
    # The first file is the one the target's pending downloads fetch.
    assert messages["G1/1503435959.5"]["_importFile"] == {
        "downloadUrl": "https://f/a.png", "name": "a.png"}
    assert messages["D1/1503435960.0"]["rid"] == "D1"


def test_a_slack_message_s_file_becomes_a_pending_download_of_the_target(tmp_path):
    service, target = _service(tmp_path, "slack")
    service.load_file(_zip(tmp_path / "slack.zip", SLACK_EXPORT), "slack")
    done = service.run()
    assert done.state is State.DONE, done.failure
    pending = target.pending_downloads("files")
    assert [(p.import_id, p.url, p.name) for p in pending] == [
        ("G1/1503435959.5", "https://f/a.png", "a.png")]


def test_a_slack_member_list_stages_its_users_by_email(tmp_path):
    path = tmp_path / "members.csv"
    path.write_bytes(
        b"\xef\xbb\xbfusername,email,status,billing-active,has-2fa,has-sso,userid,fullname,"
        b"displayname\n"
        b"ann,ann@example.com,Primary Owner,1,0,0,U1,Ann Smith,annie\n"
        b"bot,bot@example.com,Bot,0,0,0,U2,,robot\n"
        b"ghost,,Member,0,0,0,U3,Ghost,\n"
        b"old,old@example.com,Deactivated\n",
    )
    service, _ = _service(tmp_path, "slack-users")
    operation = service.load_file(path, "slack-users")
    assert operation.state is State.READY, operation.failure
    assert operation.content_type == "text/csv"
    assert _data(service, "user") == [
        {"importIds": ["ann@example.com"], "emails": ["ann@example.com"], "username": "ann",
         "name": "Ann Smith", "type": "user", "roles": ["admin", "user"]},
        {"importIds": ["bot@example.com"], "emails": ["bot@example.com"], "username": "bot",
         "name": "robot", "type": "bot", "roles": ["bot", "user"]},
        {"importIds": ["old@example.com"], "emails": ["old@example.com"], "username": "old",
         "name": "old", "type": "user", "deleted": True, "roles": ["user"]},
    ]


@pytest.mark.parametrize("key", ["csv", "slack"])
def test_a_sample_export_of_thousands_of_messages_runs_to_done(tmp_path, key):
    write = samples.write_csv_export if key == "csv" else samples.write_slack_export
    export = write(tmp_path / "export.zip", users=120, channels=12, messages=4000)
    service, importer = _service(tmp_path, key)
    operation = service.load_file(export.path, key)
    assert operation.count.to_wire() == {
        "total": export.records, "users": export.users, "channels": export.channels,
        "messages": export.messages,
    }
    kinds = {record["dataType"] for record in service.staged_records()}
    assert kinds == {"user", "channel", "message"}
    user_ids = [u["importIds"] for u in _data(service, "user")]
    expected = (f"user{n}" if key == "csv" else f"U{n:08d}" for n in range(120))
    assert user_ids == [[import_id] for import_id in expected]
    channels = _data(service, "channel")
    assert {c["t"] for c in channels} == {"c", "p", "d"}
    channel_ids = {c["importIds"][0] for c in channels}
    messages = _data(service, "message")
    assert len({m["importIds"][0] for m in messages}) == 4000
    assert {m["rid"] for m in messages} <= channel_ids
    assert {m["u"]["_id"] for m in messages} <= {i[0] for i in user_ids}
    if key == "slack":  # every fifth message of a conversation answers the one before it
        replies = [m for m in messages if "tmid" in m]
        assert 800 - len(channels) <= len(replies) <= 800
        by_id = {m["importIds"][0]: m for m in messages}
        assert all(by_id[m["tmid"]]["rid"] == m["rid"] for m in replies)
    offer = service.selection()
    assert len(offer.users) == export.users
    assert offer.message_count == export.messages
    final = service.run()
    assert final.state is State.DONE
    assert final.count.get("completed") == export.records
    assert final.count.get("error") == 0
    assert importer.count("user") == export.users
    assert importer.count("channel") == export.channels
    assert importer.count("message") == export.messages
    first = importer.get(user_ids[0][0])
    assert (first.username, first.email) == ("user0", "user0@example.com")
    assert list(service.staged_records()) == []


def test_another_reader_sees_nothing_staged_until_the_whole_file_is(tmp_path):
    export = samples.write_csv_export(tmp_path / "export.zip", users=50, channels=3,
                                      messages=3000)
    service, _ = _service(tmp_path)
    seen = []

    def look(operation):
        if operation.status is ProgressStep.PREPARING_MESSAGES and not seen:
            other = ImportService(SQLiteStore(tmp_path / "imports.db"), {"csv": print})
            current = other.current_operation()
            staged = list(other.staged_records())
            try:
                waiting = other.selection()
            except SelectionNotReady as exc:
                waiting = exc.step
            seen.append((current.status, waiting, len(staged), operation.count.total))
            other.store.close()

    operation = service.load_file(export.path, "csv", progress=look)
    assert seen[0][:3] == (ProgressStep.PREPARING_STARTED, "importer_preparing_started", 0)
    assert 0 < seen[0][3] < export.records  # this load had staged part of the file by then
    assert operation.count.get("total") == export.records


def test_a_selection_from_a_loaded_file_narrows_the_run(tmp_path):
    service, importer = _service(tmp_path)
    service.load_file(_zip(tmp_path / "export.zip", CSV_EXPORT), "csv")
    final = service.run(selection={"channels": {"list": ["general"]}})
    assert final.state is State.DONE
    assert importer.count("channel") == 1
    assert importer.count("message") == 2  # general's only


def test_a_stream_that_cannot_seek_is_loaded_too(tmp_path):
    raw = _zip(tmp_path / "export.zip", CSV_EXPORT).read_bytes()

    class Pipe(io.RawIOBase):
        def __init__(self):
            self.data = io.BytesIO(raw)

        def readable(self):
            return True

        def readinto(self, buffer):
            return self.data.readinto(buffer)

    service, _ = _service(tmp_path)
    operation = service.load_file(io.BufferedReader(Pipe()), "csv", file_name="upload.zip")
    assert operation.state is State.READY
    assert (operation.file, operation.count.get("total")) == ("upload.zip", 13)


def test_loading_a_file_aborts_the_operation_before_it(tmp_path):
    service, _ = _service(tmp_path)
    old = service.new_operation("u1")
    service.add_users([{"emails": ["x@example.com"], "importIds": ["x"]}])
    operation = service.load_file(_zip(tmp_path / "export.zip", CSV_EXPORT), "csv")
    assert operation.id != old.id
    (before,) = [op for op in service.latest_operations() if op.id == old.id]
    assert not before.valid
    assert [u["importIds"] for u in _data(service, "user")] == [["ann"], ["bob"], ["cy"]]


# -- bad files -----------------------------------------------------------------------------

BAD_FILES = {
    "columns": ({"users.csv": "ann,ann@example.com,Ann\nbob,bob@example.com\n"}, {},
                "users.csv: line 2: expected 3 columns, found 2"),
    "empty email": ({"users.csv": "ann,ann@example.com,Ann\n\nbob, ,Bob\n"}, {},
                    "users.csv: line 3: the email (column 2) is empty"),
    "privacy": ({"channels.csv": "general,ann,open,ann\n"}, {},
                "channels.csv: line 1: expected private or public in column 3, found 'open'"),
    "time": ({"general/1.csv": "ann,1700000000000,a\nann,yesterday,b\n"}, {},
             ("general/1.csv: line 2: expected a time in epoch milliseconds in column 2,"
             " found 'yesterday'")),
    "quote": ({"users.csv": 'ann,ann@example.com,Ann\nbob,"bob"@example.com,Bob\n'}, {},
              "users.csv: line 2: not CSV: ',' expected after '\"'"),
    "unclosed quote": ({"general/1.csv": 'ann,1700000000000,"never\nclosed\n'}, {},
                       "general/1.csv: line 1: not CSV: unexpected end of data"),
    "utf-8": ({"users.csv": b"ann,ann@example.com,Ann\nbob,bob@example.com,B\xffb\n"}, {},
              "users.csv: line 2: not UTF-8 text (byte 22 of the line)"),
    "long line": ({"users.csv": "ann,ann@example.com,Ann\nbob,bob@example.com," + "B" * 200},
                  {"max_line": 100}, "users.csv: line 2: a line longer than 100 bytes (the limit)"),
    "dotdot": ({"users.csv": "ann,a@b,A\n", "general/../../etc/x.csv": "x"}, {},
               "general/../../etc/x.csv: a member name with '..' (refused: zip slip)"),
    "absolute": ({"/etc/passwd": "root:x:0:0"}, {},
                 "/etc/passwd: an absolute member name (refused: zip slip)"),
    "drive": ({"C:/evil.csv": "x"}, {}, "C:/evil.csv: an absolute member name (refused: zip slip)"),
    "size": ({"users.csv": "ann,ann@example.com,Ann\n" * 100}, {"max_unpacked_size": 1000},
             ("export.zip: unpacks to 2.3 KiB, over the limit of 1,000 bytes"
             " (refused: a zip bomb)")),
    "layout": ({"users.csv": "ann,a@b,A\n", "notes.txt": "hello"}, {},
               ("notes.txt: not part of a CSV import (expected users.csv, channels.csv,"
               " <channel>/<file>.csv or directmessages/<file>.csv)")),
    "deep": ({"a/b/c.csv": "x"}, {},
             ("a/b/c.csv: not part of a CSV import (expected users.csv, channels.csv,"
             " <channel>/<file>.csv or directmessages/<file>.csv)")),
    "empty archive": ({}, {}, "export.zip: the archive is empty"),
    "only folders": ({"general/": "", "__MACOSX/._x": "x"}, {},
                     "export.zip: the archive is empty"),
    "nothing in it": ({"users.csv": "\n\n"}, {},
                      "export.zip: holds no users, channels or messages"),
    "direct": ({"directmessages/1.csv": "ann,1700000000000,hi\n"}, {},
               "directmessages/1.csv: line 1: expected 4 columns, found 3"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_csv_zip_fails_the_operation_naming_member_and_line(tmp_path, case):
    members, limits, expected = BAD_FILES[case]
    service, _ = _service(tmp_path)
    operation = service.load_file(_zip(tmp_path / "export.zip", members), "csv", **limits)
    assert operation.state is State.ERROR
    assert operation.status is ProgressStep.IMPORT_FAILED
    assert operation.failure is not None
    assert operation.failure.message == expected
    assert service.current_operation() == operation
    assert operation.count.to_wire() == {}
    assert list(service.staged_records()) == []


def test_a_member_that_unpacks_to_over_the_ratio_is_refused_as_a_bomb(tmp_path):
    path = _zip(tmp_path / "export.zip", {"users.csv": "ann,ann@example.com,Ann\n",
                                          "general/1.csv": b"\n" * 2**21})
    info = zipfile.ZipFile(path).getinfo("general/1.csv")
    service, _ = _service(tmp_path)
    operation = service.load_file(path, "csv")
    assert operation.failure.message == (
        f"general/1.csv: unpacks to {info.file_size / info.compress_size:,.0f} times its"
        " compressed size, over the limit of 100 (refused: a zip bomb)")
    assert service.load_file(path, "csv", max_ratio=2000).state is State.READY


BAD_SLACK = {
    "json": ({"users.json": '[\n  {"id": "U1",\n  "name": }\n]'},
             "users.json: line 3: Expecting value (column 11)"),
    "not an array": ({"users.json": '{"id": "U1"}'}, "users.json: line 1: expected a JSON array"),
    "not an object": ({"users.json": '[\n"U1"\n]'}, ("users.json: line 2: expected an object,"
                      " found str")),
    "no id": ({"channels.json": '[{"name": "general"}]'},
              'channels.json: line 1: expected a non-empty string in "id"'),
    "ts": ({"channels.json": '[{"id": "C1", "name": "general"}]',
            "general/2020-01-01.json": '[\n{"user": "U1", "ts": "soon"}]'},
           ('general/2020-01-01.json: line 2: expected "ts" as seconds with a fraction'
           " (\"1503435956.000247\"), found 'soon'")),
    "folder": ({"channels.json": '[{"id": "C1", "name": "general"}]',
                "random/2020-01-01.json": "[]"},
               ("random/2020-01-01.json: no conversation 'random' in channels.json, groups.json,"
               " mpims.json, dms.json")),
    "layout": ({"users.json": "[]", "general/notes.txt": "x"},
               ("general/notes.txt: not part of a Slack export (expected users.json,"
               " channels.json, groups.json, mpims.json, dms.json or"
               " <conversation>/<YYYY-MM-DD>.json)")),
    "not slack": ({"other.json": "[]"}, ("slack.zip: not a Slack export (none of users.json,"
                  " channels.json, groups.json, mpims.json, dms.json)")),
    "utf-8": ({"users.json": b'[\n{"id": "U1", "name": "\xc3("}\n]'},
              "users.json: line 2: not UTF-8 text"),
    "message": ({"channels.json": '[{"id": "C1", "name": "general"}]',
                 "general/2020-01-01.json": '[{"user": "U1", "ts": "1.0", "text": 5}]'},
                None),
}


@pytest.mark.parametrize("case", sorted(BAD_SLACK))
def test_a_bad_slack_export_fails_the_operation_naming_member_and_line(tmp_path, case):
    members, expected = BAD_SLACK[case]
    service, _ = _service(tmp_path, "slack")
    operation = service.load_file(_zip(tmp_path / "slack.zip", members), "slack")
    if expected is None:  # a message whose text is not a string is staged with an empty one
        assert operation.state is State.READY
        assert _data(service, "message")[0]["msg"] == ""
        return
    assert operation.state is State.ERROR
    assert operation.failure.message == expected
    assert list(service.staged_records()) == []


def test_a_slack_element_over_the_line_limit_is_refused(tmp_path):
    users = json.dumps([{"id": "U1", "name": "x" * 300, "profile": {"email": "a@b"}}])
    service, _ = _service(tmp_path, "slack")
    operation = service.load_file(_zip(tmp_path / "slack.zip", {"users.json": users}), "slack",
                                  max_line=100)
    assert operation.failure.message == (
        "users.json: line 1: an element longer than 100 characters (the limit)")


def test_a_file_that_is_not_a_zip_is_refused(tmp_path):
    path = tmp_path / "users.csv"
    path.write_text("ann,ann@example.com,Ann\n")
    service, _ = _service(tmp_path)
    operation = service.load_file(path, "csv")
    assert operation.failure.message == (
        "users.csv: not a zip archive (File is not a zip file)")


def test_a_member_list_without_enough_columns_is_refused(tmp_path):
    path = tmp_path / "members.csv"
    path.write_text("username,email,status\nann,ann@example.com,Member\nbob,bob@example.com\n")
    service, _ = _service(tmp_path, "slack-users")
    operation = service.load_file(path, "slack-users")
    assert operation.failure.message == "members.csv: line 3: expected at least 3 columns, found 2"
    assert list(service.staged_records()) == []


def test_a_bad_record_in_a_later_chunk_rolls_back_every_chunk(tmp_path):
    rows = "".join(f"user{n},user{n}@example.com,U\n" for n in range(2500))
    members = {"users.csv": rows + "late,,Late\n"}
    service, _ = _service(tmp_path)
    operation = service.load_file(_zip(tmp_path / "export.zip", members), "csv")
    assert operation.failure.message == "users.csv: line 2501: the email (column 2) is empty"
    assert list(service.staged_records()) == []


def test_ctrl_c_while_loading_cancels_with_nothing_staged(tmp_path):
    export = samples.write_csv_export(tmp_path / "export.zip", users=50, channels=3,
                                      messages=3000)
    service, _ = _service(tmp_path)

    def interrupt(operation):
        if operation.status is ProgressStep.PREPARING_MESSAGES:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        service.load_file(export.path, "csv", progress=interrupt)
    assert service.current_operation().state is State.CANCELED
    assert list(service.staged_records()) == []


def test_an_unknown_importer_or_a_missing_file_changes_nothing(tmp_path):
    service, _ = _service(tmp_path)
    with pytest.raises(ImporterNotDefined):
        service.load_file(tmp_path / "x.zip", "teams")
    with pytest.raises(ImporterNotDefined):  # no importer registered to run it
        service.load_file(tmp_path / "x.zip", "slack")
    with pytest.raises(FileNotFoundError):
        service.load_file(tmp_path / "x.zip", "csv")
    with pytest.raises(ValueError, match="max_ratio must be positive"):
        service.load_file(tmp_path / "x.zip", "csv", max_ratio=0)
    assert service.current_operation() is None


def test_file_format_errors_name_member_and_line():
    error = FileFormatError("users.csv", 12, "expected 3 columns, found 2")
    assert str(error) == "users.csv: line 12: expected 3 columns, found 2"
    assert (error.member, error.line, error.reason) == ("users.csv", 12,
                                                        "expected 3 columns, found 2")
    assert str(FileFormatError("x.zip", None, "the archive is empty")) == (
        "x.zip: the archive is empty")


# -- the registry --------------------------------------------------------------------------


def test_the_built_in_loaders_have_the_spec_keys_and_names():
    assert {key: loader.name for key, loader in BUILTIN_LOADERS.items()} == {
        "csv": "CSV", "slack": "Slack", "slack-users": "Slack_Users"}
    assert all(isinstance(loader, Loader) for loader in BUILTIN_LOADERS.values())
    service = ImportService(MemoryStore(), {key: lambda _: None for key in KEYS})
    assert {service.names[key] for key in KEYS} == {"CSV", "Slack", "Slack_Users"}


def _readme_plugin():
    """The loader of another package that the README shows."""
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    pattern = r"```python\n(from importstate.records import DataType\n\nclass TeamsLoader.*?)```"
    return re.search(pattern, readme, re.DOTALL).group(1)


PLUGIN = _readme_plugin()


def test_a_loader_of_another_package_registers_through_an_entry_point(tmp_path, monkeypatch):
    (tmp_path / "acme_teams.py").write_text(PLUGIN)
    with installed_plugin(tmp_path, monkeypatch, distribution="acme-teams", key="teams",
                          target="acme_teams:TeamsLoader"):
        assert available()["teams"].name == "Teams"
        service = ImportService(MemoryStore(), {"teams": lambda _: None})
        path = tmp_path / "people.txt"
        path.write_text("ann@example.com\n\nbob@example.com\n")
        operation = service.load_file(path, "teams")
        assert (operation.state, operation.type, operation.count.get("users")) == (
            State.READY, "Teams", 2)
        assert service.selection().name == "Teams"
        assert service.progress()["name"] == "Teams"
    assert "acme_teams" not in sys.modules


def test_a_loader_given_to_the_service_is_used_without_an_entry_point():
    namespace = {}
    exec(PLUGIN, namespace)  # noqa: S102 - the README's example
    loader = namespace["TeamsLoader"]()
    service = ImportService(MemoryStore(), {"teams": lambda _: None}, loaders={"teams": loader})
    operation = service.load_file(io.BytesIO(b"a@example.com\n@\n"), "teams")
    assert operation.state is State.READY
    assert _data(service, "user")[1]["importIds"] == ["@"]


class _RefusedAtLine1501:
    key, name, content_type = "refused", "Refused", "text/plain"

    def load(self, _file, name, sink, _limits):
        sink.stage(DataType.USER, name, (
            (n, {"importIds": [str(n)], "emails": [] if n == 1501 else [f"u{n}@example.com"]})
            for n in range(1, 2001)
        ))


def test_a_record_the_staging_refuses_is_named_by_the_line_its_loader_gave():
    service = ImportService(MemoryStore(), {"refused": lambda _: None},
                            loaders={"refused": _RefusedAtLine1501()})
    operation = service.load_file(io.BytesIO(b""), "refused", file_name="people.txt")
    assert operation.failure.message == "people.txt: line 1501: Users are missing required data."
    assert list(service.staged_records()) == []


# -- properties ----------------------------------------------------------------------------


def _can_name_a_folder(name):
    """Whether ``<name>/messages.csv`` is a channel's messages in a CSV zip (Behaviour: files)."""
    return not (
        {"/", "\\"} & set(name) or name in {".", ".."} or name.startswith((".", "__MACOSX"))
        or name.lower() == "directmessages" or (len(name) > 1 and name[1] == ":")
    )


def _csv_text(rows):
    out = io.StringIO()
    csv.writer(out).writerows(rows)  # "\r\n": a field with a lone "\r" is quoted too
    return out.getvalue()


@given(
    users=st.lists(st.tuples(ist.csv_fields(), ist.csv_fields(), ist.csv_fields(blank=True)),
                   min_size=1, max_size=8),
    texts=st.lists(ist.csv_fields(blank=True), max_size=8),
    channel=ist.csv_fields().filter(_can_name_a_folder),
)
def test_names_and_texts_with_commas_quotes_newlines_and_unicode_survive(users, texts, channel):
    messages = [(users[n % len(users)][0], 1_700_000_000_000 + n, text)
                for n, text in enumerate(texts)]
    members = {"users.csv": _csv_text(users), "channels.csv": _csv_text(
        [(channel, users[0][0], "public", ";".join(u[0] for u in users if ";" not in u[0]))])}
    if messages:
        members[f"{channel}/messages.csv"] = _csv_text(messages)
    archive = io.BytesIO()
    _zip(archive, members)
    service = ImportService(MemoryStore(), {"csv": lambda _: None})
    operation = service.load_file(io.BytesIO(archive.getvalue()), "csv")
    assert operation.state is State.READY, operation.failure
    staged = _data(service, "user")
    assert [(u["username"], u["emails"][0], u.get("name", "")) for u in staged] == users
    assert [u["importIds"] for u in staged] == [[u[0]] for u in users]
    (staged_channel,) = _data(service, "channel")
    assert staged_channel["name"] == channel
    assert [(m["u"]["_id"], m["ts"], m["msg"]) for m in _data(service, "message")] == messages
    assert {m["rid"] for m in _data(service, "message")} <= {channel}


def test_a_damaged_member_is_refused_naming_it(tmp_path):
    path = _zip(tmp_path / "export.zip", {"users.csv": "ann,ann@example.com,Ann\n" * 50})
    raw = bytearray(path.read_bytes())
    info = zipfile.ZipFile(path).getinfo("users.csv")
    start = info.header_offset + 30 + len(info.filename)  # past the local header
    raw[start + 5] ^= 0xFF
    path.write_bytes(bytes(raw))
    service, _ = _service(tmp_path)
    operation = service.load_file(path, "csv")
    assert operation.failure.message.startswith("users.csv: damaged in the archive (")
    assert list(service.staged_records()) == []
