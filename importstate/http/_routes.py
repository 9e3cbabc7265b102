"""The route table of the REST API (SPEC §7): the server and its OpenAPI document are built from it.

Each :class:`Endpoint` row holds what the server needs (path, method,
permission, handler) and what the document says of it (summary, body and
response schemas, whether it can fail with 400). Schemas name the document's
components with :func:`~importstate.http._schema.ref`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

import attrs
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from importstate.accounts import Accounts, ApiUser, Permission
from importstate.aio import AsyncImportService
from importstate.http._body import Body, users_in
from importstate.http._schema import STRING, Schema, constant, object_schema, ref
from importstate.http._worker import RunWorker
from importstate.service import LATEST_LIMIT
from importstate.steps import ProgressStep, State

#: Where every route lives.
PREFIX: Final = "/api/v1/"
#: The headers that carry a caller's credentials (``userId`` and ``authToken`` of ``login``).
USER_ID_HEADER: Final = "X-User-Id"
AUTH_TOKEN_HEADER: Final = "X-Auth-Token"  # noqa: S105 - a header name, not a secret

# The bodies SPEC §7 fixes; the document's schemas of them are derived from these values.
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
    """What an endpoint handler gets: the server's parts and the caller."""

    service: AsyncImportService
    worker: RunWorker
    accounts: Accounts
    request: Request
    user: ApiUser
    body: Body


Handler = Callable[[Call], Awaitable[object]]


@attrs.frozen
class Endpoint(Route):
    """An authenticated route, needing ``permission``; ``None`` needs a logged-in user only.

    The handler's result is sent as JSON with status 200 and fits
    ``response``. ``body`` is the schema of the JSON request body, ``None``
    for none. The call can fail with 400 when ``fails`` or when it takes a
    body (which may not parse).
    """

    permission: Permission | None
    response: Schema
    handler: Handler
    body: Schema | None = None
    fails: bool = False


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
    return _ok()


async def _current(call: Call) -> object:
    operation = await call.service.current_operation()
    return _ok(operation=operation.to_wire() if operation is not None else None)


async def _progress(call: Call) -> object:
    return _ok(**await call.service.progress())


async def _cancel(call: Call) -> object:
    operation = await call.service.cancel()
    return _ok(operation=operation.to_wire())


async def _logout(call: Call) -> object:
    await run_in_threadpool(
        call.accounts.logout, call.user.id, call.request.headers[AUTH_TOKEN_HEADER],
    )
    return LOGGED_OUT


_SUCCESS: Final = ref("Success")
_WITH_OPERATION: Final = _ok_schema(["operation"], operation=ref("Operation"))
_STEP: Final[Schema] = {"enum": [step.value for step in ProgressStep]}
_COUNTER: Final[Schema] = {"type": "integer", "minimum": 0}

#: Every authenticated endpoint of SPEC §7, in its order.
ENDPOINTS: Final = (
    Endpoint(
        "GET", "getLatestImportOperations",
        f"The {LATEST_LIMIT} most recently updated operations, newest first (a bare array)",
        Permission.VIEW_IMPORT_OPERATIONS,
        {"type": "array", "maxItems": LATEST_LIMIT, "items": ref("Operation")},
        _latest,
    ),
    Endpoint(
        "POST", "import.new", "Clear every operation and create a new one",
        Permission.RUN_IMPORT, _WITH_OPERATION, _new,
    ),
    Endpoint(
        "GET", "import.status", "The state of the current operation",
        Permission.RUN_IMPORT,
        _ok_schema(["state"], {"operation": ref("Operation")},
                   state={"enum": [state.value for state in State]}),
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
        _ok_schema(["operation"], operation={"anyOf": [ref("Operation"), {"type": "null"}]}),
        _current,
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
        _progress, fails=True,
    ),
    Endpoint(
        "POST", "import.cancel",
        "Cancel the current operation; a running import stops at its next batch",
        Permission.RUN_IMPORT, _WITH_OPERATION, _cancel, fails=True,
    ),
    Endpoint(
        "POST", "logout", "Invalidate the auth token of this request",
        None, constant(LOGGED_OUT), _logout,
    ),
)
