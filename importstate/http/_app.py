"""The REST API of SPEC §7 as a Starlette application over an :class:`ImportService`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

import attrs
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from importstate.accounts import Accounts, ApiUser, Permission
from importstate.errors import DatabaseBusy, ImportStateError, ServerStopping
from importstate.http._body import BadRequest, json_object, login_fields, read_limited
from importstate.http._openapi import openapi_document
from importstate.http._worker import RunWorker
from importstate.service import ImportService

#: Largest request body accepted, in bytes, unless the server is told otherwise.
DEFAULT_MAX_BODY: Final = 10 * 1024 * 1024
#: Where every endpoint lives.
PREFIX: Final = "/api/v1/"

#: The bodies SPEC §7 fixes.
UNAUTHORIZED: Final = {"status": "error", "message": "You must be logged in to do this."}
FORBIDDEN: Final = {
    "success": False,
    "error": "User does not have the permissions required for this action [error-unauthorized]",
}
LOGIN_FAILED: Final = {"status": "error", "error": "Unauthorized", "message": "Unauthorized"}
LOGGED_OUT: Final = {"status": "success", "data": {"message": "You've been logged out!"}}


@attrs.frozen
class Call:
    """What an endpoint handler gets: the server's parts and the caller."""

    service: ImportService
    worker: RunWorker
    accounts: Accounts
    request: Request
    user: ApiUser
    body: bytes


Handler = Callable[[Call], Awaitable[object]]


@attrs.frozen
class Endpoint:
    """One authenticated endpoint: ``method /api/v1/<name>`` needing ``permission``.

    ``permission`` ``None`` needs a logged-in user only. The handler's result
    is sent as JSON with status 200.
    """

    method: str
    name: str
    permission: str | None
    handler: Handler


def _ok(**fields: object) -> dict[str, object]:
    return {**fields, "success": True}


async def _latest(call: Call) -> object:
    return [op.to_wire() for op in call.service.latest_operations()]


async def _new(call: Call) -> object:
    operation = await run_in_threadpool(call.service.new_operation, call.user.id)
    return _ok(operation=operation.to_wire())


async def _status(call: Call) -> object:
    return _ok(**call.service.status())


async def _add_users(call: Call) -> object:
    await run_in_threadpool(_stage, call.service, call.body)
    return _ok()


def _stage(service: ImportService, body: bytes) -> None:
    document = json_object(body)
    if "users" not in document:
        msg = 'The request body must have a "users" list.'
        raise BadRequest(msg)
    users = document["users"]
    if not isinstance(users, list):
        msg = '"users" must be a list of users.'
        raise BadRequest(msg)
    service.add_users(users)


async def _run(call: Call) -> object:
    await run_in_threadpool(call.worker.start)
    return _ok()


async def _clear(call: Call) -> object:
    await run_in_threadpool(call.service.clear)
    return _ok()


async def _current(call: Call) -> object:
    operation = call.service.current_operation()
    return _ok(operation=operation.to_wire() if operation is not None else None)


async def _progress(call: Call) -> object:
    return _ok(**call.service.progress())


async def _cancel(call: Call) -> object:
    operation = await run_in_threadpool(call.service.cancel)
    return _ok(operation=operation.to_wire())


async def _logout(call: Call) -> object:
    await run_in_threadpool(
        call.accounts.logout, call.user.id, call.request.headers["x-auth-token"],
    )
    return LOGGED_OUT


#: Every authenticated endpoint of SPEC §7, in its order.
ENDPOINTS: Final = (
    Endpoint("GET", "getLatestImportOperations", Permission.VIEW_IMPORT_OPERATIONS, _latest),
    Endpoint("POST", "import.new", Permission.RUN_IMPORT, _new),
    Endpoint("GET", "import.status", Permission.RUN_IMPORT, _status),
    Endpoint("POST", "import.addUsers", Permission.RUN_IMPORT, _add_users),
    Endpoint("POST", "import.run", Permission.RUN_IMPORT, _run),
    Endpoint("POST", "import.clear", Permission.RUN_IMPORT, _clear),
    Endpoint("GET", "getCurrentImportOperation", Permission.RUN_IMPORT, _current),
    Endpoint("GET", "getImportProgress", Permission.RUN_IMPORT, _progress),
    Endpoint("POST", "import.cancel", Permission.RUN_IMPORT, _cancel),
    Endpoint("POST", "logout", None, _logout),
)


@attrs.frozen
class _Server:
    service: ImportService
    worker: RunWorker
    accounts: Accounts
    max_body: int
    document: dict[str, object]

    def route(self, endpoint: Endpoint) -> Route:
        async def respond(request: Request) -> Response:
            # 401 and 403 are decided from the headers alone, before the body is read.
            user = self._authenticate(request)
            if user is None:
                return JSONResponse(UNAUTHORIZED, 401)
            if endpoint.permission is not None and not user.may(endpoint.permission):
                return JSONResponse(FORBIDDEN, 403)
            try:
                body = await read_limited(request, self.max_body)
                call = Call(self.service, self.worker, self.accounts, request, user, body)
                return JSONResponse(await endpoint.handler(call))
            except BadRequest as exc:
                return _failure(exc.message, exc.status)
            except (DatabaseBusy, ServerStopping) as exc:
                return _failure(str(exc), 503)
            except ImportStateError as exc:
                return _failure(str(exc), 400)

        return Route(PREFIX + endpoint.name, respond, methods=[endpoint.method])

    def _authenticate(self, request: Request) -> ApiUser | None:
        user_id = request.headers.get("x-user-id")
        token = request.headers.get("x-auth-token")
        if not user_id or not token:
            return None
        return self.accounts.authenticate(user_id, token)

    async def login(self, request: Request) -> Response:
        try:
            fields = login_fields(request, await read_limited(request, self.max_body))
        except BadRequest as exc:
            return _failure(exc.message, exc.status)
        name = fields.get("user", fields.get("username"))
        password = fields.get("password")
        if not isinstance(name, str) or not isinstance(password, str):
            return JSONResponse(LOGIN_FAILED, 401)
        logged_in = await run_in_threadpool(self.accounts.login, name, password)
        if logged_in is None:
            return JSONResponse(LOGIN_FAILED, 401)
        user, credentials = logged_in
        me = {"_id": user.id, "username": user.name, "permissions": sorted(user.permissions)}
        return JSONResponse({"status": "success", "data": {**credentials.to_wire(), "me": me}})

    async def openapi(self, _request: Request) -> Response:
        return JSONResponse(self.document)


def _failure(message: str, status: int) -> Response:
    return JSONResponse({"success": False, "error": message}, status)


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for HTTPException only
    return _failure(exc.detail, exc.status_code)


def create_app(
    service: ImportService, accounts: Accounts, *, max_body: int = DEFAULT_MAX_BODY,
) -> Starlette:
    """The ASGI application of SPEC §7 over ``service``, with ``accounts`` as its users.

    ``import.run`` starts the import in a background thread of this process
    and returns at once; the app gates every importer registered with
    ``service`` so that shutting the app down holds a run between two
    batches, leaving the operation ``importing`` at its checkpoint. On
    startup the app resumes such an operation (``ImportService.resume``).
    Bodies longer than ``max_body`` bytes get 413.
    """
    worker = RunWorker(service)
    server = _Server(service, worker, accounts, max_body, openapi_document(max_body))

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(worker.resume)
        yield
        await run_in_threadpool(worker.stop)

    routes = [server.route(endpoint) for endpoint in ENDPOINTS]
    routes += [
        Route(PREFIX + "login", server.login, methods=["POST"]),
        Route(PREFIX + "openapi.json", server.openapi, methods=["GET"]),
    ]
    return Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: _http_error},
    )
