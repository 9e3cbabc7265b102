"""The REST API of Behaviour: rest as a Starlette application, built from the route table."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import attrs
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from importstate._files import default_files_dir
from importstate._limits import LARGE_BODY, Limits
from importstate.accounts import Accounts, ApiUser
from importstate.aio import AsyncImportService
from importstate.errors import (
    DatabaseBusy,
    ImporterNotDefined,
    ImportStateError,
    InvalidImportOperation,
    OperationNotFound,
    ServerFailed,
    ServerStopping,
    StoreFailed,
    TooManyBodies,
    TooManyLogins,
)
from importstate.fetch import Fetcher, UrlRules
from importstate.http._body import (
    BadRequest,
    Body,
    Disconnected,
    json_object,
    login_fields,
    read_limited,
)
from importstate.http._import_files import ImportFiles
from importstate.http._lease import RunLease
from importstate.http._openapi import openapi_document
from importstate.http._page import page_routes
from importstate.http._params import INVALID_PARAMS, InvalidParams, check
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
from importstate.http._schema import object_schema
from importstate.http._throttle import LoginThrottle
from importstate.http._worker import RunWorker
from importstate.pending import PendingSource
from importstate.service import ImportService

_log = logging.getLogger("importstate.http")

#: The reasons of the errors Rocket.Chat raises as ``Meteor.Error`` (their code is the
#: error's message); ``{key}`` is the importer key.
_METEOR_REASONS: Final[dict[type[ImportStateError], str]] = {
    OperationNotFound: "Import Operation Not Found",
    ImporterNotDefined: "The importer ({key}) has no import class defined.",
    InvalidImportOperation: "Invalid Import Operation",
}
_NO_BODY: Final = object_schema([])

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
    files: ImportFiles
    limits: Limits
    fetcher: Fetcher
    pending: PendingSource | None
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
                    params = _params(endpoint, request, body)
                    call = Call(self.calls, self.worker, self.accounts, self.files,
                                self.limits, self.fetcher, self.pending, request, user, body,
                                params)
                    # What the call changes is recorded as the API user's (the run it
                    # starts records its own steps as the run's).
                    with ImportService.acting(f"user:{user.name}"):
                        return JSONResponse(await endpoint.handler(call))
            except Exception as exc:  # noqa: BLE001 - every failure is answered as JSON
                return _answer(request, exc, endpoint)

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


def _params(endpoint: Endpoint, request: Request, body: Body) -> dict[str, Any]:
    """A strict endpoint's parameters: the query and the body its schemas allow.

    Raises:
        InvalidParams: a query parameter, or a body, that does not fit.
        BadRequest: the body is not a JSON object.
    """
    if not endpoint.strict:
        return {}
    query = dict(request.query_params)
    check(query, endpoint.query or _NO_BODY, "query")
    if endpoint.raw_body:
        return query
    params = json_object(body) if body.strip() else {}
    check(params, endpoint.body or _NO_BODY, "body")
    return {**query, **params}


def _rocket_chat_answer(error: Exception, endpoint: Endpoint | None) -> Response | None:
    """The answer in Rocket.Chat's shapes, if ``error`` has one at ``endpoint``.

    Behaviour: file-api.

    A refused parameter's, anywhere; a ``Meteor.Error``'s at a ``meteor`` endpoint.
    """
    if isinstance(error, InvalidParams):
        return JSONResponse(
            {"success": False, "errorType": INVALID_PARAMS, "error": error.message}, 400,
        )
    if endpoint is None or not endpoint.meteor or not isinstance(error, ImportStateError):
        return None
    reason = _METEOR_REASONS.get(type(error))
    if reason is None:
        return None
    if isinstance(error, ImporterNotDefined):
        reason = reason.format(key=error.key)
    code = str(error)
    return JSONResponse({
        "success": False, "error": f"{reason} [{code}]", "errorType": code,
        "details": endpoint.name,
    }, 400)


def _answer(  # noqa: PLR0911 - one answer per kind of failure
    request: Request, error: Exception, endpoint: Endpoint | None = None,
) -> Response:
    """The JSON answer to a request that failed with ``error``."""
    answer = _rocket_chat_answer(error, endpoint)
    if answer is not None:
        return answer
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


def create_app(  # noqa: PLR0913 - every argument after accounts is a keyword-only setting
    service: ImportService,
    accounts: Accounts,
    *,
    max_body: int | None = None,
    limits: Limits | None = None,
    files: str | os.PathLike[str] | None = None,
    url_rules: UrlRules | None = None,
    pending: PendingSource | None = None,
) -> Starlette:
    """The ASGI application of Behaviour: rest over ``service``, with ``accounts`` as its users.

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
    Bodies longer than that get 413. Uploaded and downloaded import files
    go to the directory ``files`` (by default ``<accounts' file>-files``
    beside it), each operation's in a folder of its own, removed once the
    operation is no longer the current one. ``downloadPublicImportFile``
    and the pending downloads fetch by ``url_rules`` (by default public
    http(s) addresses only, no local path), at most ``max_body`` bytes a
    file; the pending downloads are those ``pending`` records (by default
    the importer registered under ``api``, when it records them).
    """
    limits = limits if limits is not None else Limits()
    if max_body is not None:
        limits = attrs.evolve(limits, max_body=max_body)
    lease = RunLease(accounts.path, takeover_after=limits.takeover_after)
    worker = RunWorker(service, lease, prune_after=limits.prune_after)
    folder = Path(files) if files is not None else default_files_dir(accounts.path)
    fetcher = Fetcher(url_rules if url_rules is not None else UrlRules(),
                      max_bytes=limits.max_body)
    if pending is None:
        builtin = service.importers.get("api")
        pending = builtin if isinstance(builtin, PendingSource) else None
    server = _Server(
        service, worker, accounts, ImportFiles(folder), limits, fetcher, pending,
        openapi_document(limits.max_body),
        LoginThrottle(limits.login_failures, limits.login_window),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(worker.open)
        current = await run_in_threadpool(service.current_operation)
        # No upload is in flight yet: what an earlier server left incoming goes too.
        server.files.keep(current.id if current is not None else None, incoming=False)
        yield
        await run_in_threadpool(worker.stop)
        lease.close()

    routes: list[BaseRoute] = [server.route(endpoint) for endpoint in ENDPOINTS]
    routes += [
        Route(LOGIN.path, server.login, methods=[LOGIN.method]),
        Route(OPENAPI.path, server.openapi, methods=[OPENAPI.method]),
        *page_routes(),
    ]
    app = Starlette(
        routes=routes, lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
    # A redirect to the path without its slash is built from the Host header, and a
    # client that follows it sends its token along: an unknown path is 404 instead.
    app.router.redirect_slashes = False
    return app

