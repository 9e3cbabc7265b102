"""Where operations and staged users live.

:class:`Store` is the contract; :class:`MemoryStore` and :class:`SQLiteStore`
are the built-in stores; :class:`PostgresStore` (the ``postgres`` extra) is
imported on first use, so importstate never needs psycopg otherwise.
"""

from typing import TYPE_CHECKING

from importstate.errors import DatabaseBusy, SchemaVersionError
from importstate.stores._protocol import (
    Batch,
    BatchClaims,
    BatchTransaction,
    HistoryTransaction,
    NewRecord,
    Pending,
    StagedRecord,
    Store,
    Transaction,
)
from importstate.stores.memory import MemoryStore
from importstate.stores.sqlite import SQLiteStore

if TYPE_CHECKING:
    from importstate.stores.postgres import PostgresStore

__all__ = [
    "Batch",
    "BatchClaims",
    "BatchTransaction",
    "DatabaseBusy",
    "HistoryTransaction",
    "MemoryStore",
    "NewRecord",
    "Pending",
    "PostgresStore",
    "SQLiteStore",
    "SchemaVersionError",
    "StagedRecord",
    "Store",
    "Transaction",
]


def __getattr__(name: str) -> object:
    if name == "PostgresStore":
        from importstate.stores.postgres import PostgresStore  # noqa: PLC0415 - needs psycopg

        return PostgresStore
    msg = f"module 'importstate.stores' has no attribute {name!r}"
    raise AttributeError(msg)
