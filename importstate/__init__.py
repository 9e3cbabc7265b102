"""importstate: the lifecycle of data-import operations, in Rocket.Chat's import model."""

from importstate.accounts import Accounts, ApiUser, Credentials
from importstate.errors import (
    ApiUserExists,
    DuplicateUser,
    GraphvizNotFound,
    ImporterNotDefined,
    ImportStateError,
    InvalidOperationStatus,
    InvalidRoles,
    InvalidTransition,
    InvalidUserList,
    MissingUserData,
    OperationAlreadyFinished,
    OperationCannotReceiveData,
    OperationNotFound,
    OperationNotInitialized,
    UnknownApiUser,
    UnknownPermission,
    WireFormatError,
)
from importstate.importers import BatchImporter, Importer
from importstate.model import Count, Failure, Operation
from importstate.service import ImportService
from importstate.steps import ProgressStep, State, state_of
from importstate.stores import DatabaseBusy, MemoryStore, SQLiteStore, StagedRecord, Store
from importstate.users_table import UsersTableImporter

__all__ = [
    "Accounts",
    "ApiUser",
    "ApiUserExists",
    "BatchImporter",
    "Count",
    "Credentials",
    "DatabaseBusy",
    "DuplicateUser",
    "Failure",
    "GraphvizNotFound",
    "ImportService",
    "ImportStateError",
    "Importer",
    "ImporterNotDefined",
    "InvalidOperationStatus",
    "InvalidRoles",
    "InvalidTransition",
    "InvalidUserList",
    "MemoryStore",
    "MissingUserData",
    "Operation",
    "OperationAlreadyFinished",
    "OperationCannotReceiveData",
    "OperationNotFound",
    "OperationNotInitialized",
    "ProgressStep",
    "SQLiteStore",
    "StagedRecord",
    "State",
    "Store",
    "UnknownApiUser",
    "UnknownPermission",
    "UsersTableImporter",
    "WireFormatError",
    "state_of",
]

__version__ = "0.1.0"
