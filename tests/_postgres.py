"""A real PostgreSQL server for the tests, started in a temporary directory on loopback.

The server is started once per test session (``initdb`` and ``pg_ctl`` as
the ``postgres`` user when the tests run as root, which PostgreSQL refuses
to run as) and stopped when the session ends, also after a failure. Each
test gets a schema of its own, dropped afterwards, so every store starts
empty.

With ``CI=true`` the tests that use it must run: a missing ``initdb`` fails
them. Elsewhere they are skipped, with the reason. A server that is found
but does not start always fails them.

:func:`temporary_server` is the same server outside pytest
(``benchmarks/bench_postgres.py`` uses it).
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

#: Seconds ``pg_ctl`` waits for the server to accept connections.
START_TIMEOUT = 60
_NOT_FOUND = "PostgreSQL's initdb and pg_ctl were not found (install the server package)"
_schemas = itertools.count()


def _binary(name: str) -> str | None:
    """``name`` on PATH, else in Debian's versioned server directory (newest first)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    return str(candidates[0]) if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(command: list[str]) -> list[str]:
    """Run ``command`` as the ``postgres`` user when we are root (the server refuses root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


class ServerNotStarted(RuntimeError):
    """initdb or pg_ctl failed; the message has their output and the server's log."""


def _run(command: list[str], log: Path) -> None:
    result = subprocess.run(
        _as_postgres(command), capture_output=True, text=True, check=False,
        timeout=START_TIMEOUT + 30,
    )
    if result.returncode != 0:
        server_log = log.read_text(errors="replace") if log.exists() else ""
        msg = (f"PostgreSQL could not be started: {' '.join(command)} exited with "
               f"{result.returncode}\n{result.stdout}{result.stderr}{server_log}")
        raise ServerNotStarted(msg)


def binaries() -> tuple[str, str] | None:
    """``initdb`` and ``pg_ctl``, or ``None`` when PostgreSQL's server is not installed."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    return (initdb, pg_ctl) if initdb and pg_ctl else None


@contextmanager
def temporary_server(*, durable: bool = False) -> Iterator[str]:
    """Start a new PostgreSQL server on a free loopback port; give its DSN; stop and remove it.

    Without ``durable`` the server skips fsync (fast tests; a crash would lose it anyway).

    Raises:
        ServerNotStarted: PostgreSQL is not installed, or would not start.
    """
    found = binaries()
    if found is None:
        raise ServerNotStarted(_NOT_FOUND)
    initdb, pg_ctl = found
    # Outside pytest's own temporary directory, which only root may enter.
    home = Path(tempfile.mkdtemp(prefix="importstate-pg-"))
    data, log = home / "data", home / "server.log"
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
    port = _free_port()
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c max_connections=200"
    if not durable:
        options += " -c fsync=off -c full_page_writes=off"
    started = False
    try:
        _run([initdb, "-D", str(data), "-U", "postgres", "--auth=trust",
              "--encoding=UTF8", "--no-sync"], log)
        _run([pg_ctl, "-D", str(data), "-l", str(log), "-o", options,
              "-w", "-t", str(START_TIMEOUT), "start"], log)
        started = True
        yield f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    finally:
        if started:
            subprocess.run(
                _as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]),
                capture_output=True, check=False, timeout=START_TIMEOUT,
            )
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """The DSN of a fresh PostgreSQL server on a free loopback port, for this session."""
    if binaries() is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: the PostgreSQL tests must run, but {_NOT_FOUND}")
        pytest.skip(_NOT_FOUND)
    try:
        with temporary_server() as dsn:
            yield dsn
    except ServerNotStarted as exc:
        pytest.fail(str(exc))


def drop_schema(dsn: str, schema: str) -> None:
    """Drop ``schema`` and everything in it."""
    import psycopg  # noqa: PLC0415 - only the PostgreSQL tests need it
    from psycopg import sql  # noqa: PLC0415 - same

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def fresh_schema(postgres_dsn: str) -> Iterator[Callable[[], str]]:
    """A maker of unused schema names on the session's server; each is dropped after the test."""
    made: list[str] = []

    def make() -> str:
        made.append(f"test_{os.getpid()}_{next(_schemas)}")
        return made[-1]

    yield make
    for schema in made:
        drop_schema(postgres_dsn, schema)


@pytest.fixture
def schema(fresh_schema: Callable[[], str]) -> str:
    """An unused schema name on the session's server, dropped after the test."""
    return fresh_schema()
