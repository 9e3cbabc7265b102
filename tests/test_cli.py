import importlib.metadata
import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest

import importstate.cli
from importstate import Accounts, ImportService, SQLiteStore, UsersTableImporter, diagrams
from importstate._setup import open_setup
from importstate._time import utc_now
from importstate.cli import _demo, _userfile

# Runs the command line with the built-in importer slowed down, so a test can
# interrupt an import that is still going.
SLOW_RUN = (
    "import sys, time\n"
    "from importstate import users_table\n"
    "batch = users_table.UsersTableImporter.import_batch\n"
    "def slow(self, users):\n"
    "    time.sleep(0.02)\n"
    "    return batch(self, users)\n"
    "users_table.UsersTableImporter.import_batch = slow\n"
    "from importstate.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


@pytest.fixture
def db(tmp_path):
    return tmp_path / "importstate.db"


def cli(*args, db=None, stdin=None, env=None, cwd=None, check_status=None):
    command = [sys.executable, "-m", "importstate", *args]
    if db is not None:
        command += ["--db", str(db)]
    done = subprocess.run(
        command, input=stdin, capture_output=True, text=True, timeout=120,
        env={**os.environ, "COLUMNS": "200", **(env or {})}, cwd=cwd, check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    if check_status is not None:
        assert done.returncode == check_status, done.stderr
    return done


def as_json(done):
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def status_in_process(db):
    store = SQLiteStore(db)
    try:
        return ImportService(store).status()
    finally:
        store.close()


def user(n, **changes):
    return {"username": f"u{n}", "emails": [f"u{n}@example.com"], "importIds": [f"id-{n}"],
            **changes}


def write_json(path, users):
    path.write_text(json.dumps(users, indent=2))
    return path


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def staged(db, users):
    cli("new", "--user", "admin", db=db, check_status=0)
    cli("add-users", "-", db=db, stdin=json.dumps(users), check_status=0)


def empty_database(db):
    SQLiteStore(db).close()
    return db


def test_status_of_an_empty_database_is_none(db):
    empty_database(db)
    assert as_json(cli("status", "--json", db=db)) == {"state": "none"}


def test_status_json_is_exactly_the_service_status(db):
    staged(db, [user(1), user(2)])
    printed = as_json(cli("status", "--json", db=db))
    assert printed == status_in_process(db)
    assert printed["state"] == "ready"
    assert printed["operation"]["count"] == {"total": 2, "users": 2}


def test_status_for_people_is_a_table(db):
    staged(db, [user(1)])
    done = cli("status", db=db, check_status=0)
    assert "ready" in done.stdout
    assert "importer_user_selection" in done.stdout


def test_new_records_the_given_user_or_the_login_name(db):
    op = as_json(cli("new", "--user", "rbAXPnMktTFbNpwtJ", "--json", db=db))
    assert (op["status"], op["valid"], op["user"], op["type"]) == (
        "importer_new", True, "rbAXPnMktTFbNpwtJ", "api",
    )
    again = as_json(cli("new", "--json", db=db, env={"LOGNAME": "carol", "USER": "carol"}))
    assert again["user"] == "carol"
    # The older operation was cleared by the new one.
    operations = as_json(cli("operations", "--json", db=db))
    assert [o["_id"] for o in operations] == [again["_id"], op["_id"]]
    assert [o["valid"] for o in operations] == [True, False]


def test_db_defaults_to_the_environment_then_the_working_directory(tmp_path):
    env_db = tmp_path / "from-env.db"
    cli("new", "--user", "a", env={"IMPORTSTATE_DB": str(env_db)}, check_status=0)
    assert env_db.exists()
    env = {k: v for k, v in os.environ.items() if k != "IMPORTSTATE_DB"}
    subprocess.run(
        [sys.executable, "-m", "importstate", "new", "--user", "a"],
        cwd=tmp_path, env=env, check=True, capture_output=True,
    )
    assert (tmp_path / "importstate.db").exists()


@pytest.mark.parametrize("form", ["array", "lines", "stdin"])
def test_add_users_reads_json_arrays_json_lines_and_stdin(db, tmp_path, form):
    users = [user(n) for n in range(3)]
    cli("new", "--user", "admin", db=db, check_status=0)
    if form == "array":
        done = cli("add-users", str(write_json(tmp_path / "u.json", users)), "--json", db=db)
    elif form == "lines":
        path = write_lines(tmp_path / "u.jsonl", ["", *map(json.dumps, users), "  "])
        done = cli("add-users", str(path), "--json", db=db)
    else:
        done = cli("add-users", "-", "--json", db=db, stdin=json.dumps(users))
    status = as_json(done)
    assert status["state"] == "ready"
    assert status["operation"]["count"]["total"] == 3


def test_add_users_with_an_empty_list_stages_nothing(db, tmp_path):
    cli("new", "--user", "admin", db=db, check_status=0)
    done = cli("add-users", str(write_json(tmp_path / "u.json", [])), db=db, check_status=0)
    assert "nothing staged" in done.stdout
    assert status_in_process(db)["state"] == "new"


def assert_nothing_staged(db):
    status = status_in_process(db)
    assert status["state"] == "new"
    assert "count" not in status["operation"]


def test_a_json_array_that_does_not_parse_names_file_and_line(db, tmp_path):
    cli("new", "--user", "admin", db=db, check_status=0)
    path = tmp_path / "users.json"
    path.write_text('[\n  {"emails": ["a@example.com"], "importIds": ["1"]},\n  {"emails": [}\n]\n')
    done = cli("add-users", str(path), db=db, check_status=1)
    assert done.stderr.startswith(f"importstate: {path}: line 3: ")
    assert done.stderr.count("\n") == 1
    assert_nothing_staged(db)


def test_a_bad_json_line_stages_nothing_even_after_good_lines(db, tmp_path):
    cli("new", "--user", "admin", db=db, check_status=0)
    good = [json.dumps(user(n)) for n in range(2)]
    path = write_lines(tmp_path / "users.jsonl", [*good, '{"emails": ["x@example.com"', good[0]])
    done = cli("add-users", str(path), db=db, check_status=1)
    assert done.stderr.startswith(f"importstate: {path}: line 3: ")
    assert done.stderr.count("\n") == 1
    assert_nothing_staged(db)


def test_stdin_errors_name_stdin(db):
    cli("new", "--user", "admin", db=db, check_status=0)
    done = cli("add-users", "-", db=db, stdin="{}\nnot json\n", check_status=1)
    assert done.stderr.startswith("importstate: <stdin>: line 2: ")


def test_a_file_that_is_not_utf8_is_one_line(db, tmp_path):
    cli("new", "--user", "admin", db=db, check_status=0)
    path = tmp_path / "users.jsonl"
    path.write_bytes(b'{"emails": ["a@example.com"], "importIds": ["1"]}\n\xff\xfe\n')
    done = cli("add-users", str(path), db=db, check_status=1)
    assert done.stderr == f"importstate: {path}: line 2: not UTF-8 text\n"


def test_a_missing_file_is_one_line(db, tmp_path):
    cli("new", "--user", "admin", db=db, check_status=0)
    done = cli("add-users", str(tmp_path / "nope.json"), db=db, check_status=1)
    assert done.stderr == f"importstate: {tmp_path / 'nope.json'}: No such file or directory\n"


@pytest.mark.parametrize(
    ("users", "line", "reason"),
    [
        ([user(1), {"emails": ["b@example.com"]}], 2, 'user is missing "importIds"'),
        ([user(1), {"importIds": ["2"]}], 2, 'user is missing "emails"'),
        ([user(1), user(2, emails="b@example.com")], 2,
         'user\'s "emails" must be a list of strings, got a string'),
        ([user(1), user(2, importIds=["", 3])], 2, 'user has no non-empty string in "importIds"'),
        ([user(1), "not a user"], 2, "expected a user object, got a string"),
        ([user(1, roles=["user", "owner"])], 1,
         'role "owner" is not one of admin, app, bot, guest, livechat-agent, user'),
        ([user(1), user(2, roles="admin")], 2,
         'user\'s "roles" must be a list of role names, got a string'),
    ],
)
def test_invalid_users_are_named_by_their_line_and_stage_nothing(db, tmp_path, users, line, reason):
    cli("new", "--user", "admin", db=db, check_status=0)
    path = write_lines(tmp_path / "users.jsonl", map(json.dumps, users))
    done = cli("add-users", str(path), db=db, check_status=1)
    assert done.stderr == f"importstate: {path}: line {line}: {reason}\n"
    assert_nothing_staged(db)


def test_an_invalid_user_of_a_json_array_is_named_by_the_line_it_starts_on(db, tmp_path):
    cli("new", "--user", "admin", db=db, check_status=0)
    path = write_json(tmp_path / "users.json", [user(1), user(2), {"emails": ["x@example.com"]}])
    line = next(n for n, text in enumerate(path.read_text().splitlines(), start=1)
                if text.strip() == '"x@example.com"') - 2
    done = cli("add-users", str(path), db=db, check_status=1)
    assert done.stderr == f'importstate: {path}: line {line}: user is missing "importIds"\n'


def test_add_users_without_an_operation_is_refused(db, tmp_path):
    done = cli("add-users", str(write_json(tmp_path / "u.json", [user(1)])), db=db,
               check_status=1)
    assert done.stderr == ("importstate: Import operation not initialized. There is no import"
                           " operation yet: run `importstate new` first.\n")


def test_run_imports_and_failures_lists_the_duplicates(db):
    users = [user(n) for n in range(120)]
    users += [user(500, username="U3"), user(501, emails=["U4@EXAMPLE.COM"])]
    staged(db, users)
    final = as_json(cli("run", "--json", db=db))
    assert final == status_in_process(db)
    assert final["state"] == "done"
    assert final["operation"]["count"] == {"total": 122, "users": 122, "completed": 120, "error": 2}
    failures = as_json(cli("failures", "--json", db=db))
    assert [f["data"]["importIds"] for f in failures] == [["id-500"], ["id-501"]]
    assert "username 'U3' is already taken" in failures[0]["errors"][0]["message"]
    assert "email 'U4@EXAMPLE.COM' is already taken" in failures[1]["errors"][0]["message"]
    table = cli("failures", db=db, check_status=0).stdout
    assert "id-500" in table
    assert "already taken" in table


def test_run_for_people_reports_the_outcome(db):
    staged(db, [user(1), user(2, username="U1")])
    done = cli("run", db=db, check_status=0)
    assert "done (1 imported, 1 failed, 2 total)" in done.stdout
    assert "importstate failures" in done.stdout


def test_run_without_an_operation_is_refused(db):
    done = cli("run", db=db, check_status=1)
    assert done.stderr == ("importstate: error-operation-not-found: there is no import operation"
                           " yet: run `importstate new` first\n")


def test_run_before_users_are_staged_is_refused(db):
    op = as_json(cli("new", "--user", "admin", "--json", db=db))
    done = cli("run", db=db, check_status=1)
    assert done.stderr == (f"importstate: error-invalid-operation-status: operation {op['_id']}"
                           " has no users yet: stage some with `importstate add-users FILE`\n")


def test_operations_prints_a_bare_array_newest_first(db):
    ids = [as_json(cli("new", "--user", f"u{n}", "--json", db=db))["_id"] for n in range(3)]
    operations = as_json(cli("operations", "--json", db=db))
    assert isinstance(operations, list)
    assert [o["_id"] for o in operations] == ids[::-1]
    assert [o["_id"] for o in as_json(cli("operations", "--limit", "1", "--json", db=db))] == [
        ids[-1],
    ]
    table = cli("operations", db=db, check_status=0).stdout
    assert all(i in table for i in ids)


def test_operations_on_an_empty_database(db):
    empty_database(db)
    assert as_json(cli("operations", "--json", db=db)) == []
    assert "no import operations" in cli("operations", db=db, check_status=0).stdout


def test_cancel_then_cancel_again(db):
    staged(db, [user(1)])
    op = as_json(cli("cancel", "--json", db=db))
    assert op["status"] == "importer_import_cancelled"
    assert status_in_process(db)["state"] == "canceled"
    done = cli("cancel", db=db, check_status=1)
    assert done.stderr == (
        "importstate: The current import operation is already finished. Operation"
        f" {op['_id']} has ended (canceled): `importstate new` starts another.\n")


def test_clear_invalidates_and_empties_staging(db):
    staged(db, [user(1)])
    status = as_json(cli("clear", "--json", db=db))
    assert status["state"] == "error"
    assert status["operation"]["valid"] is False
    assert as_json(cli("failures", "--json", db=db)) == []


def test_ctrl_c_during_run_cancels_at_the_next_batch(db):
    staged(db, [user(n) for n in range(2000)])
    running = subprocess.Popen(
        [sys.executable, "-c", SLOW_RUN, "run", "--db", str(db)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        count = status_in_process(db)["operation"].get("count", {})
        if count.get("completed", 0) > 0:
            break
        time.sleep(0.01)
    running.send_signal(signal.SIGINT)
    stdout, stderr = running.communicate(timeout=60)
    assert "Traceback" not in stderr
    assert running.returncode == 130
    assert "canceled" in stdout
    status = status_in_process(db)
    assert status["state"] == "canceled"
    count = status["operation"]["count"]
    assert 0 < count["completed"] < 2000
    # Counts are committed per batch of 50, the batch in hand included.
    assert count["completed"] % 50 == 0


def test_diagram_prints_what_the_library_draws(db, tmp_path):
    assert cli("diagram", db=db, check_status=0).stdout == diagrams.state_diagram()
    out = tmp_path / "steps.dot"
    cli("diagram", "--steps", "--format", "dot", "--output", str(out), db=db, check_status=0)
    assert out.read_text() == diagrams.steps_diagram(format="dot")
    events = cli("diagram", "--events", "--steps", db=db, check_status=0).stdout
    assert events == diagrams.steps_diagram(events=True)


def test_diagram_can_highlight_the_current_operation(db):
    staged(db, [user(1)])
    assert "Class ready s_active" in cli("diagram", "--current", db=db, check_status=0).stdout


def test_diagram_draws_the_path_an_operation_took(db, tmp_path):
    staged(db, [user(1)])
    cli("cancel", db=db, check_status=0)
    operation_id = as_json(cli("status", "--json", db=db))["operation"]["_id"]
    store = SQLiteStore(db)
    try:
        history = ImportService(store).history(operation_id)
    finally:
        store.close()
    assert [entry.event for entry in history] == ["create", "stage", "cancel"]
    text = cli("diagram", "--operation", operation_id, db=db, check_status=0).stdout
    assert text == diagrams.state_diagram(history=history)
    assert f"the path of operation {operation_id} on " in text
    time = r"\d\d#58;\d\d#58;\d\d\.\d{3}"  # a colon as Mermaid's entity code
    assert re.search(rf"^  none --> new: create<br>1\. {time}$", text, re.MULTILINE)
    assert re.search(rf"^  ready --> canceled: cancel<br>3\. {time} \(\+[^)]+\)$", text,
                     re.MULTILINE)
    assert "Class canceled s_active" in text
    out = tmp_path / "path.dot"
    cli("diagram", "--operation", operation_id, "--steps", "--format", "dot",
        "--output", str(out), db=db, check_status=0)
    assert out.read_text() == diagrams.steps_diagram(format="dot", history=history)
    drawn = as_json(cli("diagram", "--operation", operation_id, "--json", db=db))
    assert drawn["operation"] == operation_id
    assert drawn["diagram"] == text


def test_diagram_of_an_unknown_operation_says_where_to_look(db):
    staged(db, [user(1)])
    done = cli("diagram", "--operation", "nope", db=db, check_status=1)
    assert done.stderr == ("importstate: there is no operation nope:"
                           " `importstate operations` lists them\n")
    both = cli("diagram", "--operation", "nope", "--current", db=db, check_status=1)
    assert "give --current or --operation, not both" in both.stderr


def test_svg_without_graphviz_fails_with_install_advice(db, tmp_path):
    done = cli("diagram", "--format", "svg", db=db, env={"PATH": str(tmp_path)}, check_status=1)
    assert done.stderr.startswith("importstate: SVG needs Graphviz's `dot` program")
    assert "install Graphviz" in done.stderr
    assert done.stderr.count("\n") == 1


def test_demo_shows_the_lifecycle_on_a_temporary_database(tmp_path):
    done = cli("demo", "--users", "400", "--fail-rate", "0.1", "--channels", "0",
               "--messages", "0", cwd=tmp_path, check_status=0)
    for title in ("no operation yet", "a new operation", "400 users staged", "import.run",
                  "the final status document", "40 failed users"):
        assert title in done.stdout
    assert "done (360 imported, 40 failed, 400 total)" in done.stdout
    assert "already taken" in done.stdout
    assert list(tmp_path.iterdir()) == [], "the demo wrote outside its temporary database"


def test_demo_with_db_keeps_its_database(db):
    cli("demo", "--users", "100", "--fail-rate", "0", "--channels", "0", "--messages", "0",
        db=db, check_status=0)
    status = status_in_process(db)
    assert status["state"] == "done"
    assert status["operation"]["count"]["completed"] == 100


def test_demo_imports_channels_and_messages_and_their_authors_failures_cascade(tmp_path):
    done = cli("demo", "--users", "400", "--fail-rate", "0.1", "--channels", "10",
               "--messages", "1000", cwd=tmp_path, check_status=0)
    records = _demo.synthetic(400, 0.1, channels=10, messages=1000)
    rejected = {u["importIds"][0] for u in records.users if u["username"].isupper()
                or u["emails"][0].isupper()}
    assert len(rejected) == 40
    orphans = sum(m["u"]["_id"] in rejected for m in records.messages)
    assert "10 channels and 1,000 messages staged" in done.stdout
    assert "offers 400 users, 10 channels (one stands for every direct channel)" in done.stdout
    assert f"done ({1410 - 40 - orphans:,} imported, {40 + orphans} failed, 1,410 total)" in (
        done.stdout
    )
    assert f"and {orphans} failed messages, by users who failed, stay staged too" in done.stdout
    assert f"360 users, 10 channels, {1000 - orphans:,} messages in the tables" in done.stdout


def test_demo_refuses_a_bad_fail_rate(tmp_path):
    done = cli("demo", "--fail-rate", "1.5", cwd=tmp_path, check_status=1)
    assert done.stderr == "importstate: fail rate must be between 0 and 1, got 1.5\n"


def test_usage_errors_exit_2_without_a_traceback():
    done = cli("frobnicate")
    assert done.returncode == 2
    assert "Error: No such command 'frobnicate'." in done.stderr
    assert "Try 'importstate --help' for help." in done.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[{"a": 1}, {"b": 2}]', [{"a": 1}, {"b": 2}]),
        ('\n\n  [\n{"a": 1}\n]\n', [{"a": 1}]),
        ('{"a": 1}\n\n{"b": 2}', [{"a": 1}, {"b": 2}]),
        ("[1]\n", [1]),
        ("", []),
        ("   \n", []),
    ],
)
def test_user_files_are_a_json_array_or_json_lines(text, expected):
    assert _userfile.parse_users(text, "f") == expected


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('[{"a": 1}]\n[{"b": 2}]\n', 2),
        ('{"a": 1}\n{"a": 1} {"b": 2}\n', 2),
        ('{"a": 1}\n\n\n{"a": \n', 4),
        ("[\n1,\n2,\n]", 4),
    ],
)
def test_the_error_names_the_first_line_that_does_not_parse(text, line):
    with pytest.raises(_userfile.UserFileError) as error:
        _userfile.parse_users(text, "users.json")
    assert error.value.line == line
    assert str(error.value).startswith(f"users.json: line {line}: ")


def test_a_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "u.json"
    path.write_bytes(b'\xef\xbb\xbf[{"a": 1}]')
    with _userfile.open_users(str(path)) as reader:
        assert list(reader.chunks()) == [[{"a": 1}]]


def test_demo_json_prints_only_the_final_status(tmp_path):
    status = as_json(cli("demo", "--users", "120", "--fail-rate", "0.05", "--channels", "0",
                         "--messages", "0", "--json", cwd=tmp_path))
    assert status["state"] == "done"
    count = status["operation"]["count"]
    assert count == {"total": 120, "users": 120, "completed": 114, "error": 6}


def test_svg_through_the_command_line_runs_dot(db, tmp_path):
    fake = tmp_path / "dot"
    fake.write_text(f"#!{sys.executable}\nimport sys\nsys.stdin.read()\nprint('<svg/>')\n")
    fake.chmod(0o755)
    out = tmp_path / "states.svg"
    cli("diagram", "--format", "svg", "--output", str(out), db=db,
        env={"PATH": str(tmp_path)}, check_status=0)
    assert out.read_text() == "<svg/>\n"


def test_a_group_of_subcommands_has_its_help_line():
    top = cli("--help", check_status=0).stdout
    assert re.search(r"^  users +Manage the API users of `importstate serve`\.$", top, re.MULTILINE)
    group = cli("users", "--help", check_status=0).stdout
    assert "The accounts that may call the REST API, not the imported users." in group
    assert all(f"  {name} " in group for name in ("add", "list", "revoke"))


def test_a_db_that_is_not_sqlite_is_one_line(tmp_path):
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("these are not the tables you are looking for\n" * 100)
    done = cli("status", db=not_a_db, check_status=1)
    assert done.stderr == f"importstate: {not_a_db}: file is not a database\n"


def test_the_public_api_of_the_command_line():
    assert importstate.cli.__all__ == [
        "DEFAULT_DB", "INTERRUPTED", "TERMINATED", "CommandError", "Context", "Terminated", "cli",
        "main", "pass_context",
    ]


# -- Click's conventions: --version, global options anywhere, completion, NO_COLOR ---------


def test_version_is_the_installed_one():
    done = cli("--version", check_status=0)
    assert done.stdout == f"importstate, version {importstate.__version__}\n"
    assert importlib.metadata.version("importstate") == importstate.__version__


def test_global_options_go_before_or_after_the_subcommand(db):
    staged(db, [user(1)])
    after = as_json(cli("status", "--json", db=db))
    before = subprocess.run(
        [sys.executable, "-m", "importstate", "--db", str(db), "--json", "status"],
        capture_output=True, text=True, check=True, timeout=60,
    )
    mixed = subprocess.run(
        [sys.executable, "-m", "importstate", "--json", "status", "--db", str(db)],
        capture_output=True, text=True, check=True, timeout=60,
    )
    assert json.loads(before.stdout) == json.loads(mixed.stdout) == after
    in_group = subprocess.run(
        [sys.executable, "-m", "importstate", "--db", str(db), "users", "--json", "add", "ann"],
        capture_output=True, text=True, check=True, timeout=60,
    )
    assert set(json.loads(in_group.stdout)) == {"userId", "authToken"}


@pytest.mark.parametrize(("shell", "expected"), [
    ("bash", "complete -o nosort -F _importstate_completion importstate"),
    ("zsh", "#compdef importstate"),
    ("fish", "complete --no-files --command importstate"),
])
def test_shell_completion_scripts(shell, expected):
    done = cli(env={"_IMPORTSTATE_COMPLETE": f"{shell}_source"}, check_status=0)
    assert expected in done.stdout


def test_shell_completion_completes_subcommands_and_options():
    env = {"_IMPORTSTATE_COMPLETE": "bash_complete", "COMP_WORDS": "importstate st",
           "COMP_CWORD": "1"}
    assert cli(env=env, check_status=0).stdout.split() == ["plain,status"]
    env = {**env, "COMP_WORDS": "importstate failures --ex", "COMP_CWORD": "2"}
    assert cli(env=env, check_status=0).stdout.split() == ["plain,--export"]


def on_terminal(*args, answers=(), env=None):
    """Run the command line on a pseudo-terminal, typing each answer at a prompt ending in ": ".

    Returns its exit status and everything it wrote to the terminal.
    """
    pid, fd = pty.fork()
    if pid == 0:  # the child: the terminal is its stdin, stdout, stderr and controlling tty
        os.execve(sys.executable, [sys.executable, "-m", "importstate", *args],  # noqa: S606 - no shell wanted
                  {**os.environ, "TERM": "xterm-256color", **(env or {})})
    output, pending = b"", list(answers)
    try:
        while select.select([fd], [], [], 60)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if pending and output.endswith(b": "):
                os.write(fd, pending.pop(0).encode() + b"\r")
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def test_no_color_turns_colour_off_on_a_terminal(db):
    staged(db, [user(1)])
    status, coloured = on_terminal("status", "--db", str(db), env={"NO_COLOR": ""})
    assert status == 0
    assert "\x1b[34m" in coloured  # ready is blue
    status, plain = on_terminal("status", "--db", str(db), env={"NO_COLOR": "1"})
    assert status == 0
    assert "ready" in plain
    assert not re.search("\x1b\\[[0-9;]*3[0-9]m", plain)  # no foreground colour at all


# -- one line on stderr and exit 1; usage errors exit 2; no traceback anywhere ------------


def every_command(group=importstate.cli.cli, path=()):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from every_command(command, (*path, name))
        else:
            yield (*path, name), command


def bad_invocations(missing_db):
    """(arguments, expected exit status) for every command: bad arguments of every kind."""
    for path, command in every_command():
        arguments = [p for p in command.params if isinstance(p, click.Argument)]
        given = ["x"] * len(arguments)
        yield [*path, *given, "--no-such-option"], 2
        yield [*path, *given, "and", "more", "arguments"], 2
        if any(argument.required for argument in arguments):
            yield list(path), 2
        for param in command.params:
            if not isinstance(param, click.Option) or param.name in {"db_option", "help"}:
                continue
            flag = param.opts[0]
            if isinstance(param.type, click.types.IntParamType | click.types.FloatParamType):
                yield [*path, *given, flag, "not-a-number"], 2
                yield [*path, *given, flag, "-99999"], 1
            if isinstance(param.type, click.Choice):
                yield [*path, *given, flag, "no-such-choice"], 2
    for path in (["status"], ["operations"], ["history"], ["failures"], ["diagram", "--current"],
                 ["users", "list"]):
        yield [*path, "--db", str(missing_db)], 1


def run_all(invocations, cwd):
    """Run each invocation (at most 8 at a time); (arguments, expected, status, stderr)."""
    results, queue, running = [], list(invocations), []
    env = {**os.environ, "COLUMNS": "200"}
    while queue or running:
        while queue and len(running) < 8:
            args, expected = queue.pop()
            process = subprocess.Popen(
                [sys.executable, "-m", "importstate", *args], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=cwd, env=env,
            )
            running.append((args, expected, process))
        args, expected, process = running.pop(0)
        _, stderr = process.communicate(timeout=120)
        results.append((args, expected, process.returncode, stderr))
    return results


def test_every_command_with_bad_arguments_fails_without_a_traceback(tmp_path):
    missing = tmp_path / "mistyped.db"
    results = run_all(bad_invocations(missing), cwd=tmp_path)
    assert len(results) > 60
    for args, expected, status, stderr in results:
        assert "Traceback" not in stderr, (args, stderr)
        assert status == expected, (args, stderr)
        if expected == 1:
            assert stderr.startswith("importstate: "), (args, stderr)
            assert stderr.count("\n") == 1, (args, stderr)
        else:
            assert "Try 'importstate" in stderr, (args, stderr)
    assert not missing.exists()
    assert list(tmp_path.iterdir()) == [], "a refused command created a file"


@pytest.mark.parametrize(("args", "message"), [
    (("users", "add", ""), "an API user needs a non-empty name"),
    (("users", "add", "   "), "an API user needs a non-empty name, not only spaces"),
    (("users", "add", "ann\x1b[2J"), ("an API user's name must not hold control characters"
                                      " (got 'ann\\x1b[2J')")),
    (("serve", "--port", "99999"), "--port must be between 1 and 65535, got 99999"),
    (("serve", "--port", "0"), "--port must be between 1 and 65535, got 0"),
    (("run", "--workers", "0"), "--workers must be at least 1, got 0"),
    (("failures", "--limit", "-1"), "--limit must be at least 0, got -1"),
])
def test_bad_values_are_one_line(db, args, message):
    done = cli(*args, db=db, check_status=1)
    assert done.stderr == f"importstate: {message}\n"


def test_a_port_in_use_is_one_line_and_nothing_else(db):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = cli("serve", "--port", str(port), db=db, check_status=1)
    assert done.stdout == ""
    assert done.stderr == (f"importstate: cannot listen on 127.0.0.1:{port}: address already in"
                           " use: is another server running there? choose another --port\n")
    assert not db.exists()


@pytest.mark.parametrize("command", ["status", "operations", "failures", "users list"])
def test_read_only_commands_refuse_a_database_that_does_not_exist(tmp_path, command):
    mistyped = tmp_path / "imports.bd"
    done = cli(*command.split(), db=mistyped, check_status=1)
    assert done.stderr == (f"importstate: {mistyped}: no such database (check --db or"
                           " $IMPORTSTATE_DB; `importstate new` creates one)\n")
    assert not mistyped.exists()


def test_diagram_current_refuses_a_database_that_does_not_exist(tmp_path):
    cli("diagram", db=tmp_path / "nope.db", check_status=0)  # without --current: no database
    done = cli("diagram", "--current", db=tmp_path / "nope.db", check_status=1)
    assert "no such database" in done.stderr
    assert list(tmp_path.iterdir()) == []


def wait_for_a_committed_batch(db, running):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert running.poll() is None, running.communicate()
        count = status_in_process(db)["operation"].get("count", {})
        if count.get("completed", 0) > 0:
            return
        time.sleep(0.01)
    raise AssertionError("no batch was committed")


def test_sigterm_during_run_holds_it_at_a_batch_boundary_for_resume(db):
    staged(db, [user(n) for n in range(2000)])
    running = subprocess.Popen(
        [sys.executable, "-c", SLOW_RUN, "run", "--db", str(db)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    wait_for_a_committed_batch(db, running)
    running.send_signal(signal.SIGTERM)
    stdout, stderr = running.communicate(timeout=60)
    assert "Traceback" not in stderr
    assert running.returncode == 143
    assert stderr.endswith(
        "importstate: terminated: the import stopped at a batch boundary and stays importing at"
        " its checkpoint; `importstate resume` continues it\n")
    assert "importing (" in stdout
    status = status_in_process(db)
    assert status["state"] == "importing"
    count = status["operation"]["count"]
    assert 0 < count["completed"] < 2000
    assert count["completed"] % 50 == 0

    refused = cli("run", db=db, check_status=1)
    assert refused.stderr == (
        f"importstate: error-invalid-operation-status: operation {status['operation']['_id']} is"
        " importing; if its run stopped (a crash, SIGTERM), `importstate resume` continues it"
        " from its checkpoint\n")
    resumed = as_json(cli("resume", "--json", db=db))
    assert resumed["state"] == "done"
    assert resumed["operation"]["count"]["completed"] == 2000
    importer = UsersTableImporter(db)
    try:
        assert importer.count() == 2000
    finally:
        importer.close()


def test_sigterm_while_staging_stages_nothing(db, tmp_path):
    cli("new", "--user", "admin", db=db, check_status=0)
    path = tmp_path / "users.jsonl"
    # A reader that never ends: the command is stopped while staging.
    os.mkfifo(path)
    running = subprocess.Popen(
        [sys.executable, "-m", "importstate", "add-users", str(path), "--db", str(db)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    with path.open("w") as fifo:
        fifo.write("".join(json.dumps(user(n)) + "\n" for n in range(3000)))
        fifo.flush()
        time.sleep(1)
        running.send_signal(signal.SIGTERM)
        _, stderr = running.communicate(timeout=60)
    assert running.returncode == 143
    assert stderr == "importstate: terminated\n"
    assert_nothing_staged(db)


# -- API users' passwords: asked on a terminal, or read from stdin -------------------------


def can_log_in(db, name, password):
    accounts = Accounts(db)
    try:
        return accounts.login(name, password) is not None
    finally:
        accounts.close()


def test_password_stdin_sets_the_password(db):
    done = cli("users", "add", "ann", "--password-stdin", "--json", db=db, stdin="s3cret pass\n",
               check_status=0)
    assert set(json.loads(done.stdout)) == {"userId", "authToken"}
    assert done.stderr == ""
    assert can_log_in(db, "ann", "s3cret pass")
    assert not can_log_in(db, "ann", "s3cret pass\n")


@pytest.mark.parametrize("stdin", ["", "\n", "\r\n"])
def test_an_empty_password_is_refused(db, stdin):
    done = cli("users", "add", "ann", "--password-stdin", db=db, stdin=stdin, check_status=1)
    assert done.stderr == ("importstate: an empty password cannot be used to log in; leave the"
                           " password out for a user that only uses its token\n")
    assert "ann" not in cli("users", "list", db=db, check_status=0).stdout


def test_password_without_a_terminal_points_at_password_stdin(db):
    done = cli("users", "add", "ann", "--password", db=db, stdin="s3cret\n", check_status=1)
    assert done.stderr == ("importstate: --password asks on a terminal, and standard input is not"
                           " one; pipe the password to --password-stdin instead\n")


def test_a_password_on_the_command_line_still_works_with_a_warning(db):
    done = cli("users", "add", "ann", "--password", "s3cret", db=db, check_status=0)
    assert "visible to other users (ps)" in done.stderr
    assert can_log_in(db, "ann", "s3cret")


def test_password_alone_asks_twice_on_a_terminal_without_echo(db):
    status, screen = on_terminal(
        "users", "add", "ann", "--password", "--db", str(db),
        answers=["first-try", "mistyped", "s3cret", "s3cret"],
    )
    assert status == 0, screen
    assert screen.count("Password: ") == 2
    assert "Repeat for confirmation: " in screen
    assert "do not match" in screen
    assert "s3cret" not in screen
    assert "first-try" not in screen
    assert "X-Auth-Token:" in screen
    assert can_log_in(db, "ann", "s3cret")


# -- output: piped is never folded or cut; thousands separators; plurals -------------------


def test_piped_tables_are_neither_folded_nor_cut(db):
    long_user = "an-operator-with-a-rather-long-login-name"
    ids = [as_json(cli("new", "--user", long_user, "--json", db=db))["_id"] for _ in range(2)]
    staged(db, [user(1), user(2, username="U1", emails=["a-long-address@example.com"])])
    cli("run", db=db, check_status=0)
    narrow = {"COLUMNS": "40"}
    table = cli("operations", db=db, env=narrow, check_status=0).stdout
    rows = [line for line in table.splitlines() if any(i in line for i in ids)]
    assert len(rows) == 2
    assert all(long_user in row and "invalid" not in row for row in rows)
    assert "…" not in table
    failures = cli("failures", db=db, env=narrow, check_status=0).stdout
    assert "username 'U1' is already taken by user 'id-1'" in failures
    assert "a-long-address@example.com" in failures
    assert "…" not in failures


def test_numbers_have_thousands_separators_and_plurals_are_right(db, tmp_path):
    cli("new", "--user", "admin", db=db, check_status=0)
    one = cli("add-users", str(write_json(tmp_path / "one.json", [user(0)])), db=db,
              check_status=0)
    assert re.fullmatch(r"staged 1 user; operation \w+ is ready with 1 user in total\n", one.stdout)
    path = write_lines(tmp_path / "many.jsonl", [json.dumps(user(n)) for n in range(1, 1500)])
    many = cli("add-users", str(path), db=db, check_status=0)
    assert re.fullmatch(r"staged 1,499 users; operation \w+ is ready with 1,500 users in total\n",
                        many.stdout)
    assert "count        total 1,500, users 1,500" in cli("status", db=db, check_status=0).stdout
    run = cli("run", db=db, env={"COLUMNS": "120"}, check_status=0)
    assert "1,500/1,500" in run.stderr
    assert "done (1,500 imported, 0 failed, 1,500 total)" in run.stdout


def test_progress_is_one_short_line_on_a_narrow_console(db):
    staged(db, [user(n) for n in range(120)])
    run = cli("run", db=db, env={"COLUMNS": "40"}, check_status=0)
    lines = run.stderr.splitlines()
    assert lines
    assert all(len(line) <= 40 for line in lines), lines
    assert lines[-1].startswith("importing 120/120, 0 failed, ")


def test_the_progress_display_on_a_terminal_fits_its_width(db):
    staged(db, [user(n) for n in range(120)])
    status, screen = on_terminal("run", "--db", str(db), env={"COLUMNS": "50", "NO_COLOR": "1"})
    assert status == 0, screen
    shown = [re.sub("\x1b\\[[0-9;?]*[A-Za-z]", "", line) for line in screen.splitlines()]
    assert any(line.startswith("importing 120/120") for line in shown), shown
    assert all(len(line) <= 50 for line in shown if line.startswith("importing")), shown


# -- failures --limit and --export, and retry ----------------------------------------------


def with_failures(db, failed=3):
    users = [user(n, password=f"pw-{n}") for n in range(10)]
    users += [user(100 + n, username=f"U{n}", password="hunter2")  # noqa: S106 - made up
              for n in range(failed)]
    staged(db, users)
    cli("run", db=db, check_status=0)


def test_failures_limit(db):
    with_failures(db)
    shown = cli("failures", "--limit", "1", db=db, check_status=0).stdout
    assert "id-100" in shown
    assert "id-101" not in shown
    assert "... and 2 more failed users (--limit N shows more, --export FILE writes them all)" \
        in shown
    assert [f["data"]["importIds"] for f in as_json(cli("failures", "--json", "--limit", "2",
                                                        db=db))] == [["id-100"], ["id-101"]]
    assert as_json(cli("failures", "--json", "--limit", "0", db=db)) == []
    assert len(as_json(cli("failures", "--json", db=db))) == 3


def test_failures_export_writes_json_lines_with_masked_passwords(db, tmp_path):
    with_failures(db)
    out = tmp_path / "failed.jsonl"
    done = cli("failures", "--export", str(out), db=db, check_status=0)
    assert done.stdout == ""
    assert done.stderr == f"wrote 3 failed users to {out} (passwords masked)\n"
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["data"]["importIds"] for r in records] == [["id-100"], ["id-101"], ["id-102"]]
    assert all(r["data"]["password"] == "[password]" for r in records)  # noqa: S105 - the mask
    assert all("already taken" in r["errors"][0]["message"] for r in records)
    assert "hunter2" not in out.read_text()
    assert out.stat().st_mode & 0o777 == 0o600  # users' data: its owner's only
    one = cli("failures", "--export", "-", "--limit", "1", db=db, check_status=0).stdout
    assert [json.loads(line)["data"]["importIds"] for line in one.splitlines()] == [["id-100"]]


def test_retry_starts_a_new_operation_with_the_failed_users(db):
    with_failures(db)
    old = status_in_process(db)["operation"]
    done = cli("retry", "--user", "admin", db=db, check_status=0)
    new = status_in_process(db)
    assert new["state"] == "ready"
    assert new["operation"]["_id"] != old["_id"]
    assert new["operation"]["count"] == {"total": 3, "users": 3}
    assert done.stdout == (f"operation {new['operation']['_id']} is ready with the 3 failed users"
                           f" of operation {old['_id']}: `importstate run` imports them\n")
    setup = open_setup(db)
    try:
        retried = [r["data"] for r in setup.service.staged_users()]
    finally:
        setup.close()
    assert [u["importIds"] for u in retried] == [["id-100"], ["id-101"], ["id-102"]]
    assert {u["password"] for u in retried} == {"hunter2"}  # the real ones, not the mask
    assert all("errors" not in u for u in retried)
    # They fail again until the duplicates are fixed: the same users, the same reason.
    final = as_json(cli("run", "--json", db=db))
    assert final["operation"]["count"]["error"] == 3


@pytest.mark.parametrize(("setup", "message"), [
    ("nothing", "there is no import operation to retry: run `importstate new` first"),
    ("ready", "has not run yet (state ready): `importstate run` runs it"),
    ("clean", "has no failed users to retry"),
])
def test_retry_refusals_are_one_line(db, setup, message):
    empty_database(db)
    if setup == "ready":
        staged(db, [user(1)])
    elif setup == "clean":
        staged(db, [user(1)])
        cli("run", db=db, check_status=0)
    before = status_in_process(db)
    done = cli("retry", db=db, check_status=1)
    assert done.stderr.startswith("importstate: ")
    assert done.stderr.endswith(f"{message}\n")
    assert status_in_process(db) == before


# -- the README's command table is the commands' own help ----------------------------------


def usage(command):
    pieces = []
    for param in command.params:
        if isinstance(param, click.Argument):
            pieces.append(param.metavar or param.name.upper())
        elif param.opts[0] not in {"--db", "--dsn", "--json", "-h"}:
            flag = param.opts[0]
            if param.is_flag:
                pieces.append(f"[{flag}]")
            elif isinstance(param.type, click.Choice):
                choices = "\\|".join(param.type.choices)  # a | inside a Markdown table cell
                pieces.append(f"[{flag} {choices}]")
            else:
                pieces.append(f"[{flag} {param.metavar or param.name.upper()}]")
    return " ".join(pieces)


def command_table():
    rows = ["| command | what it does |", "|---|---|"]
    for path, command in every_command():
        summary = " ".join(command.help.split())
        name = " ".join((*path, usage(command))).strip()
        rows.append(f"| `{name}` | {summary} |")
    return "\n".join(rows) + "\n"


def test_the_readme_command_table_is_the_commands_help():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    table = command_table()
    assert table in readme, "the README's command table should read:\n" + table


def finished_operations(db, count, *, at=None):
    """``count`` operations of ``db`` that ran to done (the last one current)."""
    store = SQLiteStore(db)
    clock = (lambda: at) if at is not None else utc_now
    service = ImportService(store, {"api": lambda _user: None}, clock=clock)
    for n in range(count):
        service.new_operation("admin")
        service.add_users([{"emails": [f"u{n}@example.com"], "importIds": [f"id-{n}"]}])
        service.run()
    store.close()


def test_prune_keeps_the_latest_operations_and_the_current_one(tmp_path):
    db = tmp_path / "prune.db"
    finished_operations(db, 4)
    done = cli("prune", "--keep", "2", "--json", db=db, check_status=0)
    assert json.loads(done.stdout) == {"pruned": 2}
    left = json.loads(cli("operations", "--json", db=db, check_status=0).stdout)
    assert len(left) == 2
    said = cli("prune", "--keep", "0", db=db, check_status=0).stdout
    assert said == "pruned 1 finished operation; kept the 0 latest and the current one\n"
    assert len(json.loads(cli("operations", "--json", db=db, check_status=0).stdout)) == 1
    assert cli("prune", "--older-than", "soon", db=db, check_status=2).returncode == 2


# -- history ---------------------------------------------------------------------------------

LOGIN = {"LOGNAME": "ann", "USER": "ann", "LNAME": "ann", "USERNAME": "ann"}


def test_history_lists_each_change_with_the_os_user_as_actor(tmp_path):
    db = tmp_path / "history.db"
    users = tmp_path / "users.json"
    users.write_text(json.dumps([user(1), user(2)]))
    cli("new", db=db, env=LOGIN, check_status=0)
    cli("add-users", str(users), db=db, env=LOGIN, check_status=0)
    cli("run", db=db, env=LOGIN, check_status=0)
    entries = as_json(cli("history", "--json", db=db))
    assert [(e["from"], e["to"], e["event"], e["actor"]) for e in entries] == [
        (None, "importer_new", "create", "cli:ann"),
        ("importer_new", "importer_user_selection", "stage", "cli:ann"),
        ("importer_user_selection", "importer_importing_started", "start", "cli:ann"),
        ("importer_importing_started", "importer_importing_users", "advance", "run"),
        ("importer_importing_users", "importer_finishing", "advance", "run"),
        ("importer_finishing", "importer_done", "finish", "run"),
    ]
    table = cli("history", db=db, check_status=0).stdout
    lines = [line.split() for line in table.splitlines() if line.strip()[:1].isdigit()]
    assert [line[0] for line in lines] == ["1", "2", "3", "4", "5", "6"]
    assert lines[0][2:6] == ["—", "new", "create", "cli:ann"]
    assert lines[0][-1] == "—"  # the creation has no step before it
    # The time spent in the step before, written as the diagram writes it.
    assert all(line[-1] in {"ms", "s"} for line in lines[1:])
    assert f"history of operation {entries[0]['operationId']}" in table


def test_history_of_an_older_operation_names_the_newer_one_that_replaced_it(tmp_path):
    db = tmp_path / "history.db"
    first = as_json(cli("new", "--json", db=db))["_id"]
    second = as_json(cli("new", "--json", db=db))["_id"]
    entries = as_json(cli("history", first, "--json", db=db))
    assert [(e["event"], e["actor"]) for e in entries][-1] == ("invalidate", f"operation:{second}")
    done = cli("history", "no-such-id", db=db, check_status=1)
    assert done.stderr == (
        "importstate: no operation 'no-such-id' (`importstate operations` lists the latest)\n"
    )
