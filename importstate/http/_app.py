"""The REST API of SPEC §7 as a Starlette application, built from the route table."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Final

import attrs
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from importstate.accounts import Accounts, ApiUser
from importstate.errors import DatabaseBusy, ImportStateError, ServerStopping
from importstate.http._body import BadRequest, login_fields, read_limited
from importstate.http._openapi import openapi_document
from importstate.http._routes import (
    AUTH_TOKEN_HEADER,
    ENDPOINTS,
    FORBIDDEN,
    LOGIN,
    LOGIN_FAILED,
    OPENAPI,
    UNAUTHORIZED,
    USER_ID_HEADER,
    Call,
    Endpoint,
)
from importstate.http._worker import RunWorker
from importstate.service import ImportService

#: Largest request body accepted, in bytes, unless the server is told otherwise.
DEFAULT_MAX_BODY: Final = 10 * 1024 * 1024


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

        return Route(endpoint.path, respond, methods=[endpoint.method])

    def _authenticate(self, request: Request) -> ApiUser | None:
        user_id = request.headers.get(USER_ID_HEADER)
        token = request.headers.get(AUTH_TOKEN_HEADER)
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
    and returns at once. The run's importer (from ``service.importers``,
    which stays as it is) gets a gate in front, so that shutting the app
    down holds the run between two batches, leaving the operation
    ``importing`` at its checkpoint. On startup the app resumes such an
    operation (``ImportService.resume``). Bodies longer than ``max_body``
    bytes get 413.
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
        Route(LOGIN.path, server.login, methods=[LOGIN.method]),
        Route(OPENAPI.path, server.openapi, methods=[OPENAPI.method]),
    ]
    return Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: _http_error},
    )
