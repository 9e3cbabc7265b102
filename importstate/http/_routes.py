"""The route table of the REST API: the server and its OpenAPI document come from it.

Behaviour: rest, file-api.

Each :class:`Endpoint` row holds what the server needs (path, method,
permission, handler) and what the document says of it (summary, body and
response schemas, whether it can fail with 400). Schemas name the document's
components with :func:`~importstate.http._schema.ref`.
"""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Final

import attrs
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from importstate._files import open_file_private
from importstate._limits import Limits
from importstate.accounts import Accounts, ApiUser, Permission
from importstate.aio import AsyncImportService
from importstate.diagrams import Format, state_diagram
from importstate.errors import InvalidSelection, SelectionNotReady
from importstate.fetch import Fetcher, vet
from importstate.http._body import Body, users_in
from importstate.http._import_files import ImportFiles
from importstate.http._params import InvalidParams, check
from importstate.http._schema import STRING, Schema, constant, object_schema, ref
from importstate.http._upload import Upload
from importstate.http._worker import Progress, RunWorker
from importstate.loaders import available, loader_for
from importstate.model import Operation
from importstate.pending import PendingDownload, PendingKind, PendingSource
from importstate.selection import Selection
from importstate.service import LATEST_LIMIT, ImportService
from importstate.steps import ProgressStep, State

#: Where every route lives.
PREFIX: Final = "/api/v1/"
#: The headers that carry a caller's credentials (``userId`` and ``authToken`` of ``login``).
USER_ID_HEADER: Final = "X-User-Id"
AUTH_TOKEN_HEADER: Final = "X-Auth-Token"  # noqa: S105 - a header name, not a secret

# The bodies Behaviour: rest fixes; the document's schemas of them are derived from these values.
#: Missing or wrong credentials (401).
UNAUTHORIZED: Final = {"status": "error", "message": "You must be logged in to do this."}
#: Missing permission (403).
FORBIDDEN: Final = {
    "success": False,
    "error": "User does not have the permissions required for this action [error-unauthorized]",
}
#: Wrong name or password at ``login`` (401).
LOGIN_FAILED: Final = {"status": "error", "error": "Unauthorized", "message": "Unauthorized"}
#: Too many failed logins (429): these fields, and a ``message`` saying how long to wait.
LOGIN_THROTTLED: Final = {"status": "error", "error": "error-too-many-requests"}
#: ``logout``'s answer.
LOGGED_OUT: Final = {"status": "success", "data": {"message": "You've been logged out!"}}
#: What an endpoint's success body carries beside its fields (but the bare array of
#: ``getLatestImportOperations`` and ``logout``'s fixed body).
SUCCESS: Final = {"success": True}


@attrs.frozen
class Route:
    """``method /api/v1/<name>``, and the summary the document gives it."""

    method: str
    name: str
    summary: str

    @property
    def path(self) -> str:
        """The route's URL path."""
        return PREFIX + self.name


@attrs.frozen
class Call:
    """What an endpoint handler gets: the server's parts, the caller, and its parameters.

    ``params`` is the body parsed and checked against the endpoint's schema
    when the endpoint is ``strict`` (else empty).
    """

    service: AsyncImportService
    worker: RunWorker
    accounts: Accounts
    files: ImportFiles
    limits: Limits
    fetcher: Fetcher
    pending: PendingSource | None
    request: Request
    user: ApiUser
    body: Body
    params: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def sync(self) -> ImportService:
        """The service itself, for work already in a worker thread."""
        return self.service.service


Handler = Callable[[Call], Awaitable[object]]


@attrs.frozen
class Endpoint(Route):
    """An authenticated route, needing ``permission``; ``None`` needs a logged-in user only.

    The handler's result is sent as JSON with status 200 and fits
    ``response``. ``body`` is the schema of the JSON request body, ``None``
    for none. The call can fail with 400 when ``fails`` or when it takes a
    body (which may not parse).

    A ``strict`` endpoint (Behaviour: file-api) refuses query parameters and a body
    that does not fit ``body`` (none: an empty body or ``{}``) with
    ``error-invalid-params`` (``query``, an object of strings, names the query
    parameters it takes; they join ``params``); with ``raw_body`` its handler parses the body
    itself. A ``meteor`` endpoint answers the errors Rocket.Chat raises as
    ``Meteor.Error`` in that envelope, ``details`` naming the endpoint.
    """

    permission: Permission | None
    response: Schema
    handler: Handler
    body: Schema | None = None
    query: Schema | None = None
    fails: bool = False
    strict: bool = False
    raw_body: bool = False
    meteor: bool = False


#: ``login``: the one route that takes a name and password instead of credentials.
LOGIN: Final = Route("POST", "login", "Log in with a name and password; JSON or form-encoded")
#: ``openapi.json``: the document, served to anyone.
OPENAPI: Final = Route("GET", "openapi.json", "This document")


def _ok(**fields: object) -> dict[str, object]:
    return {**fields, **SUCCESS}


def _ok_schema(
    required: list[str], optional: dict[str, Schema] | None = None, **props: Schema,
) -> Schema:
    """The schema of an :func:`_ok` body with ``props``."""
    success = {name: constant(value) for name, value in SUCCESS.items()}
    return object_schema([*required, *success], optional, **props, **success)


async def _latest(call: Call) -> object:
    return [op.to_wire() for op in await call.service.latest_operations()]


async def _new(call: Call) -> object:
    operation = await call.service.new_operation(call.user.id)
    call.files.keep(operation.id)
    return _ok(operation=operation.to_wire())


async def _status(call: Call) -> object:
    return _ok(**await call.service.status())


async def _add_users(call: Call) -> object:
    # Parsed as it is staged, chunk by chunk, in one transaction: all or none.
    await call.service.add_users_from(users_in(call.body))
    return _ok()


async def _run(call: Call) -> object:
    await run_in_threadpool(call.worker.start)
    return _ok()


async def _clear(call: Call) -> object:
    await call.service.clear()
    call.files.keep(None)
    return _ok()


async def _current(call: Call) -> object:
    operation = await call.service.current_operation()
    # Rocket.Chat's JSON has no "operation" when there is none (its value is undefined).
    return _ok(operation=operation.to_wire()) if operation is not None else _ok()


async def _progress(call: Call) -> object:
    return _ok(**await call.service.progress())


async def _cancel(call: Call) -> object:
    operation = await call.service.cancel()
    return _ok(operation=operation.to_wire())


async def _upload(call: Call) -> object:
    upload = await run_in_threadpool(Upload, call.body)
    check(upload.fields, _UPLOAD_BODY, "body")
    fields = upload.fields
    key = _file_importer(call.sync, fields["importerKey"])
    await run_in_threadpool(_receive, call, upload, key)
    return _ok()


def _receive(call: Call, upload: Upload, key: str) -> None:
    """Write the uploaded file to the files directory, then load it in the background."""
    fields = upload.fields
    path = call.files.incoming(fields["fileName"])
    try:
        with open_file_private(path) as out:
            upload.write(out)
    except BaseException:
        call.files.discard(path)
        raise

    def load(progress: Progress) -> Operation:
        return call.sync.load_file(
            path, key, user_id=call.user.id, file_name=fields["fileName"],
            content_type=fields["contentType"] or None, progress=progress,
        )

    _loaded(call, path, load)


def _loaded(call: Call, path: Path, load: Callable[[Progress], Operation]) -> None:
    """Load in the background; once it is over, its file is filed under its operation."""

    def ended(operation_id: str) -> None:
        call.files.adopt(path, operation_id)
        current = call.sync.current_operation()
        call.files.keep(current.id if current is not None else None)

    try:
        call.worker.load(load, ended=ended)
    except BaseException:
        call.files.discard(path)
        raise


async def _download(call: Call) -> object:
    fields = call.params
    key = _file_importer(call.sync, fields["importerKey"])
    url = fields["fileUrl"]
    # What can be refused before anything changes is: the scheme, the addresses, the path.
    await run_in_threadpool(vet, url, call.fetcher.rules)
    await run_in_threadpool(_fetch_and_load, call, url, key)
    return _ok()


def _fetch_and_load(call: Call, url: str, key: str) -> None:
    name = PurePosixPath(urllib.parse.urlsplit(url).path).name or "download"
    path = call.files.incoming(name)

    def load(progress: Progress) -> Operation:
        return call.sync.load_file(
            path, key, user_id=call.user.id, file_name=name, progress=progress,
            download=functools.partial(call.fetcher, url),
        )

    _loaded(call, path, load)


async def _pending_files(call: Call) -> object:
    return await _pending(call, PendingKind.FILES)


async def _pending_avatars(call: Call) -> object:
    return await _pending(call, PendingKind.AVATARS)


async def _pending(call: Call, kind: PendingKind) -> object:
    """Count what the target has still to fetch, in a new operation; fetch it in the background."""
    source = call.pending if call.pending is not None else _NOTHING_PENDING
    operation = await run_in_threadpool(
        call.sync.begin_pending, kind, source, user_id=call.user.id,
    )
    call.files.keep(operation.id)
    if operation.state is State.IMPORTING:
        folder = call.files.pending()
        call.worker.background(
            functools.partial(call.sync.fetch_pending, operation, source, call.fetcher,
                              folder),
            "importstate-pending",
        )
    return _ok(count=operation.count.total)


class _NothingPending:
    """The source of a server whose importer records no downloads: nothing is pending."""

    def pending_downloads(self, kind: PendingKind) -> list[PendingDownload]:
        """None, of either kind."""
        del kind
        return []

    def downloaded(
        self, kind: PendingKind, import_id: str, *, path: str | None = None,
        error: str | None = None,
    ) -> None:
        """Never called: nothing is pending."""
        del kind, import_id, path, error


_NOTHING_PENDING: Final = _NothingPending()


def _file_importer(service: ImportService, key: str) -> str:
    """``key``, if a file importer and an importer to run its imports are registered under it.

    Raises:
        ImporterNotDefined: either is not.
    """
    loader_for(key, service.loaders)
    service.importer_for(key)
    return key


async def _file_data(call: Call) -> object:
    try:
        offer = await call.service.selection()
    except SelectionNotReady:
        return _ok(waiting=True)
    return _ok(**offer.to_wire())


async def _start(call: Call) -> object:
    try:
        selection = Selection.from_wire(call.params["input"])
    except InvalidSelection as exc:
        where = "" if exc.field == "$" else f".{exc.field}"
        msg = f"body.input{where}: {exc.reason}"
        raise InvalidParams(msg) from None
    await run_in_threadpool(call.worker.start, selection)
    return _ok()


async def _importers(call: Call) -> object:
    loaders = {**available(), **call.sync.loaders}
    return [{"key": key, "name": loader.name} for key, loader in loaders.items()
            if key in call.sync.importers]


async def _diagram(call: Call) -> object:
    operation = await call.service.current_operation()
    state = operation.state if operation is not None else State.NONE
    drawing = await run_in_threadpool(state_diagram, format=Format.SVG, highlight=state)
    return _ok(state=state.value, svg=drawing)


async def _failures(call: Call) -> object:
    records = await run_in_threadpool(lambda: list(call.sync.failed_records()))
    return _ok(failures=records)


async def _history(call: Call) -> object:
    entries = await call.service.history(call.params.get("operationId"))
    return _ok(history=[entry.to_wire() for entry in entries])


async def _logout(call: Call) -> object:
    await run_in_threadpool(
        call.accounts.logout, call.user.id, call.request.headers[AUTH_TOKEN_HEADER],
    )
    return LOGGED_OUT


_COUNTER: Final[Schema] = {"type": "integer", "minimum": 0}
_SUCCESS: Final = ref("Success")
_NAME: Final[Schema] = {"type": "string", "minLength": 1}
_UPLOAD_BODY: Final = object_schema(
    ["binaryContent", "contentType", "fileName", "importerKey"],
    binaryContent={"type": "string", "description": "the file, base64-encoded"},
    contentType=STRING, fileName=_NAME, importerKey=_NAME,
)
_DOWNLOAD_BODY: Final = object_schema(
    ["fileUrl", "importerKey"],
    fileUrl={"type": "string", "minLength": 1, "description": "http(s) URL, or a path in the"
             " server's --import-dir"},
    importerKey=_NAME,
)
_PICK: Final = object_schema(
    [], {"all": {"type": "boolean"}, "list": {"type": "array", "items": STRING}},
)
_START_BODY: Final = object_schema(
    ["input"], input=object_schema([], {"users": _PICK, "channels": _PICK}),
)
_NO_BODY: Final = object_schema([])
_SELECTION: Final = _ok_schema(
    [], {
        "waiting": {"const": True}, "name": STRING, "message_count": _COUNTER,
        "users": {"type": "array", "items": {"type": "object"}},
        "channels": {"type": "array", "items": {"type": "object"}},
        "contacts": {"type": "array", "items": {"type": "object"}},
    },
)
_PENDING: Final = _ok_schema(["count"], count=_COUNTER)
_WITH_OPERATION: Final = _ok_schema(["operation"], operation=ref("Operation"))
_STEP: Final[Schema] = {"enum": [step.value for step in ProgressStep]}
_STATE: Final[Schema] = {"enum": [state.value for state in State]}
_FAILED_RECORD: Final = object_schema(
    ["_id", "data", "dataType", "errors"],
    _id=STRING, data={"type": "object"}, dataType=STRING,
    errors={"type": "array", "items": {"type": "object"}},
)

#: Every authenticated endpoint of Behaviour: rest, in its order.
ENDPOINTS: Final = (
    Endpoint(
        "GET", "getLatestImportOperations",
        f"The {LATEST_LIMIT} most recently updated operations, newest first (a bare array)",
        Permission.VIEW_IMPORT_OPERATIONS,
        {"type": "array", "maxItems": LATEST_LIMIT, "items": ref("Operation")},
        _latest, strict=True,
    ),
    Endpoint(
        "POST", "import.new", "Clear every operation and create a new one",
        Permission.RUN_IMPORT, _WITH_OPERATION, _new,
    ),
    Endpoint(
        "GET", "import.status", "The state of the current operation",
        Permission.RUN_IMPORT,
        _ok_schema(["state"], {"operation": ref("Operation")}, state=_STATE),
        _status,
    ),
    Endpoint(
        "POST", "import.addUsers", "Stage users for the current operation; all or none",
        Permission.RUN_IMPORT, _SUCCESS, _add_users,
        body=object_schema(["users"], users={"type": "array", "items": ref("ImportUser")}),
    ),
    Endpoint(
        "POST", "import.run", "Start importing the staged users in the background",
        Permission.RUN_IMPORT, _SUCCESS, _run, fails=True,
    ),
    Endpoint(
        "POST", "import.clear", "Invalidate every operation and delete all staged users",
        Permission.RUN_IMPORT, _SUCCESS, _clear,
    ),
    Endpoint(
        "GET", "getCurrentImportOperation", "The newest operation, valid or not",
        Permission.RUN_IMPORT,
        _ok_schema([], {"operation": ref("Operation")}),
        _current, strict=True,
    ),
    Endpoint(
        "GET", "getImportProgress",
        "Importer key, name, step and counts of the current operation",
        Permission.RUN_IMPORT,
        _ok_schema(
            ["key", "name", "step", "count"], key=STRING, name=STRING, step=_STEP,
            count=object_schema(["completed", "total", "error"],
                                completed=_COUNTER, total=_COUNTER, error=_COUNTER),
        ),
        _progress, fails=True, strict=True, meteor=True,
    ),
    Endpoint(
        "POST", "import.cancel",
        "Cancel the current operation; a running import stops at its next batch",
        Permission.RUN_IMPORT, _WITH_OPERATION, _cancel, fails=True,
    ),
    Endpoint(
        "POST", "uploadImportFile",
        "Upload a file (base64) for a file importer; a new operation loads it in the background",
        Permission.RUN_IMPORT, _SUCCESS, _upload, body=_UPLOAD_BODY, fails=True,
        strict=True, raw_body=True, meteor=True,
    ),
    Endpoint(
        "POST", "downloadPublicImportFile",
        "Have the server fetch a file for a file importer; a new operation loads it in the"
        " background",
        Permission.RUN_IMPORT, _SUCCESS, _download, body=_DOWNLOAD_BODY, fails=True,
        strict=True, meteor=True,
    ),
    Endpoint(
        "GET", "getImportFileData",
        "The current operation's selection, or waiting: true while it downloads or prepares",
        Permission.RUN_IMPORT, _SELECTION, _file_data, fails=True, strict=True, meteor=True,
    ),
    Endpoint(
        "POST", "startImport",
        "Import what the selection keeps of the current operation, in the background",
        Permission.RUN_IMPORT, _SUCCESS, _start, body=_START_BODY, fails=True,
        strict=True, meteor=True,
    ),
    Endpoint(
        "GET", "importers.list", "The file importers, by key and name (a bare array)",
        Permission.RUN_IMPORT,
        {"type": "array", "items": object_schema(["key", "name"], key=STRING, name=STRING)},
        _importers, strict=True,
    ),
    Endpoint(
        "POST", "downloadPendingFiles",
        "Count the files of imported messages still to fetch, and fetch them in the background",
        Permission.RUN_IMPORT, _PENDING, _pending_files, strict=True,
    ),
    Endpoint(
        "POST", "downloadPendingAvatars",
        "Count the avatars of imported users still to fetch, and fetch them in the background",
        Permission.RUN_IMPORT, _PENDING, _pending_avatars, strict=True,
    ),
    Endpoint(
        "GET", "importstate.diagram",
        "The states diagram as SVG, the current operation's state highlighted (needs"
        " Graphviz's dot on the server)",
        Permission.RUN_IMPORT,
        _ok_schema(["state", "svg"], state=_STATE, svg=STRING),
        _diagram, fails=True, strict=True,
    ),
    Endpoint(
        "GET", "importstate.failures",
        "The current operation's staged records that failed, with their errors; passwords"
        " masked",
        Permission.RUN_IMPORT,
        _ok_schema(["failures"], failures={"type": "array", "items": _FAILED_RECORD}),
        _failures, strict=True,
    ),
    Endpoint(
        "GET", "importstate.history",
        "Every stored change of an operation's status (the current one's), oldest first:"
        " from, to, event, time and actor",
        Permission.VIEW_IMPORT_OPERATIONS,
        _ok_schema(["history"], history={"type": "array", "items": ref("HistoryEntry")}),
        _history, query=object_schema([], operationId=_NAME), fails=True, strict=True,
        meteor=True,
    ),
    Endpoint(
        "POST", "logout", "Invalidate the auth token of this request",
        None, constant(LOGGED_OUT), _logout,
    ),
)
