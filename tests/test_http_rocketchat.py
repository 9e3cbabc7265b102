"""Rocket.Chat's own end-to-end checks of its import API, restated against ``importstate serve``.

Rocket.Chat's test suite (``apps/meteor/tests/end-to-end/api/import.spec.ts``)
logs in as an administrator, then checks seven calls on a fresh server, in
this order; a user with no permissions is made for one of them. Each test
here is one of its checks, in its order, on one fresh database.
"""

import httpx
import pytest
from http_server import Server, add_user, cli, headers

FORBIDDEN = "User does not have the permissions required for this action [error-unauthorized]"


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return tmp_path_factory.mktemp("rocketchat") / "fresh.db"


@pytest.fixture(scope="module")
def server(db):
    # The administrator logs in with a name and password, as Rocket.Chat's suite does.
    cli("users", "add", "admin", "--admin", "--password-stdin", db=db, stdin="s3cret\n")
    with Server(db) as running:
        yield running


@pytest.fixture(scope="module")
def credentials(server):
    answer = httpx.post(server.url + "/api/v1/login",
                        json={"user": "admin", "password": "s3cret"})
    data = answer.json()["data"]
    return {"X-User-Id": data["userId"], "X-Auth-Token": data["authToken"]}


@pytest.fixture(scope="module")
def api(server, credentials):
    with httpx.Client(base_url=server.url + "/api/v1/", headers=credentials) as client:
        yield client


def test_get_current_import_operation_answers_success_and_no_null_operation(api):
    answer = api.get("getCurrentImportOperation")
    assert answer.status_code == 200
    assert answer.json()["success"] is True
    assert answer.json().get("operation", "absent") is not None


def test_download_pending_files_returns_a_count(api):
    answer = api.post("downloadPendingFiles")
    assert answer.status_code == 200
    assert answer.json()["success"] is True
    assert answer.json()["count"] >= 0


def test_download_pending_avatars_returns_a_count(api):
    answer = api.post("downloadPendingAvatars")
    assert answer.status_code == 200
    assert answer.json()["success"] is True
    assert answer.json()["count"] >= 0


def test_get_latest_import_operations_refuses_a_user_without_the_permission(server, db):
    nobody = add_user(db, "no-permissions")
    try:
        answer = httpx.get(server.url + "/api/v1/getLatestImportOperations",
                           headers=headers(nobody))
        assert answer.status_code == 403
        assert answer.json()["success"] is False
        assert answer.json()["error"] == FORBIDDEN
    finally:
        cli("users", "revoke", "no-permissions", db=db)


def test_get_latest_import_operations_returns_an_array(api):
    answer = api.get("getLatestImportOperations")
    assert answer.status_code == 200
    assert isinstance(answer.json(), list)


def test_get_import_progress_returns_key_name_step_and_count(api):
    answer = api.get("getImportProgress")
    assert answer.status_code == 200
    body = answer.json()
    assert body["success"] is True
    assert isinstance(body["key"], str)
    assert isinstance(body["name"], str)
    assert isinstance(body["step"], str)
    assert isinstance(body["count"], dict)


def test_get_import_file_data_returns_users_channels_and_a_message_count(api):
    answer = api.get("getImportFileData")
    assert answer.status_code == 200
    body = answer.json()
    assert body["success"] is True
    assert isinstance(body["users"], list)
    assert isinstance(body["channels"], list)
    assert body["message_count"] >= 0
