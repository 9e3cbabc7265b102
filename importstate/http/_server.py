"""``importstate serve``: the REST API over one SQLite file, served by uvicorn."""

from __future__ import annotations

import copy
import errno
import logging
import math
import os
import socket
import sys
from typing import Any, Final

import attrs
import uvicorn
from uvicorn.config import LOGGING_CONFIG

from importstate._limits import Limits
from importstate._setup import open_setup
from importstate.accounts import Accounts
from importstate.errors import CannotListen
from importstate.fetch import UrlRules
from importstate.http._app import create_app
from importstate.http._protocol import (
    RESERVED_DESCRIPTORS,
    connection_class,
    connections_allowed,
)

_log = logging.getLogger("importstate.http")

#: Seconds a thread holds the interpreter while another waits for it (Python's default: 0.005).
_SWITCH_INTERVAL: Final = 0.001

DEFAULT_HOST: Final = "127.0.0.1"
#: Rocket.Chat's port, so the seeds' ``curl ... localhost:3000`` calls work unchanged.
DEFAULT_PORT: Final = 3000


def serve(  # noqa: PLR0913 - every argument after db is an optional, keyword-only setting
    db: str | os.PathLike[str],
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    max_body: int | None = None,
    log_level: str = "info",
    dsn: str | None = None,
    limits: Limits | None = None,
    files: str | os.PathLike[str] | None = None,
    url_rules: UrlRules | None = None,
) -> None:
    """Serve the REST API over the SQLite file ``db`` until SIGTERM or Ctrl-C.

    With ``dsn``, operations live in that PostgreSQL database instead
    (:class:`~importstate.PostgresStore`); the rest stays in ``db``.
    Imports go to the built-in ``users`` table of the file ``db`` (importer
    key ``api``); API users are those of :class:`~importstate.accounts.Accounts`
    on that file. Stopping holds a running import at a batch boundary; the
    next start resumes it. ``limits`` (:class:`~importstate.http.Limits`)
    sets the timeouts, the connection cap, token expiry and the rest;
    ``max_body`` overrides its ``max_body``. ``files`` and ``url_rules`` are
    :func:`~importstate.http.create_app`'s.

    Raises:
        CannotListen: the address is taken, unknown, or not ours to listen on;
            nothing else was done.
        PostgresUnreachable: ``dsn`` does not accept a connection.
    """
    limits = limits if limits is not None else Limits()
    if max_body is not None:
        limits = attrs.evolve(limits, max_body=max_body)
    # Listening first: a port that is taken fails before any database is opened,
    # and as an error of ours rather than uvicorn's log lines and exit.
    sock = _listen(host, port)
    try:
        _serve_on(sock, db, limits=limits, log_level=log_level, dsn=dsn, files=files,
                  url_rules=url_rules)
    finally:
        sock.close()


def _serve_on(  # noqa: PLR0913 - serve()'s settings, passed on
    sock: socket.socket, db: str | os.PathLike[str], *, limits: Limits, log_level: str,
    dsn: str | None, files: str | os.PathLike[str] | None, url_rules: UrlRules | None,
) -> None:
    setup = open_setup(db, dsn=dsn)
    accounts = Accounts(db, token_ttl=limits.token_ttl, tokens_per_user=limits.tokens_per_user)
    try:
        app = create_app(setup.service, accounts, limits=limits, files=files,
                         url_rules=url_rules, pending=setup.importer)
        host, port = sock.getsockname()[:2]
        config = uvicorn.Config(
            app, host=host, port=port, log_level=log_level, lifespan="on",
            timeout_graceful_shutdown=10, log_config=_logging(log_level),
            http=connection_class(header_timeout=limits.header_timeout,
                                  max_connections=_connections(limits.max_connections)),
            timeout_keep_alive=max(1, math.ceil(limits.idle_timeout)),
        )
        # Uvicorn logs no address for a socket it is handed: this line says where.
        _log.info("importstate serving the import API of %s on http://%s:%d (Ctrl-C or SIGTERM"
                  " stops)", os.fspath(db), f"[{host}]" if ":" in host else host, port)
        if not any(user.revoked is None for user in accounts.users()):
            _log.warning(
                "no API users yet: every request will get 401; add one with"
                " `importstate users add NAME --permission run-import`",
            )
        # A thread staging a large body holds the interpreter between its C calls; the
        # event loop asks for it back every millisecond instead of every five.
        sys.setswitchinterval(_SWITCH_INTERVAL)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        accounts.close()
        setup.close()


def _connections(wanted: int) -> int:
    allowed = connections_allowed(wanted)
    if allowed < wanted:
        _log.warning("serving at most %d connections, not %d: the process may open only %d"
                     " files (ulimit -n)", allowed, wanted, allowed + RESERVED_DESCRIPTORS)
    return allowed


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
