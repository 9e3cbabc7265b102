"""Pending downloads: the target records avatars and message files; the service fetches them."""

import datetime as dt
import json

import pytest
from loopback_http import QuietHandler, serving

from importstate import (
    ImportService,
    MemoryStore,
    PendingDownload,
    PendingKind,
    ProgressStep,
    SQLiteStore,
    UsersTableImporter,
)
from importstate._setup import open_setup
from importstate.cli import main
from importstate.errors import InvalidTransition
from importstate.fetch import Fetcher, UrlRules
from importstate.machine import Event
from importstate.pending import PENDING_NAMES, PendingSource

AVATAR = b"\x89PNG avatar bytes"


class Files(QuietHandler):
    """``/ok/<anything>`` answers the path's bytes (the avatar for /ok/avatar); others are 404."""

    def do_GET(self):  # noqa: N802 - the name http.server calls
        if self.path.startswith("/ok/"):
            body = AVATAR if self.path == "/ok/avatar" else self.path.encode()
            self.answer(200, body, [("Content-Length", str(len(body)))])
        else:
            self.answer(404, headers=[("Content-Length", "0")])


@pytest.fixture(scope="module")
def base():
    with serving(Files) as httpd:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"


@pytest.fixture
def target(tmp_path):
    importer = UsersTableImporter(tmp_path / "target.db")
    yield importer
    importer.close()


@pytest.fixture
def svc(target):
    return ImportService(MemoryStore(), {"api": target})


FETCH = Fetcher(UrlRules(allow_private=True), max_bytes=1000, timeout=5)


def user(n, avatar=None):
    doc = {"emails": [f"u{n}@example.com"], "importIds": [f"u{n}"], "username": f"u{n}"}
    if avatar is not None:
        doc["avatarUrl"] = avatar
    return doc


def message(n, attached=None):
    doc = {"importIds": [f"m{n}"], "rid": "general", "u": {"_id": "u1"}, "msg": f"hi {n}",
           "ts": 1_700_000_000_000 + n}
    if attached is not None:
        doc["_importFile"] = attached
    return doc


def import_records(svc, users=(), messages=()):
    svc.new_operation("admin")
    svc.add_users(list(users))
    if messages:
        svc.add_channels([{"importIds": ["general"], "name": "general"}])
        svc.add_messages(list(messages))
    return svc.run()


def test_the_target_records_avatars_and_message_files_once(target, svc):
    attached = {"downloadUrl": "https://files.example/a.pdf", "name": "a.pdf",
                "type": "application/pdf", "size": 1234}
    import_records(
        svc, [user(1, "https://files.example/u1.png"), user(2), user(3, "")],
        [message(1, attached), message(2), message(3, {"name": "no url"})],
    )
    assert target.pending_downloads(PendingKind.AVATARS) == [
        PendingDownload(PendingKind.AVATARS, "u1", "https://files.example/u1.png"),
    ]
    assert target.pending_downloads("files") == [
        PendingDownload(PendingKind.FILES, "m1", "https://files.example/a.pdf", "a.pdf",
                        "application/pdf", 1234),
    ]
    # A batch that reaches the target again records nothing twice.
    assert target.import_batch([user(1, "https://files.example/other.png")]) == [None]
    assert len(target.pending_downloads(PendingKind.AVATARS)) == 1
    assert isinstance(target, PendingSource)


def test_downloaded_takes_a_row_out_of_pending_a_failure_keeps_it(target):
    target.import_batch([user(1, "https://a.example/1"), user(2, "https://a.example/2")])
    target.downloaded(PendingKind.AVATARS, "u1", path="/files/avatars/u1")
    target.downloaded(PendingKind.AVATARS, "u2", error="HTTP 404")
    assert target.fetched(PendingKind.AVATARS) == {"u1": "/files/avatars/u1"}
    [left] = target.pending_downloads(PendingKind.AVATARS)
    assert (left.import_id, left.error) == ("u2", "HTTP 404")
    with pytest.raises(ValueError, match="either the path"):
        target.downloaded(PendingKind.AVATARS, "u2")
    with pytest.raises(ValueError, match="either the path"):
        target.downloaded(PendingKind.AVATARS, "u2", path="p", error="e")


def test_the_kinds_name_their_importers():
    assert PENDING_NAMES == {"pending-files": "Pending Files", "pending-avatars": "Pending Avatars"}
    assert PendingKind.FILES.importer_key == "pending-files"
    assert PendingKind.AVATARS.importer_name == "Pending Avatars"


def test_nothing_pending_ends_the_operation_done_at_once(svc, target):
    old = svc.new_operation("admin")
    operation = svc.begin_pending("avatars", target, user_id="admin")
    assert operation.status is ProgressStep.DONE
    assert (operation.type, operation.importer_key, operation.user) == (
        "Pending Avatars", "pending-avatars", "admin",
    )
    assert operation.count.to_wire() == {"total": 0, "completed": 0, "error": 0}
    assert svc.current_operation() == operation
    assert [op.valid for op in svc.latest_operations() if op.id == old.id] == [False]
    assert svc.progress() == {
        "key": "pending-avatars", "name": "Pending Avatars", "step": "importer_done",
        "count": {"completed": 0, "total": 0, "error": 0},
    }


def test_begin_counts_then_fetch_downloads_each_file(svc, target, base, tmp_path):
    import_records(svc, [user(1, f"{base}/ok/avatar"), user(2, f"{base}/gone"),
                         user(3, f"{base}/ok/u3")])
    begun = svc.begin_pending(PendingKind.AVATARS, target)
    assert begun.status is ProgressStep.IMPORTING_FILES
    assert svc.status()["state"] == "importing"
    assert begun.count.to_wire() == {"total": 3, "completed": 0, "error": 0}

    ended = svc.fetch_pending(begun, target, FETCH, tmp_path / "files")
    assert ended.status is ProgressStep.DONE
    assert ended.count.to_wire() == {"total": 3, "completed": 2, "error": 1}
    avatars = tmp_path / "files" / "avatars"
    assert (avatars / "u1").read_bytes() == AVATAR
    assert (avatars / "u3").read_bytes() == b"/ok/u3"
    assert sorted(p.name for p in avatars.iterdir()) == ["u1", "u3"]  # no partial file left
    assert target.fetched("avatars") == {"u1": str(avatars / "u1"), "u3": str(avatars / "u3")}
    [failed] = target.pending_downloads("avatars")
    assert failed.import_id == "u2"
    assert failed.error == f"Download failed: {base}/gone: HTTP 404 Not Found"

    # A second round tries only what is still pending.
    again = svc.download_pending("avatars", source=target, fetch=FETCH, files_dir=tmp_path / "f")
    assert again.count.to_wire() == {"total": 1, "completed": 0, "error": 1}


def test_message_files_are_fetched_by_the_same_rules(svc, target, base, tmp_path):
    import_records(svc, [user(1)], [
        message(1, {"downloadUrl": f"{base}/ok/report.pdf", "name": "report.pdf"}),
        message(2, {"downloadUrl": "ftp://files.example/x"}),
    ])
    private = Fetcher(UrlRules(), max_bytes=1000)
    ended = svc.download_pending("files", source=target, fetch=private, files_dir=tmp_path)
    assert ended.count.to_wire() == {"total": 2, "completed": 0, "error": 2}
    errors = {d.import_id: d.error for d in target.pending_downloads("files")}
    assert errors["m1"].endswith("127.0.0.1 is a loopback address")
    assert "scheme 'ftp' is not allowed" in errors["m2"]

    ended = svc.download_pending("files", source=target, fetch=FETCH, files_dir=tmp_path)
    assert ended.count.to_wire() == {"total": 2, "completed": 1, "error": 1}
    assert (tmp_path / "files" / "m1").read_bytes() == b"/ok/report.pdf"


def test_an_import_id_cannot_leave_the_files_directory(svc, target, base, tmp_path):
    target.import_batch([user(1) | {"importIds": ["../../escape"], "avatarUrl": f"{base}/ok/x"},
                         user(2) | {"importIds": [".hidden"], "avatarUrl": f"{base}/ok/y"}])
    files = tmp_path / "files"
    svc.download_pending("avatars", source=target, fetch=FETCH, files_dir=files)
    assert sorted(p.name for p in (files / "avatars").iterdir()) == [
        "%2E.%2F..%2Fescape", "%2Ehidden",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["files", "target.db",
                                                          "target.db-shm", "target.db-wal"]


def test_a_cancel_stops_the_downloads_before_the_next_file(svc, target, base, tmp_path):
    import_records(svc, [user(n, f"{base}/ok/{n}") for n in range(1, 4)])

    def cancel_during_first(url, dest):
        written = FETCH(url, dest)
        if svc.current_operation().status is ProgressStep.IMPORTING_FILES:
            svc.cancel()
        return written

    ended = svc.download_pending(
        "avatars", source=target, fetch=cancel_during_first, files_dir=tmp_path,
    )
    assert ended.status is ProgressStep.IMPORT_CANCELLED
    assert ended.count.to_wire() == {"total": 3, "completed": 0, "error": 0}
    assert list(target.fetched("avatars")) == ["u1"]  # fetched, but no longer counted
    assert len(target.pending_downloads("avatars")) == 2


def test_a_new_operation_fails_the_downloads_it_replaced(svc, target, base, tmp_path):
    import_records(svc, [user(n, f"{base}/ok/{n}") for n in range(1, 3)])
    begun = svc.begin_pending("avatars", target)

    def replace(url, dest):
        svc.new_operation("someone")
        return FETCH(url, dest)

    ended = svc.fetch_pending(begun, target, replace, tmp_path)
    assert ended.status is ProgressStep.IMPORT_FAILED
    assert not ended.valid
    assert ended.count.to_wire() == {"total": 2, "completed": 0, "error": 0}
    assert len(target.pending_downloads("avatars")) == 1


def test_an_error_of_the_target_fails_the_operation(svc, target, base, tmp_path):
    import_records(svc, [user(1, f"{base}/ok/1")])
    begun = svc.begin_pending("avatars", target)
    target.close()
    ended = svc.fetch_pending(begun, target, FETCH, tmp_path)
    assert ended.status is ProgressStep.IMPORT_FAILED
    assert "closed" in ended.failure.message


def test_downloading_enters_importing_only_from_new(svc):
    operation = svc.new_operation("admin")
    downloading = operation.fire(Event.DOWNLOAD, at=operation.ts)
    assert downloading.status is ProgressStep.IMPORTING_FILES
    svc.add_users([user(1)])
    ready = svc.current_operation()
    with pytest.raises(InvalidTransition, match="'download' is not allowed in state 'ready'"):
        ready.fire(Event.DOWNLOAD, at=ready.ts)


def test_fetch_pending_refuses_an_operation_of_another_importer(svc, target, tmp_path):
    operation = svc.new_operation("admin")
    with pytest.raises(ValueError, match="'api' is not a valid PendingKind"):
        svc.fetch_pending(operation, target, FETCH, tmp_path)


def test_downloads_whose_worker_died_are_failed_by_resume_and_sweep(target, base, tmp_path):
    now = [dt.datetime(2026, 1, 1, tzinfo=dt.UTC)]
    svc = ImportService(SQLiteStore(tmp_path / "ops.db"), {"api": target}, clock=lambda: now[0])
    import_records(svc, [user(1, f"{base}/ok/1")])
    begun = svc.begin_pending("avatars", target)
    now[0] += dt.timedelta(seconds=30)
    assert svc.stale_operations(dt.timedelta(minutes=1)) == []  # begun with a heartbeat
    [stale] = svc.stale_operations(dt.timedelta(seconds=10))
    assert stale.id == begun.id
    [swept] = svc.sweep_stale(dt.timedelta(seconds=10), "resume")
    assert swept.status is ProgressStep.IMPORT_FAILED
    assert swept.failure.message.startswith("The downloads stopped before the end")
    assert len(target.pending_downloads("avatars")) == 1  # still there to ask for again

    begun = svc.begin_pending("avatars", target)
    resumed = svc.resume()
    assert (resumed.id, resumed.status) == (begun.id, ProgressStep.IMPORT_FAILED)


def test_the_command_line_downloads_what_the_target_still_has_to_fetch(tmp_path, base, capsys):
    db = tmp_path / "importstate.db"
    setup = open_setup(db)
    try:
        import_records(setup.service, [user(1, f"{base}/ok/avatar"), user(2, f"{base}/gone")])
    finally:
        setup.close()

    assert main(["download-pending", "avatars", "--db", str(db), "--user", "ops"]) == 1
    said = capsys.readouterr().out.splitlines()
    assert said[0].endswith(": done (0 imported, 2 failed, 2 total)")  # private: both refused
    assert said[1] == ("the failed downloads stay pending, each with its error:"
                       " `importstate download-pending` tries them again")

    status = main(["download-pending", "avatars", "--db", str(db), "--allow-private-urls",
                   "--files", str(tmp_path / "out"), "--json"])
    wire = json.loads(capsys.readouterr().out)
    assert status == 1  # u2 is still a 404
    assert (wire["type"], wire["importerKey"], wire["status"]) == (
        "Pending Avatars", "pending-avatars", "importer_done",
    )
    assert wire["count"] == {"total": 2, "completed": 1, "error": 1}
    assert (tmp_path / "out" / "avatars" / "u1").read_bytes() == AVATAR


def test_ctrl_c_cancels_the_downloads_and_is_raised_again(svc, target, base, tmp_path):
    import_records(svc, [user(1, f"{base}/ok/1")])

    def interrupted(_url, _dest):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        svc.download_pending("avatars", source=target, fetch=interrupted, files_dir=tmp_path)
    assert svc.current_operation().status is ProgressStep.IMPORT_CANCELLED
    assert len(target.pending_downloads("avatars")) == 1
