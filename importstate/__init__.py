"""importstate: the lifecycle of data-import operations, in Rocket.Chat's import model."""

from typing import TYPE_CHECKING

from importstate.accounts import Accounts, ApiUser, Credentials, Permission
from importstate.errors import (
    ApiUserExists,
    DownloadFailed,
    DuplicateChannel,
    DuplicateUser,
    FetchError,
    FileFormatError,
    GraphvizNotFound,
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
    ServerStopping,
    UnknownApiUser,
    UnknownPermission,
    UrlNotAllowed,
    WireFormatError,
    WorkersUnsupported,
)
from importstate.fetch import Fetcher, UrlRules
from importstate.importers import BatchImporter, Importer
from importstate.machine import Event
from importstate.model import Count, Failure, Operation
from importstate.pending import PendingDownload, PendingKind
from importstate.records import DataType
from importstate.selection import Selection
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
    "MemoryStore",
    "MissingChannelData",
    "MissingMessageData",
    "MissingRecordData",
    "MissingReference",
    "MissingUserData",
    "Operation",
    "OperationAlreadyFinished",
    "OperationCannotReceiveData",
    "OperationNotFound",
    "OperationNotInitialized",
    "PendingDownload",
    "PendingKind",
    "Permission",
    "PostgresStore",
    "PostgresUnreachable",
    "ProgressStep",
    "SQLiteStore",
    "SchemaVersionError",
    "Selection",
    "ServerStopping",
    "StagedRecord",
    "State",
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

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # PostgresStore needs psycopg (the postgres extra): import it only when asked for.
    if name == "PostgresStore":
        from importstate.stores.postgres import PostgresStore  # noqa: PLC0415 - needs psycopg

        return PostgresStore
    msg = f"module 'importstate' has no attribute {name!r}"
    raise AttributeError(msg)
