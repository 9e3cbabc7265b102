"""Where operations and staged users live.

:class:`Store` is the contract; :class:`MemoryStore` and :class:`SQLiteStore`
are the built-in stores.
"""

from importstate.stores._protocol import NewRecord, StagedRecord, Store, Transaction
from importstate.stores.memory import MemoryStore
from importstate.stores.sqlite import DatabaseBusy, SchemaVersionError, SQLiteStore

__all__ = [
    "DatabaseBusy",
    "MemoryStore",
    "NewRecord",
    "SQLiteStore",
    "SchemaVersionError",
    "StagedRecord",
    "Store",
    "Transaction",
]
