"""Errors a caller can catch by type.

Every error whose wording the specification fixes has exactly that wording as
its ``str()`` (it is what the REST API returns); details a program may want
(the field, the state, the user's index) are attributes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

__all__ = [
    "ApiUserExists",
    "CannotListen",
    "DatabaseBusy",
    "DownloadFailed",
    "DuplicateChannel",
    "DuplicateUser",
    "EmptyPassword",
    "FetchError",
    "FileFormatError",
    "GraphvizNotFound",
    "HistoryUnsupported",
    "ImportStateError",
    "ImporterCannotImport",
    "ImporterNotDefined",
    "InvalidApiUserName",
    "InvalidChannelList",
    "InvalidImportOperation",
    "InvalidMessageList",
    "InvalidOperationStatus",
    "InvalidRecordList",
    "InvalidRoles",
    "InvalidSelection",
    "InvalidTransition",
    "InvalidUserList",
    "MissingChannelData",
    "MissingExtra",
    "MissingMessageData",
    "MissingRecordData",
    "MissingReference",
    "MissingUserData",
    "OperationAlreadyFinished",
    "OperationCannotReceiveData",
    "OperationNotFound",
    "OperationNotInitialized",
    "PostgresUnreachable",
    "PruneUnsupported",
    "SchemaVersionError",
    "SelectionNotReady",
    "ServerFailed",
    "ServerStopping",
    "StoreFailed",
    "TooManyBodies",
    "TooManyConnections",
    "TooManyLogins",
    "UnknownApiUser",
    "UnknownPermission",
    "UrlNotAllowed",
    "WireFormatError",
    "WorkersUnsupported",
]


class ImportStateError(Exception):
    """Base class of every error importstate raises on purpose."""

    #: The wire message (Behaviour: service) when the class has a fixed one.
    message: ClassVar[str] = "importstate error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message if message is not None else self.message)

    def __str__(self) -> str:
        return str(self.args[0])


class OperationNotInitialized(ImportStateError):
    """``add_users`` without a current, valid operation."""

    message = "Import operation not initialized."


class OperationCannotReceiveData(ImportStateError):
    """``add_users`` while the current operation is loading or importing."""

    message = "The current import operation can not receive new data."


class OperationAlreadyFinished(ImportStateError):
    """The current operation is ``done``, ``error`` or ``canceled``."""

    message = "The current import operation is already finished."


class InvalidRecordList(ImportStateError):
    """Records to stage were given as something other than a list.

    Attributes:
        got: the type name of what was given.
    """

    #: What the list holds, as the message names it.
    noun: ClassVar[str] = "records"

    def __init__(self, got: str) -> None:
        super().__init__(f"{self.noun} must be a list, got {got}")
        self.got = got


class InvalidUserList(InvalidRecordList):
    """``add_users`` was given something other than a list of users."""

    noun = "users"


class InvalidChannelList(InvalidRecordList):
    """``add_channels`` was given something other than a list of channels."""

    noun = "channels"


class InvalidMessageList(InvalidRecordList):
    """``add_messages`` was given something other than a list of messages."""

    noun = "messages"


class MissingRecordData(ImportStateError):
    """A record to stage is not an object, or lacks (or has a wrong) required field.

    Attributes:
        index: position of the first offending entry in the list given.
    """

    message = "Records are missing required data."

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index


class MissingUserData(MissingRecordData):
    """A user lacks a non-empty ``emails`` or ``importIds`` entry, or is not an object."""

    message = "Users are missing required data."


class MissingChannelData(MissingRecordData):
    """A channel lacks ``importIds`` or ``name``, has an unknown ``t``, or is not an object."""

    message = "Channels are missing required data."


class MissingMessageData(MissingRecordData):
    """A message lacks ``importIds``, ``rid``, ``u``, ``msg`` or ``ts``, or is not an object."""

    message = "Messages are missing required data."


class InvalidRoles(ImportStateError):
    """A user has a role outside the service's known roles.

    Attributes:
        index: position of the first offending user.
        role: the unknown role (or the non-list ``roles`` value).
    """

    message = "One or more of the users have been assigned invalid roles."

    def __init__(self, index: int, role: object) -> None:
        super().__init__()
        self.index = index
        self.role = role


class OperationNotFound(ImportStateError):
    """No current operation, or it is no longer valid."""

    message = "error-operation-not-found"


class InvalidOperationStatus(ImportStateError):
    """``run`` on an operation that is not waiting in user selection."""

    message = "error-invalid-operation-status"


class ImporterNotDefined(ImportStateError):
    """The operation's importer key is not registered with the service.

    Attributes:
        key: the importer key that was looked up.
    """

    message = "error-importer-not-defined"

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key


class ImporterCannotImport(ImportStateError):
    """``run`` refused: staging holds records of a type the operation's importer cannot import.

    Attributes:
        key: the operation's importer key.
        data_type: the ``dataType`` it has no method for.
    """

    def __init__(self, key: str, data_type: str) -> None:
        super().__init__(f"The importer ({key}) cannot import {data_type} records.")
        self.key = key
        self.data_type = data_type


class InvalidSelection(ImportStateError, ValueError):
    """A selection to start a run with does not fit ``{users?: {all?, list?}, channels?: ...}``.

    Attributes:
        field: where it does not fit (``"users.list"``; ``"$"`` for the whole).
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"selection: {field}: {reason}")
        self.field = field
        self.reason = reason


class InvalidImportOperation(ImportStateError):
    """The selection was asked for while an operation that is no longer valid was preparing."""

    message = "error-import-operation-invalid"


class SelectionNotReady(ImportStateError):
    """The selection was asked for while the operation downloads or prepares: there is none yet.

    The REST API answers ``getImportFileData`` with ``{waiting: true}``; ask
    again once the operation is ready (``importer_user_selection``).

    Attributes:
        step: the operation's status when it was asked (``importer_preparing_users``...).
    """

    def __init__(self, step: str) -> None:
        step = str(step)  # a ProgressStep reads as its wire name
        super().__init__(f"the selection is not ready: the operation is at {step!r}"
                         " (downloading or preparing); ask again once it is ready")
        self.step = step


class InvalidTransition(ImportStateError):
    """The machine does not allow ``event`` from the operation's state.

    Attributes:
        state: the state the operation was in.
        event: the event that was refused.
    """

    def __init__(self, state: str, event: str, detail: str = "") -> None:
        state, event = str(state), str(event)  # enum members read as their wire names
        suffix = f": {detail}" if detail else ""
        super().__init__(f"event {event!r} is not allowed in state {state!r}{suffix}")
        self.state = state
        self.event = event


class WireFormatError(ImportStateError, ValueError):
    """A document does not fit the wire format of Behaviour: document.

    Attributes:
        field: the wire name of the field at fault (``"$"`` for the document itself).
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class FileFormatError(ImportStateError, ValueError):
    """A file given to a file importer is bad; ``str()`` names the member and line.

    Behaviour: files.

    ``users.csv: line 12: expected 3 columns, found 2``; without a line for a
    fault of the whole member or archive (``../etc/passwd: a member name
    that leaves the archive``).

    Attributes:
        member: the archive member (or the file's name) at fault.
        line: the 1-based line, if the fault has one.
        reason: what is wrong there.
    """

    def __init__(self, member: str, line: int | None, reason: str) -> None:
        where = f"{member}: line {line}" if line is not None else member
        super().__init__(f"{where}: {reason}")
        self.member = member
        self.line = line
        self.reason = reason


class DuplicateUser(ImportStateError):
    """The built-in importer already holds a user with this username or first email.

    Attributes:
        field: ``"username"`` or ``"email"``.
        value: the value as the failing user gave it.
        taken_by: the first ``importIds`` entry of the user who holds it.
    """

    def __init__(self, field: str, value: str, taken_by: str) -> None:
        super().__init__(f"{field} {value!r} is already taken by user {taken_by!r}")
        self.field = field
        self.value = value
        self.taken_by = taken_by


class DuplicateChannel(ImportStateError):
    """The built-in importer already holds a channel with this name.

    Attributes:
        name: the name as the failing channel gave it.
        taken_by: the first ``importIds`` entry of the channel that holds it.
    """

    def __init__(self, name: str, taken_by: str) -> None:
        super().__init__(f"channel name {name!r} is already taken by channel {taken_by!r}")
        self.name = name
        self.taken_by = taken_by


class MissingReference(ImportStateError):
    """The built-in importer holds no record that a record refers to (a message's channel).

    Attributes:
        field: the referring field (``"rid"``, ``"u._id"``).
        import_id: the import id it refers to.
        kind: what it should refer to (``"channel"``, ``"user"``).
    """

    def __init__(self, field: str, import_id: str, kind: str) -> None:
        super().__init__(f"{field} refers to {kind} {import_id!r}, which was not imported")
        self.field = field
        self.import_id = import_id
        self.kind = kind


class GraphvizNotFound(ImportStateError):
    """An SVG diagram was asked for, but Graphviz's ``dot`` program is not on ``PATH``."""

    message = (
        "SVG needs Graphviz's `dot` program, which is not on PATH; install Graphviz"
        " (apt install graphviz, brew install graphviz, or https://graphviz.org/download/)"
        " or choose the mermaid or dot format"
    )


class MissingExtra(ImportStateError, ImportError):
    """A module or command needs one of importstate's extras, which is not installed.

    Also an :class:`ImportError`: importing the module that needs the extra
    raises it.

    Attributes:
        needed_by: what needs the extra (``"importstate's command line"``).
        extra: the extra to install (``cli``, ``server``, ``postgres``,
            ``diagrams``, ``testing``, ``aio``).
    """

    def __init__(self, needed_by: str, extra: str) -> None:
        super().__init__(f"{needed_by} needs the {extra} extra: pip install 'importstate[{extra}]'")
        self.needed_by = needed_by
        self.extra = extra


class UnknownPermission(ImportStateError):
    """An API user was given a permission that does not exist.

    Attributes:
        permission: the name given.
    """

    def __init__(self, permission: str, known: Iterable[str]) -> None:
        super().__init__(f"unknown permission {permission!r} (known: {', '.join(known)})")
        self.permission = permission


class ApiUserExists(ImportStateError):
    """An API user with this name exists already (possibly revoked).

    Attributes:
        name: the name given.
    """

    def __init__(self, name: str) -> None:
        super().__init__(f"an API user named {name!r} already exists")
        self.name = name


class InvalidApiUserName(ImportStateError, ValueError):
    """An API user's name is empty, blank or holds control characters.

    Attributes:
        name: the name given.
    """

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


class EmptyPassword(ImportStateError, ValueError):
    """An API user was given an empty password (no password at all is ``None``)."""

    message = (
        "an empty password cannot be used to log in;"
        " leave the password out for a user that only uses its token"
    )


class UnknownApiUser(ImportStateError):
    """No API user has this name.

    Attributes:
        name: the name given.
    """

    def __init__(self, name: str) -> None:
        super().__init__(f"no API user named {name!r}")
        self.name = name


class WorkersUnsupported(ImportStateError):
    """A parallel run (``workers`` > 1) was asked of a store without batch claims.

    Attributes:
        store: the store's class name.
    """

    def __init__(self, store: str) -> None:
        super().__init__(
            f"{store} cannot share a run between workers (it has no batch claims);"
            " use PostgresStore, or run with workers=1",
        )
        self.store = store


class PruneUnsupported(ImportStateError):
    """``prune`` was asked of a store whose transactions cannot ``delete`` an operation.

    Attributes:
        store: the store's class name.
    """

    def __init__(self, store: str) -> None:
        super().__init__(f"{store} cannot delete operations, so none can be pruned")
        self.store = store


class HistoryUnsupported(ImportStateError):
    """``history`` was asked of a store whose transactions keep no history.

    Such a store works otherwise; its changes are simply not recorded.

    Attributes:
        store: the store's class name.
    """

    def __init__(self, store: str) -> None:
        super().__init__(f"{store} keeps no history of operations")
        self.store = store


class SchemaVersionError(ImportStateError):
    """The database was written by a newer importstate than this one."""


class PostgresUnreachable(ImportStateError):
    """The PostgreSQL database of ``--dsn`` (a ``dsn=`` argument) did not accept a connection.

    Attributes:
        reason: libpq's message, on one line.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"--dsn: cannot connect to PostgreSQL: {reason}")
        self.reason = reason


class CannotListen(ImportStateError):
    """``importstate serve`` could not listen on its address (taken, unknown host, no permission).

    Attributes:
        host: the address asked for.
        port: the port asked for.
        reason: the operating system's reason.
        in_use: another socket listens there already.
    """

    def __init__(self, host: str, port: int, reason: str, *, in_use: bool = False) -> None:
        super().__init__(f"cannot listen on {host}:{port}: {reason}")
        self.host = host
        self.port = port
        self.reason = reason
        self.in_use = in_use


class DatabaseBusy(ImportStateError):
    """Another connection kept the database locked for longer than the store's ``timeout``."""


class ServerStopping(ImportStateError):
    """``import.run`` reached a server that is shutting down."""

    message = "The server is stopping; run the import again once it has restarted."


class StoreFailed(ImportStateError):
    """The store failed for a reason other than a lock (a disk error, a read-only file).

    ``importstate serve`` answers it with 500; the details go to its log.

    Attributes:
        reason: the store's own message.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"The store failed: {reason}")
        self.reason = reason


class ServerFailed(ImportStateError):
    """``importstate serve`` hit an error of its own (500); the details go to its log only."""

    message = "The server failed; its log has the details."


class TooManyBodies(ImportStateError):
    """``importstate serve`` was already reading as many large bodies as it takes at once (503)."""

    message = ("The server is reading as many large request bodies as it takes at once;"
               " send this one again shortly.")


class TooManyConnections(ImportStateError):
    """``importstate serve`` has as many connections open as it takes (503, then closed)."""

    message = "The server has as many connections open as it takes; try again shortly."


class TooManyLogins(ImportStateError):
    """Too many failed logins for a name, or from one client address, of late (429).

    Attributes:
        retry_after: whole seconds until a login may be tried again.
    """

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many failed logins; try again in {retry_after} seconds.")
        self.retry_after = retry_after


def _shown(url: str) -> str:
    """``url`` without the password of its ``user:password@`` part, for a message."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.partition("@")
    if not sep or not at or "/" in userinfo:
        return url
    return f"{scheme}://{userinfo.partition(':')[0]}:***@{host}"


class FetchError(ImportStateError):
    """A file to fetch by URL on a user's behalf was not fetched (Behaviour: file-api).

    Attributes:
        url: the URL at fault (a redirect's, after one); a password in it is
            not shown in the message.
        reason: what is wrong, on one line.
    """

    #: What the message says first.
    prefix: ClassVar[str] = "Not fetched"

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{self.prefix}: {_shown(url)}: {reason}")
        self.url = url
        self.reason = reason


class UrlNotAllowed(FetchError):
    """The URL breaks a rule: its scheme, an address it resolves to, or where its path leads.

    ``reason`` is e.g. ``localhost resolves to 127.0.0.1, a loopback address``.
    """

    prefix = "URL not allowed"


class DownloadFailed(FetchError):
    """An allowed URL could not be fetched: an HTTP status, too large, a timeout, a network error.

    ``reason`` is e.g. ``HTTP 404 Not Found`` or ``connection refused``.
    """

    prefix = "Download failed"
