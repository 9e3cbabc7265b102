"""The REST API against a real ``importstate serve`` subprocess on loopback."""

import asyncio
import datetime as dt
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from xml.etree import ElementTree as ET

import httpx
import pytest
from http_server import Server, add_user, cli, headers

from importstate import (
    Accounts,
    DatabaseBusy,
    ImportService,
    MemoryStore,
    SQLiteStore,
    UsersTableImporter,
)
from importstate.http import ENDPOINTS, Limits, create_app
from importstate.service import PASSWORD_MASK

UNAUTHORIZED = {"status": "error", "message": "You must be logged in to do this."}
FORBIDDEN = {
    "success": False,
    "error": "User does not have the permissions required for this action [error-unauthorized]",
}
LOGIN_FAILED = {"status": "error", "error": "Unauthorized", "message": "Unauthorized"}
PASSWORD = "s3cret"  # noqa: S105 - a made-up credential of the test server

# The seeds' example calls, verbatim (seed 002 and seed 004).
SEED_CURL_LATEST = """curl -L -X GET 'http://localhost:3000/api/v1/getLatestImportOperations' \\
-H 'X-User-Id: d26x6zSkaPSe5gCyy' \\
-H 'X-Auth-Token: Zu-Z6eKzIIz7MCCRGeHi29bYkXZCJ4SxFC0JAasqm92'"""
SEED_CURL_STATUS = """curl --location 'http://localhost:3000/api/v1/import.status' \\
--header 'x-auth-token: QizJozLOnWMi_2vWaLHhjfd-XYKT6XM40lTZ3zg1UMd' \\
--header 'x-user-id: rbAXPnMktTFbNpwtJ' \\
--header 'Content-Type: application/json'"""
SEED_PYTHON_LATEST = """import requests

url = "http://localhost:3000/api/v1/getLatestImportOperations"

payload={}
headers = {
  'X-User-Id': 'd26x6zSkaPSe5gCyy',
  'X-Auth-Token': 'Zu-Z6eKzIIz7MCCRGeHi29bYkXZCJ4SxFC0JAasqm92'
}

response = requests.request("GET", url, headers=headers, data=payload)

print(response.text)
"""
SEED_IDS = {"d26x6zSkaPSe5gCyy", "rbAXPnMktTFbNpwtJ"}
SEED_TOKENS = {"Zu-Z6eKzIIz7MCCRGeHi29bYkXZCJ4SxFC0JAasqm92",
               "QizJozLOnWMi_2vWaLHhjfd-XYKT6XM40lTZ3zg1UMd"}


def swapped(text, server, credentials):
    """A seed example with the real server's port, user id and token swapped in."""
    text = text.replace("localhost:3000", f"127.0.0.1:{server.port}")
    for seed_id in SEED_IDS:
        text = text.replace(seed_id, credentials["userId"])
    for seed_token in SEED_TOKENS:
        text = text.replace(seed_token, credentials["authToken"])
    return text


def user(n, **changes):
    return {"username": f"u{n}", "emails": [f"u{n}@example.com"], "importIds": [f"id-{n}"],
            **changes}


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return tmp_path_factory.mktemp("http") / "importstate.db"


@pytest.fixture(scope="module")
def admin(db):
    return add_user(db, "admin", "run-import", "view-import-operations", password=PASSWORD)


@pytest.fixture(scope="module")
def server(db, admin):  # noqa: ARG001 - the admin exists before the server starts
    with Server(db) as running:
        yield running


@pytest.fixture
def api(server, admin):
    with httpx.Client(base_url=server.url + "/api/v1/", headers=headers(admin),
                      timeout=30) as client:
        yield client


def wait_for(api, predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = api.get("import.status").json()
        if predicate(status):
            return status
        time.sleep(0.01)
    raise AssertionError(f"timed out; last status {status}")


def counted(status):
    count = status.get("operation", {}).get("count", {})
    return count.get("completed", 0) + count.get("error", 0)


# -- the seeds' examples -------------------------------------------------------------------


def test_seed_curl_examples_work_with_real_credentials(server, admin, api):
    api.post("import.new").raise_for_status()
    for example in (SEED_CURL_LATEST, SEED_CURL_STATUS):
        args = shlex.split(swapped(example, server, admin).replace("\\\n", " "))
        assert args[0] == "curl"
        response = send_curl(args[1:])
        assert response.status_code == 200
        body = response.json()
        if "import.status" in example:
            assert body["state"] == "new"
            assert body["success"] is True
            assert body["operation"]["user"] == admin["userId"]
        else:
            assert isinstance(body, list)
            assert body[0]["status"] == "importer_new"


def send_curl(args):
    """Send the request a curl command line describes (the options the seeds use)."""
    method, url, sent = "GET", None, {}
    words = iter(args)
    for word in words:
        if word in {"-X", "--request"}:
            method = next(words)
        elif word in {"-H", "--header"}:
            name, _, value = next(words).partition(":")
            sent[name.strip()] = value.strip()
        elif word in {"-L", "--location"}:
            continue
        else:
            url = word
    return httpx.request(method, url, headers=sent, follow_redirects=True, timeout=30)


def test_seed_python_example_prints_the_operations(server, admin, api, capsys):
    api.post("import.new").raise_for_status()
    exec(swapped(SEED_PYTHON_LATEST, server, admin), {})  # noqa: S102 - the seed's own example
    printed = json.loads(capsys.readouterr().out)
    assert printed[0]["status"] == "importer_new"
    assert printed[0]["user"] == admin["userId"]


def test_seed_examples_with_the_seed_credentials_are_refused(server):
    response = send_curl(shlex.split(
        SEED_CURL_LATEST.replace("localhost:3000", f"127.0.0.1:{server.port}")
        .replace("\\\n", " "))[1:])
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


# -- the lifecycle -------------------------------------------------------------------------


def test_whole_lifecycle(db, api, admin):
    new = api.post("import.new").json()
    assert new["success"] is True
    assert set(new["operation"]) == {"_id", "type", "importerKey", "ts", "status", "valid",
                                     "user", "_updatedAt"}
    assert new["operation"]["status"] == "importer_new"
    assert new["operation"]["user"] == admin["userId"]
    assert api.get("import.status").json()["state"] == "new"

    invalid = api.post("import.addUsers", json={"users": [user(1), {"emails": ["x@y"]}]})
    assert invalid.status_code == 400
    assert invalid.json() == {"success": False, "error": "Users are missing required data."}
    roles = api.post("import.addUsers", json={"users": [user(1, roles=["emperor"])]})
    assert roles.json() == {"success": False,
                            "error": "One or more of the users have been assigned invalid roles."}
    assert api.get("import.status").json()["state"] == "new"

    users = [user(n) for n in range(120)]
    users += [user(1000, username="u3"), user(1001, emails=["U5@example.com"])]  # duplicates
    staged = api.post("import.addUsers", json={"users": users})
    assert staged.json() == {"success": True}
    ready = api.get("import.status").json()
    assert ready["state"] == "ready"
    assert ready["operation"]["count"] == {"total": 122, "users": 122}

    assert api.post("import.run").json() == {"success": True}
    done = wait_for(api, lambda s: s["state"] in {"done", "error", "canceled"})
    assert done["state"] == "done"
    assert done["operation"]["count"] == {"total": 122, "users": 122, "completed": 120,
                                          "error": 2}
    progress = api.get("getImportProgress").json()
    assert progress == {"key": "api", "name": "API", "step": "importer_done",
                        "count": {"completed": 120, "total": 122, "error": 2}, "success": True}
    current = api.get("getCurrentImportOperation").json()
    assert current == {"operation": done["operation"], "success": True}

    store = SQLiteStore(db)
    try:
        failed = list(ImportService(store).staged_users())
    finally:
        store.close()
    assert sorted(r["data"]["importIds"][0] for r in failed) == ["id-1000", "id-1001"]
    assert all("already taken" in r["errors"][0]["message"] for r in failed)

    again = api.post("import.run")
    assert again.json() == {"success": False, "error": "error-operation-not-found"} or \
        again.json() == {"success": False, "error": "error-invalid-operation-status"}
    finished = api.post("import.addUsers", json={"users": [user(5000)]})
    assert finished.json()["error"] == "The current import operation is already finished."
    assert api.post("import.cancel").json() == {
        "success": False, "error": "The current import operation is already finished."}

    assert api.post("import.clear").json() == {"success": True}
    assert api.get("import.status").json()["state"] == "done"  # a finished one stays done
    assert api.post("import.run").json() == {"success": False,
                                             "error": "error-operation-not-found"}
    latest = api.get("getLatestImportOperations").json()
    assert isinstance(latest, list)
    assert all(op["valid"] is False for op in latest)


def test_empty_user_list_succeeds_without_an_operation(api):
    api.post("import.clear").raise_for_status()
    assert api.post("import.addUsers", json={"users": []}).json() == {"success": True}
    response = api.post("import.addUsers", json={"users": [user(1)]})
    assert response.json() == {"success": False, "error": "Import operation not initialized."}


def test_run_without_staged_users_is_refused(api):
    api.post("import.new").raise_for_status()
    response = api.post("import.run")
    assert response.status_code == 400
    assert response.json() == {"success": False, "error": "error-invalid-operation-status"}


# -- imports that are still running --------------------------------------------------------


@pytest.fixture
def slow(tmp_path):
    """A server whose importer takes 20 ms per batch, and its admin's client."""
    db = tmp_path / "slow.db"
    credentials = add_user(db, "admin", "run-import", "view-import-operations")
    server = Server(db, batch_delay=0.02).start()
    client = httpx.Client(base_url=server.url + "/api/v1/", headers=headers(credentials),
                          timeout=30)
    yield server, client
    client.close()
    server.stop()


def start_large_import(api, users=2000):
    api.post("import.new").raise_for_status()
    api.post("import.addUsers", json={"users": [user(n) for n in range(users)]}) \
        .raise_for_status()
    assert api.post("import.run").json() == {"success": True}
    # It answered at once: the import goes on in the background.
    assert api.get("import.status").json()["state"] == "importing"
    seen = set()
    running = wait_for(api, lambda s: seen.add(counted(s)) or counted(s) >= 100)
    assert running["state"] == "importing"
    # Counts are committed once per batch of 50.
    assert all(n % 50 == 0 for n in seen)
    return running


def test_counts_move_in_batches_while_running(slow):
    _, api = slow
    start_large_import(api, users=640)
    # One import at a time: a second run is refused while this one goes on.
    assert api.post("import.run").json() == {"success": False,
                                             "error": "error-invalid-operation-status"}
    seen = set()
    done = wait_for(api, lambda s: seen.add(counted(s)) or s["state"] == "done")
    assert all(n % 50 == 0 or n == 640 for n in seen)
    assert done["operation"]["count"]["completed"] == 640
    assert api.post("import.run").json() == {"success": False,
                                             "error": "error-invalid-operation-status"}


def test_new_aborts_a_running_import(slow):
    _, api = slow
    running = start_large_import(api)
    new = api.post("import.new").json()["operation"]
    assert new["status"] == "importer_new"
    assert api.get("import.status").json()["state"] == "new"
    old_id = running["operation"]["_id"]

    def old():
        return next(op for op in api.get("getLatestImportOperations").json()
                    if op["_id"] == old_id)

    deadline = time.monotonic() + 30
    while old()["status"] != "importer_import_failed" and time.monotonic() < deadline:
        time.sleep(0.02)
    aborted = old()
    assert aborted["status"] == "importer_import_failed"
    assert aborted["valid"] is False
    assert counted({"operation": aborted}) < 2000
    # The new operation can take users and run at once.
    api.post("import.addUsers", json={"users": [user(9000)]}).raise_for_status()
    assert api.post("import.run").json() == {"success": True}
    assert wait_for(api, lambda s: s["state"] == "done")["operation"]["count"]["completed"] == 1


def test_cancel_stops_a_running_import(slow):
    _, api = slow
    running = start_large_import(api)
    cancelled = api.post("import.cancel").json()
    assert cancelled["success"] is True
    assert cancelled["operation"]["status"] == "importer_import_cancelled"
    assert api.get("import.status").json()["state"] == "canceled"
    time.sleep(0.3)  # well past the batch that was in hand
    final = api.get("import.status").json()
    assert final["state"] == "canceled"
    # The batch in hand is committed, and nothing after it.
    assert counted(running) <= counted(final) <= counted(cancelled) + 50
    assert counted(final) < 2000
    assert api.post("import.cancel").json()["error"] == \
        "The current import operation is already finished."


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_stopping_leaves_the_import_resumable_and_restart_resumes(slow, tmp_path, sig):
    server, api = slow
    start_large_import(api, users=4000)
    assert server.stop(sig) is not None
    assert "Traceback" not in server.output()
    store = SQLiteStore(server.db)
    try:
        stopped = ImportService(store).status()
    finally:
        store.close()
    assert stopped["state"] == "importing"
    assert 0 < counted(stopped) < 4000
    assert counted(stopped) % 50 == 0

    restarted = Server(server.db, batch_delay=0.0).start()
    try:
        with httpx.Client(base_url=restarted.url + "/api/v1/", headers=api.headers,
                          timeout=30) as again:
            done = wait_for(again, lambda s: s["state"] != "importing")
    finally:
        restarted.stop()
    assert done["state"] == "done"
    assert done["operation"]["count"] == {"total": 4000, "users": 4000, "completed": 4000,
                                          "error": 0}
    importer = UsersTableImporter(tmp_path / "slow.db")
    try:
        assert importer.count() == 4000
    finally:
        importer.close()
    assert "resumed import" in restarted.output()


def test_a_second_server_on_the_database_serves_reads_and_leaves_the_run_to_its_owner(
    slow,
):
    """Finding 2: another server on the same file never takes over a run whose owner lives.

    A server on the owner's port fails before it opens the file; one on another
    port serves reads while the owner imports every user.
    """
    owner, api = slow
    start_large_import(api, users=6000)
    same_port = subprocess.run(
        [sys.executable, "-m", "importstate", "serve", "--db", str(owner.db),
         "--port", str(owner.port)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert same_port.returncode == 1
    assert "cannot listen" in same_port.stderr
    second = Server(owner.db).start()
    try:
        with httpx.Client(base_url=second.url + "/api/v1/", headers=api.headers,
                          timeout=30) as reader:
            assert reader.get("import.status").json()["state"] == "importing"
            done = wait_for(api, lambda s: s["state"] != "importing")
            assert reader.get("import.status").json() == done
    finally:
        second.stop()
    assert done["state"] == "done"
    assert done["operation"]["count"]["completed"] == 6000
    assert "resumed import" not in second.output()
    assert "another server" in second.output()
    assert "ended importer_done" in owner.output()


def test_cancel_answers_at_once_through_a_storm_of_runs(slow):
    """Finding 5: a hundred concurrent import.run calls neither wait nor hold up a cancel."""
    server, api = slow
    start_large_import(api, users=10_000)

    async def storm():
        async with httpx.AsyncClient(base_url=server.url + "/api/v1/", headers=api.headers,
                                     timeout=60, limits=httpx.Limits(max_connections=200)) as c:
            runs = [asyncio.create_task(c.post("import.run")) for _ in range(100)]
            await asyncio.sleep(0.2)
            started = time.monotonic()
            cancelled = await c.post("import.cancel")
            took = time.monotonic() - started
            answers = await asyncio.gather(*runs)
            return cancelled, took, answers

    cancelled, took, answers = asyncio.run(storm())
    assert took < 1.0
    assert cancelled.json()["operation"]["status"] == "importer_import_cancelled"
    assert {a.status_code for a in answers} == {400}
    assert {a.json()["error"] for a in answers} == {"error-invalid-operation-status"}


def test_a_server_told_to_prune_deletes_old_finished_operations(tmp_path):
    db = tmp_path / "prune.db"
    credentials = add_user(db, "viewer", "view-import-operations")
    store = SQLiteStore(db)
    long_ago = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    service = ImportService(store, {"api": print}, clock=lambda: long_ago)
    for n in range(3):
        service.new_operation("admin")
        service.add_users([user(n)])
        service.run(importer=lambda _user: None)
    store.close()
    options = ["--prune-after", "1d", "--takeover-after", "2"]
    with Server(db, options=options) as server, httpx.Client(
        base_url=server.url + "/api/v1/", headers=headers(credentials), timeout=30,
    ) as api:
        deadline = time.monotonic() + 10
        while len(latest := api.get("getLatestImportOperations").json()) > 1:
            assert time.monotonic() < deadline, latest
            time.sleep(0.1)
    assert latest[0]["status"] == "importer_done"  # the current one stays
    assert "pruned 2 finished operations" in server.output()


# -- authentication and permissions --------------------------------------------------------


@pytest.fixture(scope="module")
def people(db, server):
    """Users of every kind, made while the server runs."""
    revoked = add_user(db, "revoked", "run-import", "view-import-operations")
    cli("users", "revoke", "revoked", db=db)
    logged_out = add_user(db, "leaver", "run-import", "view-import-operations", password=PASSWORD)
    login = httpx.post(server.url + "/api/v1/login",
                       json={"user": "leaver", "password": PASSWORD}).json()["data"]
    out = httpx.post(server.url + "/api/v1/logout", headers=headers(login))
    assert out.json() == {"status": "success", "data": {"message": "You've been logged out!"}}
    return {
        "nobody": add_user(db, "nobody"),
        "runner": add_user(db, "runner", "run-import"),
        "viewer": add_user(db, "viewer", "view-import-operations"),
        "revoked": revoked,
        "logged_out": login,
        "leaver": logged_out,
    }


def unauthenticated_headers(people, admin):
    token, user_id = admin["authToken"], admin["userId"]
    return {
        "no headers": {},
        "only X-User-Id": {"X-User-Id": user_id},
        "only X-Auth-Token": {"X-Auth-Token": token},
        "wrong token": {"X-User-Id": user_id, "X-Auth-Token": token[:-1] + "x"},
        "another user's token": {"X-User-Id": user_id,
                                 "X-Auth-Token": people["runner"]["authToken"]},
        "unknown user": {"X-User-Id": "NoSuchUser1234567", "X-Auth-Token": token},
        "name instead of id": {"X-User-Id": "admin", "X-Auth-Token": token},
        "revoked": headers(people["revoked"]),
        "logged out": headers(people["logged_out"]),
        "empty": {"X-User-Id": "", "X-Auth-Token": ""},
    }


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_every_endpoint_refuses_bad_credentials_before_reading_the_body(
    server, people, admin, endpoint,
):
    url = f"{server.url}/api/v1/{endpoint.name}"
    for case, sent in unauthenticated_headers(people, admin).items():
        response = httpx.request(endpoint.method, url, headers=sent, content=b"{not json")
        assert (case, response.status_code, response.json()) == (case, 401, UNAUTHORIZED)


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e.permission],
                         ids=lambda e: e.name)
def test_every_endpoint_refuses_a_user_without_its_permission(server, people, endpoint):
    url = f"{server.url}/api/v1/{endpoint.name}"
    other = "viewer" if endpoint.permission == "run-import" else "runner"
    for who in ("nobody", other):
        response = httpx.request(endpoint.method, url, headers=headers(people[who]),
                                 content=b"{not json" + b" " * 100)
        assert (who, response.status_code, response.json()) == (who, 403, FORBIDDEN)


@pytest.mark.parametrize("who", ["stranger", "viewer", "runner"])
def test_refusals_are_sent_without_waiting_for_the_body(server, people, who):
    """A body announced but never sent: 401, 403 and 413 come back anyway."""
    sent = {"stranger": {"X-User-Id": "x", "X-Auth-Token": "y"}}.get(who) or headers(people[who])
    expected = {"stranger": 401, "viewer": 403, "runner": 413}[who]
    head = ["POST /api/v1/import.addUsers HTTP/1.1", f"Host: 127.0.0.1:{server.port}",
            "Content-Type: application/json", "Content-Length: 999999999",
            *(f"{name}: {value}" for name, value in sent.items())]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + b'{"users": [')
        answer = sock.recv(65536).decode()
    assert answer.startswith(f"HTTP/1.1 {expected} ")


def test_each_permission_opens_its_endpoints(server, people):
    runner = httpx.Client(base_url=server.url + "/api/v1/", headers=headers(people["runner"]))
    viewer = httpx.Client(base_url=server.url + "/api/v1/", headers=headers(people["viewer"]))
    assert runner.get("import.status").status_code == 200
    assert runner.get("getLatestImportOperations").status_code == 403
    assert viewer.get("getLatestImportOperations").status_code == 200
    assert viewer.get("import.status").status_code == 403


def test_revoking_stops_a_token_at_once(db, server):
    credentials = add_user(db, "shortlived", "run-import", password=PASSWORD)
    url = server.url + "/api/v1/import.status"
    assert httpx.get(url, headers=headers(credentials)).status_code == 200
    cli("users", "revoke", "shortlived", db=db)
    response = httpx.get(url, headers=headers(credentials))
    assert (response.status_code, response.json()) == (401, UNAUTHORIZED)
    login = httpx.post(server.url + "/api/v1/login",
                       json={"user": "shortlived", "password": PASSWORD})
    assert (login.status_code, login.json()) == (401, LOGIN_FAILED)


# -- login, as Rocket.Chat clients do it ---------------------------------------------------


@pytest.mark.parametrize("body", [
    {"json": {"user": "admin", "password": "s3cret"}},
    {"json": {"username": "admin", "password": "s3cret"}},
    {"data": {"user": "admin", "password": "s3cret"}},
    {"data": {"username": "admin", "password": "s3cret"}},
], ids=["json user", "json username", "form user", "form username"])
def test_login_then_headers_then_logout(server, admin, body):
    login = httpx.post(server.url + "/api/v1/login", **body)
    assert login.status_code == 200
    answer = login.json()
    assert answer["status"] == "success"
    data = answer["data"]
    assert data["userId"] == admin["userId"]
    assert data["authToken"] != admin["authToken"]
    assert data["me"]["_id"] == admin["userId"]
    assert data["me"]["username"] == "admin"
    session = {"X-User-Id": data["userId"], "X-Auth-Token": data["authToken"]}
    status = httpx.get(server.url + "/api/v1/import.status", headers=session)
    assert status.status_code == 200
    assert status.json()["success"] is True
    out = httpx.post(server.url + "/api/v1/logout", headers=session)
    assert out.json() == {"status": "success", "data": {"message": "You've been logged out!"}}
    after = httpx.get(server.url + "/api/v1/import.status", headers=session)
    assert (after.status_code, after.json()) == (401, UNAUTHORIZED)
    # Other tokens of the same user still work.
    assert httpx.get(server.url + "/api/v1/import.status", headers=headers(admin)) \
        .status_code == 200


@pytest.mark.parametrize("body", [
    {"json": {"user": "admin", "password": "wrong"}},
    {"data": {"username": "admin", "password": ""}},
    {"json": {"user": "no-such-user", "password": "s3cret"}},
    {"json": {"user": "nobody", "password": ""}},  # a user without a password
    {"json": {"user": "admin"}},
    {"json": {"password": "s3cret"}},
    {"json": {"user": ["admin"], "password": "s3cret"}},
    {"json": {}},
], ids=["wrong password", "empty password", "unknown user", "no password set",
        "no password", "no name", "name not a string", "empty"])
def test_login_failures_get_the_spec_401_body(server, people, body):  # noqa: ARG001
    response = httpx.post(server.url + "/api/v1/login", **body)
    assert (response.status_code, response.json()) == (401, LOGIN_FAILED)


def test_login_with_a_malformed_body_is_400(server):
    response = httpx.post(server.url + "/api/v1/login", content=b"user=admin",
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["success"] is False


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "error"), [
    (b"{", "The request body is not valid JSON"),
    (b"", "The request body is not valid JSON"),
    (b"[]", "The request body must be a JSON object, not an array."),
    (b'"users"', "The request body must be a JSON object, not a string."),
    (b"null", "The request body must be a JSON object, not null."),
    (b"{}", 'The request body must have a "users" list.'),
    (b'{"users": {"a": 1}}', '"users" must be a list of users.'),
    (b'{"users": "x"}', '"users" must be a list of users.'),
    (b'{"users": [1]}', "Users are missing required data."),
    (b'{"users": [{"emails": [], "importIds": ["a"]}]}', "Users are missing required data."),
    (b'{"users": [{"emails": ["a@b"], "importIds": [""]}]}', "Users are missing required data."),
    (b'{"users": [{"emails": ["a@b"], "importIds": ["a"], "utcOffset": NaN}]}',
     "The request body is not valid JSON: NaN is not a JSON value."),
    (b'{"users": [{"emails": ["\\ud800"], "importIds": ["a"]}]}',
     "The request body is not valid UTF-8 text."),
    (b'{"users": ["\xff"]}', "The request body is not valid"),
    (b"[" * 100_000 + b"]" * 100_000, "The request body is nested too deeply."),
    (b'{"users": [{"emails": ["a@b"], "importIds": ["a"], "utcOffset": 1e999}]}',
     "The request body is not valid JSON: 1e999 is out of range."),
    (b'{"users": [{"emails": ["a@b"], "importIds": ["a"], "utcOffset": ' + b"9" * 5000 + b"}]}",
     "The request body is not valid JSON"),
])
def test_bad_add_users_bodies_are_400(api, body, error):
    api.post("import.new").raise_for_status()
    response = api.post("import.addUsers", content=body)
    assert response.status_code == 400
    answer = response.json()
    assert answer["success"] is False
    assert answer["error"].startswith(error)
    assert api.get("import.status").json()["state"] == "new"


def test_a_body_over_the_limit_is_413(db, admin):
    with Server(db, max_body=1000) as small:
        client = httpx.Client(base_url=small.url + "/api/v1/", headers=headers(admin))
        big = {"users": [user(n) for n in range(100)]}
        response = client.post("import.addUsers", json=big)
        assert response.status_code == 413
        assert response.json() == {
            "success": False, "error": "The request body is larger than the limit of 1000 bytes."}
        # Without a Content-Length (chunked), the limit holds while reading.
        chunks = (json.dumps(big).encode()[i:i + 100] for i in range(0, 20_000, 100))
        response = client.post("import.addUsers", content=chunks)
        assert response.status_code == 413
        assert client.post("login", content=b"x" * 1001).status_code == 413
        # Credentials are still checked first.
        anonymous = httpx.post(small.url + "/api/v1/import.addUsers", json=big)
        assert anonymous.status_code == 401


def test_the_default_limit_is_ten_megabytes(api):
    api.post("import.new").raise_for_status()
    response = api.post("import.addUsers", content=b" " * (10 * 1024 * 1024 + 1))
    assert response.status_code == 413


def test_unknown_paths_and_methods_answer_json(server, api):
    missing = api.get("import.nothing")
    assert (missing.status_code, missing.json()["success"]) == (404, False)
    wrong = api.get("import.new")
    assert (wrong.status_code, wrong.json()["success"]) == (405, False)
    document = httpx.get(server.url + "/api/v1/openapi.json")
    assert document.status_code == 200
    assert document.json()["openapi"].startswith("3.1")


# -- embedding -----------------------------------------------------------------------------


def test_create_app_serves_any_service(tmp_path):
    imported = []
    service = ImportService(MemoryStore(), {"api": imported.append})
    accounts = Accounts(tmp_path / "accounts.db")
    _, credentials = accounts.add("embedder", permissions=["run-import"])
    app = create_app(service, accounts, max_body=5000)

    async def drive():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://embedded/api/v1/",
                                     headers=headers(credentials.to_wire())) as client:
            (await client.post("import.new")).raise_for_status()
            (await client.post("import.addUsers", json={"users": [user(1), user(2)]})) \
                .raise_for_status()
            assert (await client.post("import.run")).json() == {"success": True}
            deadline = time.monotonic() + 10
            while (await client.get("import.status")).json()["state"] != "done":
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            big = await client.post("import.addUsers", content=b" " * 5001)
            assert big.status_code == 413

    asyncio.run(drive())
    accounts.close()
    assert [u["importIds"] for u in imported] == [["id-1"], ["id-2"]]


# -- errors are JSON, whatever fails --------------------------------------------------------


class BrokenWrites:
    """A store whose writes fail with ``error``; reads still work."""

    def __init__(self, store, error):
        self.store, self.error = store, error

    def transaction(self):
        raise self.error

    def reading(self):
        return self.store.reading()

    def close(self):
        self.store.close()


def embedded(tmp_path, store, limits=None):
    accounts = Accounts(tmp_path / "accounts.db")
    _, credentials = accounts.add("embedder", permissions=["run-import"], password=PASSWORD)
    app = create_app(ImportService(store, {"api": print}), accounts, limits=limits)
    return app, accounts, headers(credentials.to_wire())


async def call(app, method, path, **kwargs):
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://embedded") as client:
        return await client.request(method, path, **kwargs)


@pytest.mark.parametrize(("error", "status", "message"), [
    (DatabaseBusy("imports.db: database is busy"), 503, "imports.db: database is busy"),
    (sqlite3.OperationalError("attempt to write a readonly database"), 500,
     "The store failed: attempt to write a readonly database"),
    (RuntimeError("secret internals"), 500, "The server failed; its log has the details."),
], ids=["busy", "store error", "anything else"])
def test_store_and_server_errors_are_json(tmp_path, error, status, message):
    """Findings 3 and 10: no bare 500 text/plain; busy is 503 with Retry-After."""
    app, accounts, sent = embedded(tmp_path, BrokenWrites(MemoryStore(), error))
    for path in ("/api/v1/import.new", "/api/v1/import.cancel"):
        response = asyncio.run(call(app, "POST", path, headers=sent))
        assert response.status_code == status
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"success": False, "error": message}
        if status == 503:
            assert int(response.headers["retry-after"]) >= 1
    accounts.close()


def test_a_trailing_slash_is_404_not_a_redirect(tmp_path):
    """Finding 10: no redirect built from the Host header (and followed with the token)."""
    app, accounts, sent = embedded(tmp_path, MemoryStore())
    response = asyncio.run(call(app, "GET", "/api/v1/import.status/",
                                headers={**sent, "Host": "attacker.example"}))
    assert response.status_code == 404
    assert "location" not in response.headers
    assert response.json()["success"] is False
    accounts.close()


@pytest.mark.parametrize("body", [
    json.dumps({"users": [user(1)]}).encode("utf-16"),
    json.dumps({"users": [user(1)]}).encode("utf-32"),
    b"\xef\xbb\xbf" + json.dumps({"users": [user(1)]}).encode(),
], ids=["UTF-16", "UTF-32", "UTF-8 with a BOM"])
def test_only_utf8_json_is_read(tmp_path, body):
    """Finding 10: the API is UTF-8 JSON; other encodings and a BOM are 400."""
    app, accounts, sent = embedded(tmp_path, MemoryStore())
    assert asyncio.run(call(app, "POST", "/api/v1/import.new", headers=sent)).status_code == 200
    for path in ("/api/v1/import.addUsers", "/api/v1/login"):
        response = asyncio.run(call(app, "POST", path, headers=sent, content=body))
        assert response.status_code == 400, path
        assert response.json()["success"] is False
    status = asyncio.run(call(app, "GET", "/api/v1/import.status", headers=sent)).json()
    assert status["state"] == "new"
    accounts.close()


def test_a_client_that_goes_away_is_logged_at_debug(tmp_path, caplog):
    """Finding 10: a disconnect mid-body is no ERROR and no traceback."""
    app, accounts, sent = embedded(tmp_path, MemoryStore())
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/api/v1/import.addUsers", "raw_path": b"", "root_path": "",
        "query_string": b"", "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 3000),
        "headers": [(b"content-length", b"1000"), (b"host", b"embedded"),
                    *((k.lower().encode(), v.encode()) for k, v in sent.items())],
    }
    messages = iter([{"type": "http.request", "body": b'{"users": [', "more_body": True},
                     {"type": "http.disconnect"}])

    async def receive():
        return next(messages)

    async def send(_message):
        pass

    caplog.set_level(logging.DEBUG)
    asyncio.run(app(scope, receive, send))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("went away" in r.getMessage() for r in caplog.records)
    accounts.close()


def test_failed_logins_are_limited_per_name_and_per_address(tmp_path):
    """Finding 10: ten failures for a name (a hundred per address) in 5 minutes, then 429."""
    app, accounts, _ = embedded(tmp_path, MemoryStore())

    def login(name, password, address="10.0.0.1", on=app):
        transport = httpx.ASGITransport(app=on, client=(address, 1234))

        async def send():
            async with httpx.AsyncClient(transport=transport, base_url="http://e") as client:
                return await client.post("/api/v1/login", json={"user": name, "password": password})

        return asyncio.run(send())

    for _ in range(10):
        assert login("embedder", "wrong").status_code == 401
    refused = login("embedder", PASSWORD)  # the right password, too late
    assert refused.status_code == 429
    assert refused.json()["status"] == "error"
    assert 1 <= int(refused.headers["retry-after"]) <= 300
    assert login("embedder", PASSWORD, address="10.0.0.2").status_code == 429  # the name
    assert login("other", "x", address="10.0.0.2").status_code == 401
    accounts.close()

    strict, accounts, _ = embedded(tmp_path / "strict", MemoryStore(), Limits(login_failures=2))
    for n in range(20):  # ten names, two failures each: the address's twenty
        assert login(f"guess{n // 2}", "x", on=strict).status_code == 401
    assert login("embedder", PASSWORD, on=strict).status_code == 429
    assert login("embedder", PASSWORD, address="10.0.0.9", on=strict).status_code == 200
    accounts.close()


# -- the REST calls of the import page ----------------------------------------------------


SVG = "{http://www.w3.org/2000/svg}"


def highlighted_states(svg):
    """The states the SVG diagram fills with a colour (all others are white)."""
    root = ET.fromstring(svg)  # noqa: S314 - our own server's Graphviz output
    found = []
    for node in root.iter(SVG + "g"):
        if node.get("class") != "node":
            continue
        shape = next(e for e in node if e.get("fill") is not None)
        if shape.get("fill") != "white":
            found.append(node.find(SVG + "title").text)
    return found


@pytest.mark.skipif(
    shutil.which("dot") is None and os.environ.get("CI") != "true",
    reason="Graphviz's dot is not installed (under CI=true this test must run)",
)
def test_the_diagram_highlights_the_state_of_the_current_operation(api):
    api.post("import.clear").raise_for_status()
    api.post("import.new").raise_for_status()
    answer = api.get("importstate.diagram")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["state"] == "new"
    assert body["success"] is True
    assert highlighted_states(body["svg"]) == ["new"]
    api.post("import.addUsers", json={"users": [user(1)]}).raise_for_status()
    api.post("import.run").raise_for_status()
    wait_for(api, lambda status: status["state"] == "done")
    assert highlighted_states(api.get("importstate.diagram").json()["svg"]) == ["done"]
    assert api.get("importstate.diagram", params={"x": "1"}).status_code == 400


def test_the_diagram_without_graphviz_says_how_to_install_it(tmp_path, monkeypatch):
    db = tmp_path / "imports.db"
    credentials = add_user(db, "admin", "run-import")
    monkeypatch.setenv("PATH", str(tmp_path))
    with Server(db) as running:
        answer = httpx.get(running.url + "/api/v1/importstate.diagram",
                           headers=headers(credentials))
    assert answer.status_code == 400
    assert "install Graphviz" in answer.json()["error"]


def test_the_failures_of_the_current_operation_are_listed_with_passwords_masked(api):
    api.post("import.new").raise_for_status()
    secrets = {"password": "first-secret"}, {"password": "second-secret"}
    # Import ids no other test of the module imports: a re-run of one is taken as done.
    users = [user(8001, **secrets[0]), user(8002, username="U8001", **secrets[1])]
    api.post("import.addUsers", json={"users": users}).raise_for_status()
    api.post("import.run").raise_for_status()
    wait_for(api, lambda status: status["state"] == "done")
    answer = api.get("importstate.failures")
    assert answer.status_code == 200, answer.text
    failures = answer.json()["failures"]
    assert [record["data"]["username"] for record in failures] == ["U8001"]
    assert failures[0]["data"]["password"] == PASSWORD_MASK
    assert failures[0]["dataType"] == "user"
    assert failures[0]["errors"][0]["message"]
    assert "secret" not in answer.text
    api.post("import.clear").raise_for_status()
    assert api.get("importstate.failures").json() == {"failures": [], "success": True}
