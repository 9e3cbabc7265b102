"""``GET importstate.history`` against a real ``importstate serve``: entries, actors, errors."""

import base64
import io
import time
import zipfile

import httpx
import pytest
from http_server import Server, add_user, headers

FORBIDDEN = {
    "success": False,
    "error": "User does not have the permissions required for this action [error-unauthorized]",
}


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    db = tmp_path_factory.mktemp("http-history") / "importstate.db"
    accounts = {
        "alice": add_user(db, "alice", "run-import", "view-import-operations"),
        "runner": add_user(db, "runner", "run-import"),
        "viewer": add_user(db, "viewer", "view-import-operations"),
    }
    with Server(db) as server:
        clients = {
            name: httpx.Client(base_url=server.url + "/api/v1/", headers=headers(credentials),
                               timeout=30)
            for name, credentials in accounts.items()
        }
        yield clients
        for client in clients.values():
            client.close()


def moves(body):
    assert body["success"] is True
    return [(e["from"], e["to"], e["event"], e["actor"]) for e in body["history"]]


def until_done(api, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.get("import.status").json()["state"] == "done":
            return
        time.sleep(0.02)
    raise AssertionError("the import did not finish")


def test_history_records_the_api_user_and_the_run(people):
    alice, viewer = people["alice"], people["viewer"]
    alice.post("import.new").raise_for_status()
    alice.post("import.addUsers", json={"users": [
        {"username": "u1", "emails": ["u1@example.com"], "importIds": ["id-1"]},
    ]}).raise_for_status()
    alice.post("startImport", json={"input": {}}).raise_for_status()
    until_done(alice)
    answer = viewer.get("importstate.history")
    assert answer.status_code == 200
    assert moves(answer.json()) == [
        (None, "importer_new", "create", "user:alice"),
        ("importer_new", "importer_user_selection", "stage", "user:alice"),
        ("importer_user_selection", "importer_importing_started", "start", "user:alice"),
        ("importer_importing_started", "importer_importing_users", "advance", "run"),
        ("importer_importing_users", "importer_finishing", "advance", "run"),
        ("importer_finishing", "importer_done", "finish", "run"),
    ]
    current = alice.get("import.status").json()["operation"]["_id"]
    assert {e["operationId"] for e in answer.json()["history"]} == {current}


def test_history_of_an_older_operation_names_the_one_that_replaced_it(people):
    alice = people["alice"]
    older = alice.post("import.new").json()["operation"]["_id"]
    newer = alice.post("import.new").json()["operation"]["_id"]
    body = alice.get("importstate.history", params={"operationId": older}).json()
    assert moves(body)[-1] == (
        "importer_new", "importer_new", "invalidate", f"operation:{newer}",
    )
    assert moves(alice.get("importstate.history").json()) == [
        (None, "importer_new", "create", "user:alice"),
    ]


def test_an_unknown_operation_is_a_meteor_error(people):
    answer = people["alice"].get("importstate.history", params={"operationId": "nope"})
    assert answer.status_code == 400
    assert answer.json() == {
        "success": False, "error": "Import Operation Not Found [error-operation-not-found]",
        "errorType": "error-operation-not-found", "details": "importstate.history",
    }


def test_history_needs_view_import_operations(people):
    answer = people["runner"].get("importstate.history")
    assert answer.status_code == 403
    assert answer.json() == FORBIDDEN


def test_history_refuses_other_query_parameters(people):
    answer = people["alice"].get("importstate.history", params={"limit": "3"})
    assert answer.status_code == 400
    assert answer.json() == {
        "success": False, "errorType": "error-invalid-params",
        "error": "query: must NOT have additional properties (limit)",
    }
    empty = people["alice"].get("importstate.history", params={"operationId": ""})
    assert empty.json()["error"] == "query.operationId: must not be empty"


def test_a_file_loaded_in_the_background_is_the_uploader_s(people):
    alice = people["alice"]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as members:
        members.writestr("users.csv", "ann,ann@example.com,Ann\n")
    alice.post("uploadImportFile", json={
        "binaryContent": base64.b64encode(archive.getvalue()).decode(),
        "contentType": "application/zip", "fileName": "users.zip", "importerKey": "csv",
    }).raise_for_status()
    deadline = time.monotonic() + 30
    while alice.get("import.status").json()["state"] != "ready":
        assert time.monotonic() < deadline, "the file was not loaded"
        time.sleep(0.02)
    history = alice.get("importstate.history").json()["history"]
    assert [e["event"] for e in history] == [
        "create", "begin_loading", "advance", "advance", "finish_loading",
    ]
    assert {e["actor"] for e in history} == {"user:alice"}
