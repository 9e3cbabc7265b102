"""The composition root: the store, the built-in importer and the service, built one way.

The command line and ``importstate serve`` both open what they work with
through :func:`open_setup`, so a ``--db`` or ``--dsn`` means the same to both.
"""

from __future__ import annotations

import os
from typing import Final

import attrs

from importstate._extras import needs
from importstate.errors import PostgresUnreachable
from importstate.loaders import available
from importstate.service import ImportService
from importstate.stores import SQLiteStore, Store
from importstate.users_table import UsersTableImporter

#: The key the built-in importer is registered under (Rocket.Chat's API importer).
BUILTIN_KEY: Final = "api"
#: Seconds the store and the built-in importer wait for another writer's lock.
LOCK_TIMEOUT: Final = 30.0


@attrs.frozen
class Setup:
    """An :class:`ImportService` with the store and built-in importer it owns.

    :meth:`close` closes both; the service is not used afterwards.
    """

    store: Store
    importer: UsersTableImporter
    service: ImportService

    def close(self) -> None:
        """Close the importer, then the store."""
        try:
            self.importer.close()
        finally:
            self.store.close()


def open_setup(db: str | os.PathLike[str], *, dsn: str | None = None) -> Setup:
    """The service over the PostgreSQL database ``dsn``, else over the SQLite file ``db``.

    The built-in importer (:class:`UsersTableImporter`, key ``api``, and the
    key of every file importer) writes to ``db`` either way. Importing
    psycopg waits until a ``dsn`` is given.

    Raises:
        PostgresUnreachable: ``dsn`` does not accept a connection.
        sqlite3.DatabaseError: ``db`` is not an SQLite database.
    """
    store = _postgres_store(dsn) if dsn else SQLiteStore(db, timeout=LOCK_TIMEOUT)
    try:
        # The target waits for a lock as long as the run's own writes do.
        importer = UsersTableImporter(db, timeout=LOCK_TIMEOUT)
    except BaseException:
        store.close()
        raise
    # It imports what a file importer loaded too: every loader's key runs it.
    keys = [BUILTIN_KEY, *available()]
    return Setup(store, importer, ImportService(store, dict.fromkeys(keys, importer)))


def _postgres_store(dsn: str) -> Store:
    with needs("postgres", "PostgresStore"):
        from psycopg import OperationalError  # noqa: PLC0415 - psycopg is the postgres extra

    from importstate.stores.postgres import PostgresStore  # noqa: PLC0415 - same

    try:
        return PostgresStore(dsn)
    except OperationalError as exc:
        # libpq's message spans lines; a command line reports one.
        raise PostgresUnreachable(" ".join(str(exc).split())) from exc
