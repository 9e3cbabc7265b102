"""API users of the REST server: the accounts module and the ``users`` subcommands."""

import hashlib
import json
import sqlite3
import statistics
import subprocess
import sys
import time

import pytest
from http_server import Server, add_user

from importstate import UsersTableImporter
from importstate.accounts import PERMISSIONS, Accounts
from importstate.errors import (
    ApiUserExists,
    EmptyPassword,
    InvalidApiUserName,
    UnknownApiUser,
    UnknownPermission,
)

PASSWORD = "correct horse"  # noqa: S105 - a made-up credential


@pytest.fixture
def db(tmp_path):
    return tmp_path / "importstate.db"


@pytest.fixture
def accounts(db):
    made = Accounts(db)
    yield made
    made.close()


def test_a_new_user_authenticates_with_its_token(accounts):
    user, credentials = accounts.add("alice", permissions=["run-import"])
    assert credentials.user_id == user.id
    assert len(user.id) == 17
    assert user.permissions == {"run-import"}
    assert len(credentials.auth_token) >= 43
    assert accounts.authenticate(user.id, credentials.auth_token) == user
    assert accounts.authenticate(user.id, credentials.auth_token + "x") is None
    assert accounts.authenticate("someone-else", credentials.auth_token) is None
    assert credentials.to_wire() == {"userId": user.id, "authToken": credentials.auth_token}
    assert credentials.auth_token not in repr(credentials)


def test_tokens_and_passwords_are_stored_only_as_hashes(db, accounts):
    _, credentials = accounts.add("alice", password=PASSWORD)
    raw = db.read_bytes() + (db.with_name(db.name + "-wal").read_bytes()
                             if db.with_name(db.name + "-wal").exists() else b"")
    assert credentials.auth_token.encode() not in raw
    assert PASSWORD.encode() not in raw
    with sqlite3.connect(db) as conn:
        (stored_hash,) = conn.execute("SELECT hash FROM api_tokens").fetchone()
        (stored_password,) = conn.execute("SELECT password FROM api_users").fetchone()
    assert stored_hash == hashlib.sha256(credentials.auth_token.encode()).hexdigest()
    assert stored_password.startswith("scrypt$")
    # Salted: the same password hashes differently for another user.
    accounts.add("bob", password=PASSWORD)
    with sqlite3.connect(db) as conn:
        passwords = {row[0] for row in conn.execute("SELECT password FROM api_users")}
    assert len(passwords) == 2


def test_login_gives_a_new_token_and_logout_ends_only_that_one(accounts):
    user, first = accounts.add("alice", password=PASSWORD, permissions=PERMISSIONS)
    logged_in = accounts.login("alice", PASSWORD)
    assert logged_in is not None
    same, second = logged_in
    assert same == user
    assert second.auth_token != first.auth_token
    assert accounts.tokens("alice") == 2
    assert accounts.logout(user.id, second.auth_token) is True
    assert accounts.logout(user.id, second.auth_token) is False
    assert accounts.authenticate(user.id, second.auth_token) is None
    assert accounts.authenticate(user.id, first.auth_token) == user


@pytest.mark.parametrize(("name", "password"), [
    ("alice", "wrong"), ("alice", ""), ("nobody", PASSWORD), ("tokenonly", ""),
    ("tokenonly", PASSWORD),
])
def test_login_refuses_wrong_credentials(accounts, name, password):
    accounts.add("alice", password=PASSWORD)
    accounts.add("tokenonly")
    assert accounts.login(name, password) is None


def test_revoking_ends_tokens_and_logins(accounts):
    user, credentials = accounts.add("alice", password=PASSWORD)
    revoked = accounts.revoke("alice")
    assert revoked.revoked is not None
    assert accounts.authenticate(user.id, credentials.auth_token) is None
    assert accounts.login("alice", PASSWORD) is None
    assert accounts.tokens("alice") == 0
    with pytest.raises(UnknownApiUser, match="no API user named 'bob'"):
        accounts.revoke("bob")


def test_names_and_permissions_are_checked(accounts):
    accounts.add("alice")
    with pytest.raises(ApiUserExists):
        accounts.add("alice")
    with pytest.raises(UnknownPermission) as caught:
        accounts.add("bob", permissions=["run-import", "admin"])
    assert caught.value.permission == "admin"
    with pytest.raises(ValueError, match="non-empty name"):
        accounts.add("")
    assert [user.name for user in accounts.users()] == ["alice"]


@pytest.mark.parametrize("name", ["", " ", "\t\n", "ann\nbob", "ann\x1b[31m", "ann\u200e",
                                  "ann\u2028"])
def test_blank_names_and_control_characters_are_refused(accounts, name):
    with pytest.raises(InvalidApiUserName) as caught:
        accounts.add(name)
    assert caught.value.name == name
    assert accounts.users() == []


def test_an_empty_password_is_refused_but_none_is_no_password(accounts):
    with pytest.raises(EmptyPassword):
        accounts.add("alice", password="")
    assert accounts.users() == []
    user, _ = accounts.add("alice", password=None)
    assert not user.has_password
    # Spaces inside a name, or as a password, are fine.
    accounts.add("Ann Lee, ops", password=" ")  # noqa: S106 - made up


def test_api_users_live_beside_the_imported_users(db, accounts):
    importer = UsersTableImporter(db)
    try:
        importer.import_batch([{"emails": ["a@b"], "importIds": ["1"], "username": "alice"}])
        accounts.add("alice")
        assert importer.count() == 1
    finally:
        importer.close()
    assert [user.name for user in accounts.users()] == ["alice"]


def run_cli(*args, db):
    return subprocess.run(
        [sys.executable, "-m", "importstate", *args, "--db", str(db)],
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_users_subcommands(db):
    added = run_cli("users", "add", "alice", "--permission", "run-import", "--json", db=db)
    assert added.returncode == 0, added.stderr
    credentials = json.loads(added.stdout)
    assert set(credentials) == {"userId", "authToken"}
    human = run_cli("users", "add", "bob", "--password", PASSWORD, db=db)
    assert human.returncode == 0
    assert "X-Auth-Token:" in human.stdout
    assert "shown only once" in human.stdout

    listed = json.loads(run_cli("users", "list", "--json", db=db).stdout)
    assert [(u["name"], u["permissions"], u["password"], u["revoked"]) for u in listed] == [
        ("alice", ["run-import"], False, None), ("bob", [], True, None)]
    assert listed[0]["userId"] == credentials["userId"]
    assert credentials["authToken"] not in run_cli("users", "list", db=db).stdout

    assert run_cli("users", "revoke", "alice", db=db).returncode == 0
    listed = json.loads(run_cli("users", "list", "--json", db=db).stdout)
    assert listed[0]["revoked"] is not None
    assert listed[0]["tokens"] == 0


@pytest.mark.parametrize(("args", "message"), [
    (("users", "add", "carol", "--permission", "admin"),
     "unknown permission 'admin' (known: run-import, view-import-operations)"),
    (("users", "revoke", "nobody"), "no API user named 'nobody'"),
    (("serve", "--max-body", "-1"), "--max-body must not be negative, got -1"),
])
def test_users_subcommand_errors_are_one_line(db, args, message):
    done = run_cli(*args, db=db)
    assert done.returncode == 1
    assert done.stderr.strip() == f"importstate: {message}"


def test_adding_a_name_twice_is_an_error(db):
    assert run_cli("users", "add", "alice", db=db).returncode == 0
    again = run_cli("users", "add", "alice", db=db)
    assert again.returncode == 1
    assert "already exists" in again.stderr


def test_serve_warns_when_nobody_can_log_in(db):
    with Server(db) as server:
        assert "no API users yet" in server.output()
    add_user(db, "alice", "run-import")
    with Server(db) as server:
        assert "no API users yet" not in server.output()
        assert f"importstate serving the import API of {db}" in server.output()


def authentication_seconds(accounts, user_id, token, rounds=200):
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        assert accounts.authenticate(user_id, token) is not None
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def test_a_token_is_found_by_its_hash_however_many_the_user_has(db, accounts):
    """Finding 6: 20,000 tokens of one user (200,000 in the report) cost what one does."""
    user, credentials = accounts.add("busy", permissions=["run-import"])
    one = authentication_seconds(accounts, user.id, credentials.auth_token)
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO api_tokens (user_id, hash, created) VALUES (?, ?, ?)",
            [(user.id, hashlib.sha256(f"t{n}".encode()).hexdigest(), int(time.time() * 1000))
             for n in range(20_000)],
        )
    many = authentication_seconds(accounts, user.id, credentials.auth_token)
    assert many < 3 * one + 0.0002, (one, many)


def test_tokens_expire_after_their_time_to_live(db):
    accounts = Accounts(db, token_ttl=3600)
    user, credentials = accounts.add("alice", permissions=["run-import"])
    assert accounts.authenticate(user.id, credentials.auth_token) == user
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE api_tokens SET created = created - 3601 * 1000")
    assert accounts.authenticate(user.id, credentials.auth_token) is None
    assert accounts.tokens("alice") == 0  # an expired token is no live one
    accounts.close()


def test_the_default_time_to_live_is_rocket_chat_s_ninety_days(db, accounts):
    user, credentials = accounts.add("alice", permissions=["run-import"])
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE api_tokens SET created = created - 89 * 86400 * 1000")
    assert accounts.authenticate(user.id, credentials.auth_token) == user
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE api_tokens SET created = created - 2 * 86400 * 1000")
    assert accounts.authenticate(user.id, credentials.auth_token) is None


def test_a_login_beyond_the_cap_drops_the_oldest_token(db):
    accounts = Accounts(db, tokens_per_user=5)
    user, first = accounts.add("alice", password=PASSWORD)
    tokens = [accounts.login("alice", PASSWORD)[1].auth_token for _ in range(6)]
    assert accounts.tokens("alice") == 5
    assert accounts.authenticate(user.id, first.auth_token) is None
    assert accounts.authenticate(user.id, tokens[0]) is None
    assert all(accounts.authenticate(user.id, token) == user for token in tokens[1:])
    accounts.close()
