import json
import os
import signal
import subprocess
import sys
import time

import pytest

import importstate.cli
from importstate import ImportService, SQLiteStore, diagrams
from importstate.cli import _context, _userfile

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


def test_status_of_an_empty_database_is_none(db):
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
    ("users", "message"),
    [
        ([user(1), {"emails": ["b@example.com"]}], "Users are missing required data."),
        ([user(1), "not a user"], "Users are missing required data."),
        ([user(1, roles=["user", "owner"])], "One or more of the users have been assigned invalid roles."),  # noqa: E501
    ],
)
def test_invalid_users_give_the_spec_message_and_stage_nothing(db, tmp_path, users, message):
    cli("new", "--user", "admin", db=db, check_status=0)
    done = cli("add-users", str(write_json(tmp_path / "u.json", users)), db=db, check_status=1)
    assert done.stderr == f"importstate: {message}\n"
    assert_nothing_staged(db)


def test_add_users_without_an_operation_is_refused(db, tmp_path):
    done = cli("add-users", str(write_json(tmp_path / "u.json", [user(1)])), db=db,
               check_status=1)
    assert done.stderr == "importstate: Import operation not initialized.\n"


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
    assert done.stderr == "importstate: error-operation-not-found\n"


def test_run_before_users_are_staged_is_refused(db):
    cli("new", "--user", "admin", db=db, check_status=0)
    done = cli("run", db=db, check_status=1)
    assert done.stderr == "importstate: error-invalid-operation-status\n"


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
    assert as_json(cli("operations", "--json", db=db)) == []
    assert "no import operations" in cli("operations", db=db, check_status=0).stdout


def test_cancel_then_cancel_again(db):
    staged(db, [user(1)])
    op = as_json(cli("cancel", "--json", db=db))
    assert op["status"] == "importer_import_cancelled"
    assert status_in_process(db)["state"] == "canceled"
    done = cli("cancel", db=db, check_status=1)
    assert done.stderr == "importstate: The current import operation is already finished.\n"


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


def test_diagram_can_highlight_the_current_operation(db):
    staged(db, [user(1)])
    assert "Class ready s_active" in cli("diagram", "--current", db=db, check_status=0).stdout


def test_svg_without_graphviz_fails_with_install_advice(db, tmp_path):
    done = cli("diagram", "--format", "svg", db=db, env={"PATH": str(tmp_path)}, check_status=1)
    assert done.stderr.startswith("importstate: SVG needs Graphviz's `dot` program")
    assert "install Graphviz" in done.stderr
    assert done.stderr.count("\n") == 1


def test_demo_shows_the_lifecycle_on_a_temporary_database(tmp_path):
    done = cli("demo", "--users", "400", "--fail-rate", "0.1", cwd=tmp_path, check_status=0)
    for title in ("no operation yet", "a new operation", "400 users staged", "import.run",
                  "the final status document", "40 failed users"):
        assert title in done.stdout
    assert "done (360 imported, 40 failed, 400 total)" in done.stdout
    assert "already taken" in done.stdout
    assert list(tmp_path.iterdir()) == [], "the demo wrote outside its temporary database"


def test_demo_with_db_keeps_its_database(db):
    cli("demo", "--users", "100", "--fail-rate", "0", db=db, check_status=0)
    status = status_in_process(db)
    assert status["state"] == "done"
    assert status["operation"]["count"]["completed"] == 100


def test_demo_refuses_a_bad_fail_rate(tmp_path):
    done = cli("demo", "--fail-rate", "1.5", cwd=tmp_path, check_status=1)
    assert done.stderr == "importstate: fail rate must be between 0 and 1, got 1.5\n"


def test_usage_errors_exit_2_without_a_traceback():
    done = cli("frobnicate")
    assert done.returncode == 2
    assert "invalid choice" in done.stderr


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
    assert _userfile.read_users(str(path)) == [{"a": 1}]


def test_demo_json_prints_only_the_final_status(tmp_path):
    status = as_json(cli("demo", "--users", "120", "--fail-rate", "0.05", "--json", cwd=tmp_path))
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


def test_a_group_of_subcommands_has_its_help_line(monkeypatch):
    monkeypatch.setattr(_context, "GROUPS", {})
    _context.group("users", "manage the API users")
    assert "manage the API users" in _context.build_parser().format_help()


def test_a_db_that_is_not_sqlite_is_one_line(tmp_path):
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("these are not the tables you are looking for\n" * 100)
    done = cli("status", db=not_a_db, check_status=1)
    assert done.stderr == f"importstate: {not_a_db}: file is not a database\n"


def test_the_public_api_of_the_command_line():
    assert importstate.cli.__all__ == [
        "COMMANDS", "DEFAULT_DB", "GROUPS", "INTERRUPTED", "Command", "CommandError", "Context",
        "Handler", "Option", "build_parser", "command", "group", "main", "option",
    ]
