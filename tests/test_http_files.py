"""The file API on a real ``importstate serve``: upload a file, choose, start, follow the progress.

Behaviour: file-api.
"""

import base64
import json
import sqlite3
import time
import zipfile

import httpx
import pytest
from http_server import Server, add_user, headers
from loopback_http import QuietHandler, serving

from importstate.loaders.samples import write_csv_export, write_slack_export

ADMIN = ("run-import", "view-import-operations")


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return tmp_path_factory.mktemp("files") / "imports.db"


@pytest.fixture(scope="module")
def admin(db):
    return add_user(db, "admin", *ADMIN)


@pytest.fixture(scope="module")
def server(db):
    with Server(db, max_body=50 * 1024 * 1024) as running:
        yield running


@pytest.fixture
def api(server, admin):
    with httpx.Client(base_url=server.url + "/api/v1/", headers=headers(admin),
                      timeout=30) as client:
        yield client


def upload_body(path, importer, **changes):
    body = {"binaryContent": base64.b64encode(path.read_bytes()).decode(),
            "contentType": "application/zip", "fileName": path.name, "importerKey": importer}
    return {**body, **changes}


def wait_for_selection(api):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = api.get("getImportFileData")
        assert answer.status_code == 200, answer.text
        if not answer.json().get("waiting"):
            return answer.json()
        time.sleep(0.05)
    raise AssertionError("the selection never came")


def wait_for_step(api, step):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        progress = api.get("getImportProgress").json()
        if progress["step"] == step:
            return progress
        assert progress["step"] != "importer_import_failed", progress
        time.sleep(0.05)
    raise AssertionError(f"never reached {step}")


def target(db, query):
    conn = sqlite3.connect(db)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def test_a_csv_zip_uploaded_is_chosen_from_started_in_part_and_imported(api, db, tmp_path):
    export = write_csv_export(tmp_path / "export.zip", users=20, channels=4, messages=300)
    answer = api.post("uploadImportFile", json=upload_body(tmp_path / "export.zip", "csv"))
    assert answer.json() == {"success": True}
    operation = api.get("getCurrentImportOperation").json()["operation"]
    assert (operation["importerKey"], operation["type"]) == ("csv", "CSV")
    assert operation["file"] == "export.zip"

    selection = wait_for_selection(api)
    assert selection["success"] is True
    assert selection["name"] == "CSV"
    assert len(selection["users"]) == export.users
    assert selection["message_count"] == export.messages
    names = {c["name"] for c in selection["channels"]}
    assert {"channel-0", "channel-1", "channel-2", "channel-3"} <= names

    users = [u["user_id"] for u in selection["users"] if u["user_id"] != "user3"]
    channels = [c["channel_id"] for c in selection["channels"] if c["name"] != "channel-1"]
    answer = api.post("startImport", json={"input": {"users": {"list": users},
                                                     "channels": {"list": channels}}})
    assert answer.json() == {"success": True}, answer.text
    progress = wait_for_step(api, "importer_done")
    count = progress["count"]
    assert count["completed"] + count["error"] == count["total"]
    assert count["total"] < export.records
    imported = {row[0] for row in target(db, "SELECT import_id FROM users")}
    assert "user3" not in imported
    assert len(imported & set(users)) == len(users)
    rooms = {row[0] for row in target(db, "SELECT name FROM channels")}
    assert "channel-1" not in rooms
    assert {"channel-0", "channel-2", "channel-3"} <= rooms


def test_a_slack_export_uploaded_offers_its_users_and_channels(api, tmp_path):
    export = write_slack_export(tmp_path / "slack.zip", users=12, channels=3, messages=120)
    assert api.post("uploadImportFile",
                    json=upload_body(tmp_path / "slack.zip", "slack")).json() == {"success": True}
    selection = wait_for_selection(api)
    assert selection["name"] == "Slack"
    assert len(selection["users"]) == export.users
    assert selection["message_count"] == export.messages


def test_a_bad_file_fails_its_operation_with_the_member_and_line(api, tmp_path):
    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("users.csv", "ann,ann@example.com,Ann\nbob\n")
    assert api.post("uploadImportFile", json=upload_body(path, "csv")).json() == {
        "success": True}
    deadline = time.monotonic() + 30
    while (operation := api.get("getCurrentImportOperation").json()["operation"])["status"] \
            != "importer_import_failed":
        assert time.monotonic() < deadline, operation
        time.sleep(0.05)
    assert "users.csv" in operation["failure"]["message"]
    assert "line 2" in operation["failure"]["message"]


def test_uploaded_files_live_in_the_files_directory_until_their_operation_is_replaced(
    api, db, tmp_path,
):
    write_csv_export(tmp_path / "one.zip", users=3, channels=1, messages=3)
    api.post("uploadImportFile", json=upload_body(tmp_path / "one.zip", "csv"))
    first = api.get("getCurrentImportOperation").json()["operation"]["_id"]
    wait_for_selection(api)
    files = db.with_name(db.name + "-files")
    assert (files / first / "one.zip").read_bytes() == (tmp_path / "one.zip").read_bytes()
    assert oct((files / first / "one.zip").stat().st_mode & 0o777) == "0o600"
    api.post("import.new")
    assert not (files / first).exists()
    api.post("import.clear")
    assert [p.name for p in files.iterdir() if p.name != "pending"] == []


def test_importers_list_names_the_file_importers(api):
    listed = api.get("importers.list").json()
    assert {"key": "csv", "name": "CSV"} in listed
    assert {"key": "slack", "name": "Slack"} in listed
    assert {"key": "slack-users", "name": "Slack_Users"} in listed
    assert all(entry["key"] != "api" for entry in listed)


@pytest.mark.parametrize(("call", "body", "message"), [
    ("uploadImportFile", {"contentType": "x", "fileName": "a.zip", "importerKey": "csv"},
     "body: must have required property 'binaryContent'"),
    ("uploadImportFile", {"binaryContent": "", "contentType": "x", "fileName": "a.zip",
                          "importerKey": "csv", "extra": 1},
     "body: must NOT have additional properties (extra)"),
    ("uploadImportFile", {"binaryContent": 5, "contentType": "x", "fileName": "a.zip",
                          "importerKey": "csv"},
     "body.binaryContent: must be a string"),
    ("uploadImportFile", {"binaryContent": "not base64!", "contentType": "x",
                          "fileName": "a.zip", "importerKey": "csv"},
     "body.binaryContent: must be base64-encoded"),
    ("startImport", {}, "body: must have required property 'input'"),
    ("startImport", {"input": {"users": {"list": [1]}}},
     "body.input.users.list[0]: must be a string"),
    ("startImport", {"input": {"groups": {}}},
     "body.input: must NOT have additional properties (groups)"),
    ("downloadPendingFiles", {"x": 1}, "body: must NOT have additional properties (x)"),
])
def test_parameters_that_do_not_fit_are_invalid_params(api, call, body, message):
    answer = api.post(call, json=body)
    assert answer.status_code == 400
    assert answer.json() == {"success": False, "errorType": "error-invalid-params",
                             "error": message}


@pytest.mark.parametrize("call", ["getImportFileData", "getImportProgress", "importers.list",
                                  "getCurrentImportOperation", "getLatestImportOperations"])
def test_a_query_parameter_where_none_is_declared_is_invalid_params(api, call):
    answer = api.get(call, params={"count": "5"})
    assert answer.status_code == 400
    assert answer.json() == {"success": False, "errorType": "error-invalid-params",
                             "error": "query: must NOT have additional properties (count)"}


def test_an_unknown_importer_is_a_meteor_error(api):
    body = {"binaryContent": "", "contentType": "x", "fileName": "a.zip", "importerKey": "nope"}
    answer = api.post("uploadImportFile", json=body)
    assert answer.status_code == 400
    assert answer.json() == {
        "success": False, "error": "The importer (nope) has no import class defined."
        " [error-importer-not-defined]", "errorType": "error-importer-not-defined",
        "details": "uploadImportFile",
    }


@pytest.fixture(scope="module")
def empty_api(tmp_path_factory):
    """A server on a fresh database, where no operation is ever made."""
    db = tmp_path_factory.mktemp("empty") / "fresh.db"
    admin = add_user(db, "admin", *ADMIN)
    with Server(db) as server, httpx.Client(base_url=server.url + "/api/v1/",
                                            headers=headers(admin), timeout=30) as client:
        yield client


@pytest.mark.parametrize(("method", "call", "body"), [
    ("GET", "getImportProgress", None),
    ("GET", "getImportFileData", None),
    ("POST", "startImport", {"input": {}}),
])
def test_without_an_operation_the_calls_are_meteor_errors(empty_api, method, call, body):
    answer = empty_api.request(method, call, json=body)
    assert answer.status_code == 400
    assert answer.json() == {
        "success": False, "error": "Import Operation Not Found [error-operation-not-found]",
        "errorType": "error-operation-not-found", "details": call,
    }


def test_with_no_operation_the_current_one_has_no_operation_key(empty_api):
    answer = empty_api.get("getCurrentImportOperation")
    assert json.loads(answer.text) == {"success": True}


# -- downloadPublicImportFile and the pending downloads: fetched on loopback ------------------


class Files(QuietHandler):
    """``/export.zip`` (the test's export) and ``/avatar/<n>``."""

    export = b""

    def do_GET(self):  # noqa: N802 - the name http.server calls
        if self.path == "/export.zip":
            self.answer(200, self.export, [("Content-Length", str(len(self.export)))])
        elif self.path.startswith("/avatar/"):
            body = self.path.encode()
            self.answer(200, body, [("Content-Length", str(len(body)))])
        else:
            self.answer(404, b"no", [("Content-Length", "2")])


@pytest.fixture(scope="module")
def files_site():
    with serving(Files) as httpd:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"


@pytest.fixture(scope="module")
def open_api(tmp_path_factory):
    """A server that may fetch from loopback, reading local paths under its --import-dir."""
    folder = tmp_path_factory.mktemp("open")
    (folder / "imports").mkdir()
    admin = add_user(folder / "open.db", "admin", *ADMIN)
    options = ["--allow-private-urls", "--import-dir", str(folder / "imports"),
               "--files", str(folder / "files")]
    with Server(folder / "open.db", options=options) as server, httpx.Client(
        base_url=server.url + "/api/v1/", headers=headers(admin), timeout=30,
    ) as client:
        client.folder = folder
        yield client


def test_a_loopback_url_is_refused_without_allow_private_urls_and_nothing_changes(
    api, files_site,
):
    before = api.get("getCurrentImportOperation").json()
    answer = api.post("downloadPublicImportFile",
                      json={"fileUrl": files_site + "/export.zip", "importerKey": "csv"})
    assert answer.status_code == 400
    assert answer.json()["success"] is False
    assert "127.0.0.1" in answer.json()["error"]
    assert api.get("getCurrentImportOperation").json() == before


def test_a_url_is_fetched_with_allow_private_urls_then_loaded(open_api, files_site, tmp_path):
    export = write_csv_export(tmp_path / "export.zip", users=6, channels=2, messages=40)
    Files.export = (tmp_path / "export.zip").read_bytes()
    answer = open_api.post("downloadPublicImportFile",
                           json={"fileUrl": files_site + "/export.zip", "importerKey": "csv"})
    assert answer.json() == {"success": True}, answer.text
    selection = wait_for_selection(open_api)
    assert len(selection["users"]) == export.users
    assert selection["message_count"] == export.messages
    operation = open_api.get("getCurrentImportOperation").json()["operation"]
    assert operation["file"] == "export.zip"
    folder = open_api.folder / "files" / operation["_id"]
    assert (folder / "export.zip").read_bytes() == Files.export


def test_a_download_that_fails_fails_its_operation(open_api, files_site):
    answer = open_api.post("downloadPublicImportFile",
                           json={"fileUrl": files_site + "/missing", "importerKey": "csv"})
    assert answer.json() == {"success": True}
    deadline = time.monotonic() + 30
    while (operation := open_api.get("getCurrentImportOperation").json()["operation"])[
            "status"] != "importer_import_failed":
        assert time.monotonic() < deadline, operation
        time.sleep(0.05)
    assert "404" in operation["failure"]["message"]


def test_a_local_path_is_read_only_inside_the_import_dir(open_api, tmp_path):
    write_csv_export(open_api.folder / "imports" / "local.zip", users=3, channels=1, messages=3)
    answer = open_api.post("downloadPublicImportFile",
                           json={"fileUrl": str(open_api.folder / "imports" / "local.zip"),
                                 "importerKey": "csv"})
    assert answer.json() == {"success": True}, answer.text
    assert len(wait_for_selection(open_api)["users"]) == 3
    outside = tmp_path / "outside.zip"
    write_csv_export(outside, users=3, channels=1, messages=3)
    for path in (str(outside), str(open_api.folder / "imports" / ".." / "open.db")):
        answer = open_api.post("downloadPublicImportFile",
                               json={"fileUrl": path, "importerKey": "csv"})
        assert answer.status_code == 400, path
        assert "import directory" in answer.json()["error"], answer.json()


def test_pending_avatars_of_imported_users_are_counted_then_fetched(open_api, files_site):
    open_api.post("import.new")
    users = [{"username": f"a{n}", "emails": [f"a{n}@example.com"], "importIds": [f"a{n}"],
              "avatarUrl": f"{files_site}/avatar/{n}"} for n in range(3)]
    open_api.post("import.addUsers", json={"users": users})
    open_api.post("import.run")
    wait_for_step(open_api, "importer_done")
    assert open_api.post("downloadPendingFiles").json() == {"count": 0, "success": True}
    assert open_api.get("getImportProgress").json()["step"] == "importer_done"
    assert open_api.post("downloadPendingAvatars").json() == {"count": 3, "success": True}
    progress = wait_for_step(open_api, "importer_done")
    assert (progress["key"], progress["name"]) == ("pending-avatars", "Pending Avatars")
    assert progress["count"] == {"completed": 3, "total": 3, "error": 0}
    fetched = sorted((open_api.folder / "files" / "pending").rglob("*"))
    contents = {p.read_bytes() for p in fetched if p.is_file()}
    assert contents == {f"/avatar/{n}".encode() for n in range(3)}
    assert open_api.post("downloadPendingAvatars").json() == {"count": 0, "success": True}
