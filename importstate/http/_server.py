"""``importstate serve``: the REST API over one SQLite file, served by uvicorn."""

from __future__ import annotations

import copy
import errno
import logging
import os
import socket
from typing import Any, Final

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from importstate._setup import open_setup
from importstate.accounts import Accounts
from importstate.errors import CannotListen
from importstate.http._app import DEFAULT_MAX_BODY, create_app

_log = logging.getLogger("importstate.http")

DEFAULT_HOST: Final = "127.0.0.1"
#: Rocket.Chat's port, so the seeds' ``curl ... localhost:3000`` calls work unchanged.
DEFAULT_PORT: Final = 3000


def serve(  # noqa: PLR0913 - every argument after db is an optional, keyword-only setting
    db: str | os.PathLike[str],
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    max_body: int = DEFAULT_MAX_BODY,
    log_level: str = "info",
    dsn: str | None = None,
) -> None:
    """Serve the REST API over the SQLite file ``db`` until SIGTERM or Ctrl-C.

    With ``dsn``, operations live in that PostgreSQL database instead
    (:class:`~importstate.PostgresStore`); the rest stays in ``db``.
    Imports go to the built-in ``users`` table of the file ``db`` (importer
    key ``api``); API users are those of :class:`~importstate.accounts.Accounts`
    on that file. Stopping holds a running import at a batch boundary; the
    next start resumes it.

    Raises:
        CannotListen: the address is taken, unknown, or not ours to listen on;
            nothing else was done.
        PostgresUnreachable: ``dsn`` does not accept a connection.
    """
    # Listening first: a port that is taken fails before any database is opened,
    # and as an error of ours rather than uvicorn's log lines and exit.
    sock = _listen(host, port)
    try:
        _serve_on(sock, db, max_body=max_body, log_level=log_level, dsn=dsn)
    finally:
        sock.close()


def _serve_on(
    sock: socket.socket, db: str | os.PathLike[str], *, max_body: int, log_level: str,
    dsn: str | None,
) -> None:
    setup = open_setup(db, dsn=dsn)
    accounts = Accounts(db)
    try:
        app = create_app(setup.service, accounts, max_body=max_body)
        host, port = sock.getsockname()[:2]
        config = uvicorn.Config(
            app, host=host, port=port, log_level=log_level, lifespan="on",
            timeout_graceful_shutdown=10, log_config=_logging(log_level),
        )
        # Uvicorn logs no address for a socket it is handed: this line says where.
        _log.info("importstate serving the import API of %s on http://%s:%d (Ctrl-C or SIGTERM"
                  " stops)", os.fspath(db), f"[{host}]" if ":" in host else host, port)
        if not any(user.revoked is None for user in accounts.users()):
            _log.warning(
                "no API users yet: every request will get 401; add one with"
                " `importstate users add NAME --permission run-import`",
            )
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        accounts.close()
        setup.close()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        # create_server's own message repeats the address; the system's reason is enough.
        # A negative errno is the resolver's (getaddrinfo): the host name is unknown.
        code = exc.errno or 0
        reason = os.strerror(code).lower() if code > 0 else "unknown host name"
        raise CannotListen(host, port, reason, in_use=exc.errno == errno.EADDRINUSE) from None


def _logging(level: str) -> dict[str, Any]:
    """Uvicorn's logging, with importstate's messages (runs resumed, ended) beside its own."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["importstate"] = {"handlers": ["default"], "level": level.upper()}
    return config
