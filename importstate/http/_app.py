"""The REST API of SPEC §7 as a Starlette application, built from the route table."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from typing import Final

import attrs
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from importstate._limits import LARGE_BODY, Limits
from importstate.accounts import Accounts, ApiUser
from importstate.aio import AsyncImportService
from importstate.errors import (
    DatabaseBusy,
    ImportStateError,
    ServerFailed,
    ServerStopping,
    StoreFailed,
    TooManyBodies,
    TooManyLogins,
)
from importstate.http._body import BadRequest, Disconnected, login_fields, read_limited
from importstate.http._lease import RunLease
from importstate.http._openapi import openapi_document
from importstate.http._routes import (
    AUTH_TOKEN_HEADER,
    ENDPOINTS,
    FORBIDDEN,
    LOGIN,
    LOGIN_FAILED,
    LOGIN_THROTTLED,
    OPENAPI,
    UNAUTHORIZED,
    USER_ID_HEADER,
    Call,
    Endpoint,
)
from importstate.http._throttle import LoginThrottle
from importstate.http._worker import RunWorker
from importstate.service import ImportService

_log = logging.getLogger("importstate.http")

#: Seconds a client is told to wait (``Retry-After``) after each kind of 503.
_RETRY_AFTER: Final[dict[type[ImportStateError], int]] = {
    DatabaseBusy: 1, ServerStopping: 5, TooManyBodies: 1,
}
#: Logins hashing a password at once (each costs scrypt's 16 MiB and tens of ms of CPU).
_LOGINS_AT_ONCE: Final = 2


@attrs.frozen
class _Server:
    service: ImportService
    worker: RunWorker
    accounts: Accounts
    limits: Limits
    document: dict[str, object]
    throttle: LoginThrottle
    # Bounds on what runs at once: large bodies in memory, password hashes.
    bodies: asyncio.Semaphore = attrs.field(init=False)
    logins: asyncio.Semaphore = attrs.field(init=False)
    # The service's store work, in worker threads.
    calls: AsyncImportService = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "calls", AsyncImportService(self.service))
        object.__setattr__(self, "bodies", asyncio.Semaphore(self.limits.large_bodies))
        object.__setattr__(self, "logins", asyncio.Semaphore(_LOGINS_AT_ONCE))

    def route(self, endpoint: Endpoint) -> Route:
        async def respond(request: Request) -> Response:
            try:
                # 401 and 403 are decided from the headers alone, before the body is read.
                user = self._authenticate(request)
                if user is None:
                    return JSONResponse(UNAUTHORIZED, 401)
                if endpoint.permission is not None and not user.may(endpoint.permission):
                    return JSONResponse(FORBIDDEN, 403)
                async with self._body_slot(request):
                    body = await self._body(request)
                    call = Call(self.calls, self.worker, self.accounts, request, user, body)
                    return JSONResponse(await endpoint.handler(call))
            except Exception as exc:  # noqa: BLE001 - every failure is answered as JSON
                return _answer(request, exc)

        return Route(endpoint.path, respond, methods=[endpoint.method])

    def _authenticate(self, request: Request) -> ApiUser | None:
        user_id = request.headers.get(USER_ID_HEADER)
        token = request.headers.get(AUTH_TOKEN_HEADER)
        if not user_id or not token:
            return None
        return self.accounts.authenticate(user_id, token)

    async def _body(self, request: Request) -> bytes | bytearray:
        return await read_limited(request, self.limits.max_body, idle=self.limits.body_timeout)

    @contextlib.asynccontextmanager
    async def _body_slot(self, request: Request) -> AsyncIterator[None]:
        """Hold one of the slots for large bodies while a large one is read and handled.

        Raises:
            TooManyBodies: no slot came free within ``body_timeout``.
        """
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) <= LARGE_BODY:
            yield
            return
        if not declared and "transfer-encoding" not in request.headers:
            yield  # no body at all
            return
        try:
            async with asyncio.timeout(self.limits.body_timeout):
                await self.bodies.acquire()
        except TimeoutError:
            raise TooManyBodies from None
        try:
            yield
        finally:
            self.bodies.release()

    async def login(self, request: Request) -> Response:
        try:
            async with self._body_slot(request):
                fields = login_fields(request, await self._body(request))
            name = fields.get("user", fields.get("username"))
            password = fields.get("password")
            if not isinstance(name, str) or not isinstance(password, str):
                return JSONResponse(LOGIN_FAILED, 401)
            address = request.client.host if request.client is not None else ""
            self.throttle.check(name, address)
            async with self.logins:
                logged_in = await run_in_threadpool(self.accounts.login, name, password)
        except Exception as exc:  # noqa: BLE001 - every failure is answered as JSON
            return _answer(request, exc)
        if logged_in is None:
            self.throttle.failed(name, address)
            return JSONResponse(LOGIN_FAILED, 401)
        self.throttle.succeeded(name)
        user, credentials = logged_in
        me = {"_id": user.id, "username": user.name, "permissions": sorted(user.permissions)}
        return JSONResponse({"status": "success", "data": {**credentials.to_wire(), "me": me}})

    async def openapi(self, _request: Request) -> Response:
        return JSONResponse(self.document)


def _answer(request: Request, error: Exception) -> Response:
    """The JSON answer to a request that failed with ``error``."""
    if isinstance(error, BadRequest):
        return _failure(error.message, error.status)
    if isinstance(error, Disconnected):
        _log.debug("the client went away before its %s %s was read", request.method,
                   request.url.path)
        return Response(status_code=400)
    if isinstance(error, TooManyLogins):
        body = {**LOGIN_THROTTLED, "message": str(error)}
        return JSONResponse(body, 429, headers={"Retry-After": str(error.retry_after)})
    for kind, seconds in _RETRY_AFTER.items():
        if isinstance(error, kind):
            return _failure(str(error), 503, headers={"Retry-After": str(seconds)})
    if isinstance(error, ImportStateError):
        return _failure(str(error), 400)
    _log.error("%s %s failed: %s", request.method, request.url.path, error, exc_info=error)
    return _failure(str(_internal(error)), 500)


def _internal(error: Exception) -> ImportStateError:
    """What a client is told of an error of the server: the store's reason, else nothing."""
    if isinstance(error, sqlite3.Error) or type(error).__module__.startswith("psycopg"):
        text = str(error).strip()
        return StoreFailed(text.splitlines()[0] if text else type(error).__name__)
    return ServerFailed()


def _failure(message: str, status: int, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"success": False, "error": message}, status, headers=headers)


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for HTTPException only
    return _failure(exc.detail, exc.status_code)


async def _server_error(request: Request, exc: Exception) -> Response:
    _log.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
    return _failure(str(_internal(exc)), 500)


def create_app(
    service: ImportService,
    accounts: Accounts,
    *,
    max_body: int | None = None,
    limits: Limits | None = None,
) -> Starlette:
    """The ASGI application of SPEC §7 over ``service``, with ``accounts`` as its users.

    ``import.run`` starts the import in a background thread of this process
    and returns at once. The run's importer (from ``service.importers``,
    which stays as it is) gets a gate in front, so that shutting the app
    down holds the run between two batches, leaving the operation
    ``importing`` at its checkpoint. On startup, and whenever the server
    that ran it stops or dies, the app resumes such an operation
    (``ImportService.resume``); runs are leased to their server in the
    accounts' database file, so two apps on one database never run one
    import at once. ``limits`` (:class:`~importstate.http.Limits`) bounds
    bodies, logins and the rest; ``max_body`` overrides its ``max_body``.
    Bodies longer than that get 413.
    """
    limits = limits if limits is not None else Limits()
    if max_body is not None:
        limits = attrs.evolve(limits, max_body=max_body)
    lease = RunLease(accounts.path, takeover_after=limits.takeover_after)
    worker = RunWorker(service, lease, prune_after=limits.prune_after)
    server = _Server(
        service, worker, accounts, limits, openapi_document(limits.max_body),
        LoginThrottle(limits.login_failures, limits.login_window),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(worker.open)
        yield
        await run_in_threadpool(worker.stop)
        lease.close()

    routes = [server.route(endpoint) for endpoint in ENDPOINTS]
    routes += [
        Route(LOGIN.path, server.login, methods=[LOGIN.method]),
        Route(OPENAPI.path, server.openapi, methods=[OPENAPI.method]),
    ]
    app = Starlette(
        routes=routes, lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
    # A redirect to the path without its slash is built from the Host header, and a
    # client that follows it sends its token along: an unknown path is 404 instead.
    app.router.redirect_slashes = False
    return app
