"""The public API, pinned: a name added, renamed or dropped is a decision, not an accident."""

import importlib
import pkgutil

import pytest

import importstate

PUBLIC = {
    "importstate": [
        "Accounts", "ApiUser", "ApiUserExists", "BatchClaims", "BatchCommitted",
        "BatchImporter", "Count", "Credentials", "DataType", "DatabaseBusy", "DownloadFailed",
        "DuplicateChannel", "DuplicateUser", "Event", "Failure", "FetchError", "Fetcher",
        "FileFormatError", "GraphvizNotFound", "HistoryEntry", "HistoryUnsupported",
        "ImportService", "ImportStateError", "Importer",
        "ImporterCannotImport", "ImporterNotDefined", "InvalidChannelList",
        "InvalidImportOperation", "InvalidMessageList", "InvalidOperationStatus",
        "InvalidRecordList", "InvalidRoles", "InvalidSelection", "InvalidTransition",
        "InvalidUserList", "Listener", "MemoryStore", "MissingChannelData", "MissingExtra",
        "MissingMessageData", "MissingRecordData", "MissingReference", "MissingUserData",
        "Offer", "Operation",
        "OperationAlreadyFinished", "OperationCannotReceiveData", "OperationDocument",
        "OperationEvent", "OperationNotFound", "OperationNotInitialized", "PendingDownload",
        "PendingKind", "Permission", "PostgresStore", "PostgresUnreachable", "ProgressDocument",
        "ProgressStep", "SQLiteStore", "SchemaVersionError", "Selection", "SelectionNotReady",
        "ServerStopping",
        "StagedRecord", "State", "StateChanged", "StatusDocument", "Store", "UnknownApiUser",
        "UnknownPermission", "UrlNotAllowed", "UrlRules", "UsersTableImporter",
        "WireFormatError", "WorkersUnsupported", "state_of",
    ],
    "importstate.aio": ["AsyncImportService"],
    "importstate.documents": [
        "CountDocument", "FailureDocument", "OperationDocument", "ProgressCount",
        "ProgressDocument", "StatusDocument",
    ],
    "importstate.selection": [
        "DIRECT_MESSAGES", "WAITING_STEPS", "Offer", "OfferedChannel", "OfferedUser", "Selection",
        "narrow", "selection_document",
    ],
    "importstate.diagrams": [
        "DOT_TIMEOUT", "STATES_TITLE", "STEPS_TITLE", "Format", "Highlight", "History",
        "StepStates", "state_diagram", "steps_diagram", "svg", "with_events",
    ],
    "importstate.events": ["BatchCommitted", "Listener", "OperationEvent", "StateChanged"],
    "importstate.stores": [
        "Batch", "BatchClaims", "BatchTransaction", "DatabaseBusy", "HistoryTransaction",
        "MemoryStore", "NewRecord", "Pending", "PostgresStore", "SQLiteStore",
        "SchemaVersionError", "StagedRecord", "Store", "Transaction",
    ],
    "importstate.history": ["HistoryDocument", "HistoryEntry"],
    "importstate.http": [
        "DEFAULT_HOST", "DEFAULT_MAX_BODY", "DEFAULT_PORT", "ENDPOINTS", "Endpoint", "Limits",
        "create_app", "openapi_document", "serve",
    ],
    "importstate.loaders": [
        "BUILTIN_LOADERS", "ENTRY_POINT_GROUP", "MAX_LINE", "MAX_RATIO", "MAX_UNPACKED_SIZE",
        "CsvLoader", "FileLimits", "Loader", "Placed", "Sink", "SlackLoader", "SlackUsersLoader",
        "available", "loader_for",
    ],
    "importstate.fetch": [
        "MAX_REDIRECTS", "Connect", "Fetcher", "Resolve", "UrlRules", "VettedUrl", "fetch",
        "system_resolve", "vet",
    ],
    "importstate.pending": [
        "PENDING_NAMES", "Fetch", "PendingDownload", "PendingKind", "PendingSource",
    ],
    "importstate.testing": [
        "BatchClaimsTests", "FailingImporter", "ImportFailed", "ImportServiceMachine",
        "InjectedFailure", "RecordingImporter", "ServiceCall", "StoreTests", "strategies",
    ],
}


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_the_public_names_of_a_package_are_pinned(name):
    module = importlib.import_module(name)
    assert sorted(module.__all__) == sorted(PUBLIC[name])
    for exported in module.__all__:
        assert getattr(module, exported) is not None, f"{name}.{exported} does not resolve"


def _public_modules():
    for info in pkgutil.walk_packages(importstate.__path__, "importstate."):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            yield info.name


@pytest.mark.parametrize("name", sorted(_public_modules()))
def test_every_public_module_says_what_it_exports(name):
    module = importlib.import_module(name)
    assert hasattr(module, "__all__"), f"{name} has no __all__"
    for exported in module.__all__:
        assert hasattr(module, exported), f"{name}.__all__ names {exported!r}, which it lacks"
