"""importstate: the lifecycle of data-import operations, in Rocket.Chat's import model."""

import logging
from typing import TYPE_CHECKING

from importstate.accounts import Accounts, ApiUser, Credentials, Permission
from importstate.documents import OperationDocument, ProgressDocument, StatusDocument
from importstate.errors import (
    ApiUserExists,
    DownloadFailed,
    DuplicateChannel,
    DuplicateUser,
    FetchError,
    FileFormatError,
    GraphvizNotFound,
    HistoryUnsupported,
    ImporterCannotImport,
    ImporterNotDefined,
    ImportStateError,
    InvalidChannelList,
    InvalidImportOperation,
    InvalidMessageList,
    InvalidOperationStatus,
    InvalidRecordList,
    InvalidRoles,
    InvalidSelection,
    InvalidTransition,
    InvalidUserList,
    MissingChannelData,
    MissingExtra,
    MissingMessageData,
    MissingRecordData,
    MissingReference,
    MissingUserData,
    OperationAlreadyFinished,
    OperationCannotReceiveData,
    OperationNotFound,
    OperationNotInitialized,
    PostgresUnreachable,
    SchemaVersionError,
    SelectionNotReady,
    ServerStopping,
    UnknownApiUser,
    UnknownPermission,
    UrlNotAllowed,
    WireFormatError,
    WorkersUnsupported,
)
from importstate.events import BatchCommitted, Listener, OperationEvent, StateChanged
from importstate.fetch import Fetcher, UrlRules
from importstate.history import HistoryEntry
from importstate.importers import BatchImporter, Importer
from importstate.machine import Event
from importstate.model import Count, Failure, Operation
from importstate.pending import PendingDownload, PendingKind
from importstate.records import DataType
from importstate.selection import Offer, Selection
from importstate.service import ImportService
from importstate.steps import ProgressStep, State, state_of
from importstate.stores import (
    BatchClaims,
    DatabaseBusy,
    MemoryStore,
    SQLiteStore,
    StagedRecord,
    Store,
)
from importstate.users_table import UsersTableImporter

if TYPE_CHECKING:
    from importstate.stores.postgres import PostgresStore

__all__ = [
    "Accounts",
    "ApiUser",
    "ApiUserExists",
    "BatchClaims",
    "BatchCommitted",
    "BatchImporter",
    "Count",
    "Credentials",
    "DataType",
    "DatabaseBusy",
    "DownloadFailed",
    "DuplicateChannel",
    "DuplicateUser",
    "Event",
    "Failure",
    "FetchError",
    "Fetcher",
    "FileFormatError",
    "GraphvizNotFound",
    "HistoryEntry",
    "HistoryUnsupported",
    "ImportService",
    "ImportStateError",
    "Importer",
    "ImporterCannotImport",
    "ImporterNotDefined",
    "InvalidChannelList",
    "InvalidImportOperation",
    "InvalidMessageList",
    "InvalidOperationStatus",
    "InvalidRecordList",
    "InvalidRoles",
    "InvalidSelection",
    "InvalidTransition",
    "InvalidUserList",
    "Listener",
    "MemoryStore",
    "MissingChannelData",
    "MissingExtra",
    "MissingMessageData",
    "MissingRecordData",
    "MissingReference",
    "MissingUserData",
    "Offer",
    "Operation",
    "OperationAlreadyFinished",
    "OperationCannotReceiveData",
    "OperationDocument",
    "OperationEvent",
    "OperationNotFound",
    "OperationNotInitialized",
    "PendingDownload",
    "PendingKind",
    "Permission",
    "PostgresStore",
    "PostgresUnreachable",
    "ProgressDocument",
    "ProgressStep",
    "SQLiteStore",
    "SchemaVersionError",
    "Selection",
    "SelectionNotReady",
    "ServerStopping",
    "StagedRecord",
    "State",
    "StateChanged",
    "StatusDocument",
    "Store",
    "UnknownApiUser",
    "UnknownPermission",
    "UrlNotAllowed",
    "UrlRules",
    "UsersTableImporter",
    "WireFormatError",
    "WorkersUnsupported",
    "state_of",
]

#: The one place the version is written: the package metadata and ``importstate --version`` read it.
__version__ = "0.2.0"

# The library logs through the "importstate" hierarchy; the application decides what is shown.
logging.getLogger("importstate").addHandler(logging.NullHandler())


def __getattr__(name: str) -> object:
    # PostgresStore needs psycopg (the postgres extra): import it only when asked for.
    if name == "PostgresStore":
        from importstate.stores.postgres import PostgresStore  # noqa: PLC0415 - needs psycopg

        return PostgresStore
    msg = f"module 'importstate' has no attribute {name!r}"
    raise AttributeError(msg)
