"""``importstate add-users`` stages its file as it reads it: lines named, memory flat."""

import io
import json
import os
import random
import subprocess
import sys

import pytest

from importstate import ImportService, SQLiteStore, _json_array
from importstate.cli import _userfile

#: The size of the generated files whose staging is measured.
BIG = 200 * 1024 * 1024
#: The most the peak resident memory of add-users may grow by, staging BIG.
MAX_GROWTH = 100 * 1024 * 1024


def user(n, **changes):
    return {"username": f"u{n}", "emails": [f"u{n}@example.com"], "importIds": [f"id-{n}"],
            **changes}


def importstate(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "importstate", *args], input=stdin,
                          capture_output=True, text=True, timeout=300, check=False)


def status(db):
    store = SQLiteStore(db)
    try:
        return ImportService(store).status()
    finally:
        store.close()


@pytest.fixture
def db(tmp_path):
    db = tmp_path / "importstate.db"
    assert importstate("new", "--user", "admin", "--db", str(db)).returncode == 0
    return db


def write_big(path, *, array):
    """About BIG bytes of users, written with a plain loop; how many users."""
    bio = "x" * 700  # users of about 800 bytes, as with a profile text
    count = size = 0
    with path.open("w") as out:
        if array:
            out.write("[\n")
        while size < BIG:
            line = (f'{{"username": "user{count}", "emails": ["user{count}@example.com"],'
                    f' "importIds": ["id-{count}"], "bio": "{bio}"}}')
            piece = (f",\n{line}" if count else line) if array else line + "\n"
            out.write(piece)
            size += len(piece)
            count += 1
        if array:
            out.write("\n]\n")
    return count


# The kernel's peak resident memory of `python -m importstate ARGS...`, from wait4. The command
# is started by this small launcher, not by pytest: a child forked from a large process counts
# that process's memory in its own peak (Linux records it when the child execs).
MEASURE = """
import os, subprocess, sys
with open(os.devnull, "wb") as null:
    child = subprocess.Popen([sys.executable, "-m", "importstate", *sys.argv[1:]], stdout=null)
    _, status, usage = os.wait4(child.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024)  # Linux reports KiB
"""


def peak_rss(*args):
    """Run the command line; its exit status and its peak resident memory in bytes."""
    done = subprocess.run([sys.executable, "-c", MEASURE, *args], capture_output=True,
                          text=True, timeout=300, check=True)
    assert "Traceback" not in done.stderr, done.stderr
    code, peak = map(int, done.stdout.split())
    return code, peak


@pytest.mark.skipif(not hasattr(os, "wait4"), reason="needs wait4 for the child's own peak")
@pytest.mark.parametrize("form", ["lines", "array"])
def test_staging_a_200_mb_file_keeps_memory_flat(db, tmp_path, form):
    small, big = tmp_path / f"small.{form}", tmp_path / f"big.{form}"
    small.write_text(json.dumps(user(0)) + "\n")
    users = write_big(big, array=form == "array")
    assert big.stat().st_size >= BIG
    baseline_db = tmp_path / "baseline.db"
    assert importstate("new", "--db", str(baseline_db)).returncode == 0
    code, baseline = peak_rss("add-users", str(small), "--db", str(baseline_db))
    assert code == 0
    code, peak = peak_rss("add-users", str(big), "--db", str(db))
    assert code == 0
    growth = peak - baseline
    assert growth <= MAX_GROWTH, (
        f"add-users of a {big.stat().st_size / 2**20:,.0f} MiB {form} file: peak RSS"
        f" {peak / 2**20:,.1f} MiB, {growth / 2**20:,.1f} MiB over staging one user")
    assert status(db)["operation"]["count"] == {"total": users, "users": users}


def test_a_bad_user_far_into_a_file_is_named_by_its_line_and_stages_nothing(db, tmp_path):
    lines = [json.dumps(user(n)) for n in range(5000)]
    lines[4320] = json.dumps({"username": "nomail", "importIds": ["x"]})
    path = tmp_path / "users.jsonl"
    path.write_text("\n".join(lines) + "\n")
    done = importstate("add-users", str(path), "--db", str(db))
    assert done.returncode == 1
    assert done.stderr == f'importstate: {path}: line 4321: user is missing "emails"\n'
    assert status(db)["state"] == "new"


def test_a_bad_role_far_into_a_json_array_is_named_by_its_line(db, tmp_path):
    users = [user(n) for n in range(3000)]
    users[2500] = user(2500, roles=["user", "root"])
    path = tmp_path / "users.json"
    path.write_text("[\n" + ",\n".join(json.dumps(u) for u in users) + "\n]\n")
    done = importstate("add-users", str(path), "--db", str(db))
    assert done.returncode == 1
    assert done.stderr == (f'importstate: {path}: line 2502: role "root" is not one of admin, app,'
                           " bot, guest, livechat-agent, user\n")
    assert status(db)["state"] == "new"


@pytest.mark.parametrize("text", [
    json.dumps({"users": [user(1)]}),
    json.dumps({"users": [user(1), user(2)]}, indent=2),
])
def test_the_rest_body_shape_is_named(db, text):
    done = importstate("add-users", "-", "--db", str(db), stdin=text)
    assert done.returncode == 1
    assert done.stderr == ("importstate: <stdin>: line 1: expected a JSON array of users or JSON"
                           ' Lines; got an object with "users" — pass the list itself\n')


def test_a_pretty_printed_user_is_not_json_lines(db):
    done = importstate("add-users", "-", "--db", str(db), stdin=json.dumps(user(1), indent=2))
    assert done.returncode == 1
    assert done.stderr == (
        "importstate: <stdin>: line 1: expected a JSON array of users or JSON Lines (one user"
        " object per line); got one JSON object over lines 1-9: put each user on a line of its"
        " own, or the users in an array\n")


def test_chunks_are_bounded_and_lines_are_remembered():
    text = "\n".join(json.dumps(user(n)) for n in range(2500)) + "\n"
    reader = _userfile.UserReader(io.BytesIO(text.encode()), "f")
    sizes = []
    for chunk in reader.chunks():
        sizes.append(len(chunk))
        assert reader.line_of(sum(sizes) - 1) == sum(sizes)
    assert sizes == [1000, 1000, 500]
    assert reader.count == 2500
    assert reader.line_of(0) is None  # not in the chunk in hand


@pytest.mark.parametrize("block", [1, 7, 64, 4096])
def test_arrays_decode_the_same_whatever_the_block_size(monkeypatch, block):
    monkeypatch.setattr(_json_array, "BLOCK", block)
    rng = random.Random(block)  # noqa: S311 - test data, not secrets
    values = [
        {"n": n, "text": "é" * rng.randint(0, 40), "big": 10 ** rng.randint(0, 30),
         "f": rng.random(), "t": True, "z": None, "list": [1, "two", [3]]}
        for n in range(150)
    ]
    for text in (json.dumps(values), json.dumps(values, indent=3)):
        assert _userfile.parse_users(text, "f") == values
    broken = json.dumps(values, indent=1).replace('"n": 140,', '"n": 140,,')
    with pytest.raises(_userfile.UserFileError) as raised:
        _userfile.parse_users(broken, "f")
    assert raised.value.line == json.dumps(values, indent=1).splitlines().index('  "n": 140,') + 1


@pytest.mark.parametrize(("raw", "line"), [
    (b'[{"a": 1},\n{"b": "\xff"}]', 2),
    (b'[{"a": 1},\n\n{"b": 1}, "\xc3"]', 3),
    (b'{"a": 1}\n{"a": 1}\n\xfe\n', 3),
])
def test_bytes_that_are_not_utf8_are_named_by_their_line(raw, line):
    with pytest.raises(_userfile.UserFileError) as raised:
        _userfile.parse_users(raw, "f")
    assert str(raised.value) == f"f: line {line}: not UTF-8 text"
