"""`importstate load` and `importstate run --users/--channels`: file importers from the shell."""

import json
import zipfile

from test_cli import as_json, cli

from importstate import SQLiteStore, UsersTableImporter

EXPORT = {
    "users.csv": "ann,ann@example.com,Ann\nbob,bob@example.com,Bob\ncy,cy@example.com,Cy\n",
    "channels.csv": "general,ann,public,ann;bob\nsecret,bob,private,bob;cy\n",
    "general/1.csv": "ann,1700000000000,hello\nbob,1700000001000,hi\n",
    "secret/1.csv": "cy,1700000002000,psst\n",
    "directmessages/1.csv": "ann,bob,1700000003000,a word\n",
}


def _export(path, members=EXPORT):
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return path


def test_load_stages_a_csv_zip_and_says_what_to_run_next(tmp_path):
    db = tmp_path / "imports.db"
    done = cli("load", str(_export(tmp_path / "export.zip")), db=db, check_status=0)
    lines = done.stdout.splitlines()
    assert lines[0].endswith(
        "is ready: 3 users, 3 channels, 4 messages staged from export.zip (CSV)")
    assert lines[1] == ("the selection offers 3 users, 3 channels (one stands for every direct"
                        " channel) and 4 messages")
    assert lines[2:4] == ["  users: ann, bob, cy",
                          "  channels: general, secret, __directMessages__"]
    assert "`importstate run --users ID,... --channels ID,...`" in lines[4]
    assert "preparing messages" in done.stderr or "user selection" in done.stderr
    status = as_json(cli("status", "--json", db=db))
    assert status["state"] == "ready"
    assert status["operation"]["importerKey"] == "csv"

    ran = cli("run", "--users", "ann,bob", "--channels", "general", db=db, check_status=0)
    assert "done (5 imported, 0 failed, 5 total)" in ran.stdout
    importer = UsersTableImporter(db)
    assert [importer.count(kind) for kind in ("user", "channel", "message")] == [2, 1, 2]
    importer.close()


def test_load_reads_standard_input_and_prints_the_status_as_json(tmp_path):
    db = tmp_path / "imports.db"
    members = tmp_path / "members.csv"
    members.write_text("username,email,status\nann,ann@example.com,Admin\nbob,,Member\n")
    done = cli("load", "-", "--importer", "slack-users", "--json", db=db,
               stdin=members.read_text(), check_status=0)
    status = json.loads(done.stdout)
    assert status["state"] == "ready"
    assert status["operation"]["file"] == "stdin"
    assert status["operation"]["count"] == {"total": 1, "users": 1}


def test_a_bad_file_is_one_line_naming_member_and_line_and_fails_the_operation(tmp_path):
    db = tmp_path / "imports.db"
    bad = {**EXPORT, "users.csv": "ann,ann@example.com,Ann\nbob,bob@example.com\n"}
    done = cli("load", str(_export(tmp_path / "export.zip", bad)), db=db, check_status=1)
    (line,) = done.stderr.strip().splitlines()[-1:]
    assert line.startswith("importstate: users.csv: line 2: expected 3 columns, found 2"
                           " (operation ")
    assert line.endswith("failed and nothing was staged: fix the file and load it again)")
    store = SQLiteStore(db)
    with store.reading() as tx:
        operation = tx.current()
        assert tx.staged(operation.id, after=None, limit=10) == []
    store.close()
    assert operation.failure.message == "users.csv: line 2: expected 3 columns, found 2"
    assert cli("load", "x.zip", "--importer", "teams", db=db, check_status=2).returncode == 2
    missing = cli("load", str(tmp_path / "none.zip"), db=db, check_status=1)
    assert "none.zip: No such file or directory" in missing.stderr


def test_the_demo_writes_both_exports_and_loads_one(tmp_path):
    db = tmp_path / "demo.db"
    done = cli("demo", "--export", "csv", "--users", "40", "--channels", "4", "--messages", "300",
               db=db, check_status=0)
    assert "a csv export of" in done.stdout
    assert "a slack export of" in done.stdout
    assert "1. importstate load csv-export.zip --importer csv" in done.stdout
    assert "40 users, " in done.stdout
    assert f"300 messages in the tables of {db}" in done.stdout
    status = as_json(cli("status", "--json", db=db))
    assert (status["state"], status["operation"]["type"]) == ("done", "CSV")
