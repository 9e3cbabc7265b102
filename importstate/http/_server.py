"""``importstate serve``: the REST API over one SQLite file, served by uvicorn."""

from __future__ import annotations

import copy
import logging
import os
from typing import Any, Final

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from importstate._setup import open_setup
from importstate.accounts import Accounts
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
        PostgresUnreachable: ``dsn`` does not accept a connection.
    """
    setup = open_setup(db, dsn=dsn)
    accounts = Accounts(db)
    try:
        app = create_app(setup.service, accounts, max_body=max_body)
        config = uvicorn.Config(
            app, host=host, port=port, log_level=log_level, lifespan="on",
            timeout_graceful_shutdown=10, log_config=_logging(log_level),
        )
        _log.info("importstate serving the import API of %s", os.fspath(db))
        if not any(user.revoked is None for user in accounts.users()):
            _log.warning(
                "no API users yet: every request will get 401; add one with"
                " `importstate users add NAME --permission run-import`",
            )
        uvicorn.Server(config).run()
    finally:
        accounts.close()
        setup.close()


def _logging(level: str) -> dict[str, Any]:
    """Uvicorn's logging, with importstate's messages (runs resumed, ended) beside its own."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["importstate"] = {"handlers": ["default"], "level": level.upper()}
    return config
