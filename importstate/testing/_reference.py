"""A small reference model of the behaviour, written from the text, not from the service.

Behaviour: service, counts, records, selection.

:class:`~importstate.testing.ImportServiceMachine` runs it beside a real
service and compares them call by call. It knows only what the spec says:
which operations exist, their status, validity, counts and staged records
(users, channels, messages), what a selection keeps, and the time each
operation was last written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Container, Sequence
from typing import Any, Final

import attrs

from importstate import errors
from importstate._time import format_time, parse_time
from importstate.steps import ProgressStep

# Behaviour: steps, states, restated: the steps of the ``loading`` state, in their natural order.
LOADING_STEPS: Final = (
    ProgressStep.UPLOADING, ProgressStep.DOWNLOADING_FILE, ProgressStep.FILE_LOADED,
    ProgressStep.PREPARING_STARTED, ProgressStep.PREPARING_USERS,
    ProgressStep.PREPARING_CHANNELS, ProgressStep.PREPARING_MESSAGES,
    ProgressStep.PREPARING_CONTACTS,
)
# The steps of the ``importing`` state, in their natural order.
IMPORTING_STEPS: Final = (
    ProgressStep.IMPORTING_STARTED, ProgressStep.IMPORTING_USERS,
    ProgressStep.IMPORTING_CHANNELS, ProgressStep.IMPORTING_MESSAGES,
    ProgressStep.IMPORTING_CONTACTS, ProgressStep.IMPORTING_FILES, ProgressStep.FINISHING,
)
# Behaviour: files, file-api, restated: the pending-download importers, by key, with their names.
PENDING_IMPORTERS: Final = {"pending-files": "Pending Files", "pending-avatars": "Pending Avatars"}
_STATE_OF_STEP: Final = {
    ProgressStep.NEW: "new",
    **dict.fromkeys(LOADING_STEPS, "loading"),
    **dict.fromkeys(IMPORTING_STEPS, "importing"),
    ProgressStep.USER_SELECTION: "ready",
    ProgressStep.DONE: "done",
    ProgressStep.IMPORT_FAILED: "error",
    ProgressStep.IMPORT_CANCELLED: "canceled",
}


# Behaviour: records, restated: the types in the order a run imports them, and what counts each.
DATA_TYPES: Final = ("user", "channel", "message")
COUNT_OF: Final = {"user": "users", "channel": "channels", "message": "messages"}
#: Behaviour: selection: the selection entry that stands for every direct channel.
DIRECT_MESSAGES: Final = "__directMessages__"
_WAITING: Final = (ProgressStep.DOWNLOADING_FILE, *LOADING_STEPS[3:])


@attrs.define
class ModelRecord:
    """A staged record: its type, the data an importer must receive and its error messages.

    ``None`` stands for a message the model does not predict (the importer's own).
    """

    data: dict[str, Any]
    errors: list[str | None] = attrs.Factory(list)
    data_type: str = "user"


@attrs.define
class ModelOperation:
    """What the spec says an operation holds."""

    id: str
    user: str
    importer_key: str
    created: int
    ts: dt.datetime
    updated_at: dt.datetime
    status: ProgressStep = ProgressStep.NEW
    valid: bool = True
    count: dict[str, int] = attrs.Factory(dict)
    staged: list[ModelRecord] = attrs.Factory(list)
    file: str | None = None
    content_type: str | None = None
    type: str = "api"

    @property
    def state(self) -> str:
        """The states, restated for the steps the model reaches (a run ends before it returns).

        Behaviour: states.
        """
        if not self.valid and self.status is not ProgressStep.DONE:
            return "error"
        return _STATE_OF_STEP[self.status]

    def to_wire(self) -> dict[str, Any]:
        """The wire document the service must report for this operation."""
        doc: dict[str, Any] = {
            "_id": self.id,
            "type": self.type,
            "importerKey": self.importer_key,
            "ts": format_time(self.ts),
            "status": self.status.value,
            "valid": self.valid,
            "user": self.user,
            "_updatedAt": format_time(self.updated_at),
        }
        if self.count:
            doc["count"] = dict(self.count)
        if self.content_type is not None:
            doc["contentType"] = self.content_type
        if self.file is not None:
            doc["file"] = self.file
        return doc

    def add(self, **amounts: int) -> None:
        """Add to counts, creating absent ones at 0."""
        for name, amount in amounts.items():
            self.count[name] = self.count.get(name, 0) + amount


def _has_text(value: object) -> bool:
    return isinstance(value, list) and any(isinstance(item, str) and item for item in value)


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _time(value: object) -> bool:
    try:
        parse_time(value, "ts")
    except errors.WireFormatError:
        return False
    return True


def _user_ok(user: dict[str, Any]) -> bool:
    return _has_text(user.get("emails")) and _has_text(user.get("importIds"))


def _channel_ok(channel: dict[str, Any]) -> bool:
    members = channel.get("users", [])
    return (
        _has_text(channel.get("importIds")) and _text(channel.get("name"))
        and channel.get("t", "c") in ("c", "p", "d")
        and isinstance(members, list) and all(isinstance(m, str) for m in members)
    )


def _message_ok(message: dict[str, Any]) -> bool:
    author = message.get("u")
    return (
        _has_text(message.get("importIds")) and _text(message.get("rid"))
        and isinstance(author, dict) and _text(author.get("_id"))
        and isinstance(message.get("msg"), str) and _time(message.get("ts"))
    )


_CHECKS: Final = {
    "user": (_user_ok, errors.MissingUserData.message),
    "channel": (_channel_ok, errors.MissingChannelData.message),
    "message": (_message_ok, errors.MissingMessageData.message),
}


def rejection(
    users: Sequence[Any], known_roles: Container[str], data_type: str = "user",
) -> str | None:
    """The message the checks of staging give for the records, or ``None``.

    Behaviour: service checks 5-6, records.
    """
    fits, message = _CHECKS[data_type]
    for record in users:
        if not (isinstance(record, dict) and fits(record)):
            return message
    if data_type != "user":
        return None
    for user in users:
        roles = user.get("roles", [])
        if not isinstance(roles, list) or not all(
            isinstance(role, str) and role in known_roles for role in roles
        ):
            return errors.InvalidRoles.message
    return None


def _first(values: object) -> Any:  # noqa: ANN401 - a JSON value
    return values[0] if isinstance(values, list) and values else None


def _chosen(selection: dict[str, Any] | None, name: str) -> list[str] | None:
    """The import ids chosen of ``users`` or ``channels``; ``None`` for all of them.

    Behaviour: selection.
    """
    if selection is None or name not in selection or selection[name].get("all", False):
        return None
    return list(selection[name].get("list", []))


def kept(records: Sequence[ModelRecord], selection: dict[str, Any] | None) -> list[bool]:
    """Which of the staged ``records`` a run with ``selection`` imports (Behaviour: selection)."""
    users, channels = _chosen(selection, "users"), _chosen(selection, "channels")
    left_out: set[str] = set()
    imported: set[str] = set()
    keep: list[bool] = []
    for record in records:
        data, kind = record.data, record.data_type
        if kind == "user":
            keep.append(users is None or _first(data["importIds"]) in users)
        elif kind == "channel":
            direct = data.get("t") == "d"
            chosen = channels is None or (
                DIRECT_MESSAGES in channels if direct else _first(data["importIds"]) in channels
            )
            (imported if chosen else left_out).update(data["importIds"])
            keep.append(chosen)
        else:
            keep.append(True)
    skipped = left_out - imported
    return [
        k and not (r.data_type == "message" and r.data["rid"] in skipped)
        for r, k in zip(records, keep, strict=True)
    ]


@attrs.define
class ReferenceModel:
    """Every operation created so far, in creation order."""

    operations: list[ModelOperation] = attrs.Factory(list)

    @property
    def current(self) -> ModelOperation | None:
        """The newest operation by ``ts``; ties go to the later created."""
        return max(self.operations, key=lambda op: (op.ts, op.created), default=None)

    def latest(self, limit: int) -> list[ModelOperation]:
        """Newest ``_updatedAt`` first; ties to the newer ``ts``, then the later created."""
        ordered = sorted(
            self.operations, key=lambda op: (op.updated_at, op.ts, op.created), reverse=True,
        )
        return ordered[:limit]

    def clear(self, now: dt.datetime) -> None:
        """``import.clear``: invalidate the valid operations, empty every staging."""
        for op in self.operations:
            if op.valid:
                op.valid, op.updated_at = False, now
            op.staged.clear()

    def new_operation(self, op_id: str, user: str, importer_key: str, now: dt.datetime) -> None:
        """``import.new``: clear, then add an operation at ``importer_new``."""
        self.clear(now)
        self.operations.append(ModelOperation(
            op_id, user, importer_key, len(self.operations), ts=now, updated_at=now,
        ))

    def begin_pending(
        self, op_id: str, user: str, importer_key: str, pending: int, now: dt.datetime,
    ) -> ModelOperation:
        """Clear, then a pending-download operation counting ``pending``; none: done.

        Behaviour: file-api.
        """
        self.new_operation(op_id, user, importer_key, now)
        op = self.operations[-1]
        op.type = PENDING_IMPORTERS[importer_key]
        op.count = {"total": pending, "completed": 0, "error": 0}
        op.status = ProgressStep.IMPORTING_FILES if pending else ProgressStep.DONE
        return op

    def fetch_pending(
        self, op_id: str, fetched: Sequence[bool], now: dt.datetime,
    ) -> ModelOperation:
        """The downloads of ``op_id`` ran: each ``fetched`` or failed, then done.

        Only while it is still downloading: replaced meanwhile, it fails;
        cancelled, moved on or ended, it stays as it is.
        """
        op = next(op for op in self.operations if op.id == op_id)
        if op.status is not ProgressStep.IMPORTING_FILES:
            return op
        if op.valid:
            op.add(completed=sum(fetched), error=len(fetched) - sum(fetched))
            op.status = ProgressStep.DONE
        else:
            op.status = ProgressStep.IMPORT_FAILED
        op.updated_at = now
        return op

    def knows_importer(self, importers: Collection[str]) -> bool:
        """Whether the current operation's key is registered, or a pending-download key."""
        op = self.current
        return op is not None and (
            op.importer_key in importers or op.importer_key in PENDING_IMPORTERS
        )

    def add_users_refusal(
        self, users: Sequence[Any], known_roles: Container[str], data_type: str = "user",
    ) -> str | None:
        """The message ``add_users`` (or its kin) fails with, checks 2-6 in order, or ``None``."""
        op = self.current
        if op is None or not op.valid:
            return errors.OperationNotInitialized.message
        if op.state in {"loading", "importing"}:
            return errors.OperationCannotReceiveData.message
        if op.state in {"done", "error", "canceled"}:
            return errors.OperationAlreadyFinished.message
        return rejection(users, known_roles, data_type)

    def add_users(self, users: Sequence[dict[str, Any]], default_roles: Sequence[str],
                  now: dt.datetime, data_type: str = "user") -> ModelOperation:
        """Stage records (defaults merged) on the current operation; it becomes ready."""
        op = self.stage(users, default_roles, now, data_type)
        op.status = ProgressStep.USER_SELECTION
        return op

    def stage(self, users: Sequence[dict[str, Any]], default_roles: Sequence[str],
              now: dt.datetime, data_type: str = "user") -> ModelOperation:
        """Stage records of ``data_type`` on the current operation, keeping its status.

        A user's roles get the default ones merged in; a channel without
        ``t`` is public (``c``), one without ``users`` has none.
        """
        op = self.current
        assert op is not None  # noqa: S101 - callers check for a refusal first
        for record in users:
            data = dict(record)
            if data_type == "user":
                data["roles"] = list(dict.fromkeys([*record.get("roles", []), *default_roles]))
            elif data_type == "channel":
                data = {"t": "c", "users": [], **record}
            op.staged.append(ModelRecord(data, data_type=data_type))
        op.add(total=len(users), **{COUNT_OF[data_type]: len(users)})
        op.updated_at = now
        return op

    def loading_refusal(self, event: str, step: ProgressStep | None = None) -> str | None:
        """``"not found"`` or ``"transition"`` if a loading-path ``event`` must be refused.

        ``begin_loading`` leaves ``new``; ``advance`` moves forward within
        ``loading`` or within ``importing`` (Behaviour: states); ``stage`` and
        ``finish_loading`` need ``loading``.
        """
        op = self.current
        if op is None or not op.valid:
            return "not found"
        if event == "begin_loading":
            allowed = op.state == "new"
        elif event == "advance":
            allowed = any(
                op.state == state and step in steps and steps.index(step) > steps.index(op.status)
                for state, steps in (("loading", LOADING_STEPS), ("importing", IMPORTING_STEPS))
            )
        else:
            allowed = op.state == "loading"
        return None if allowed else "transition"

    def move(self, status: ProgressStep, now: dt.datetime, **changes: Any) -> ModelOperation:  # noqa: ANN401
        """Set the current operation's status (and ``changes``), as written at ``now``."""
        op = self.current
        assert op is not None  # noqa: S101 - callers check for a refusal first
        op.status, op.updated_at = status, now
        for name, value in changes.items():
            setattr(op, name, value)
        return op

    def run_refusal(self, importers: Collection[str], imports: Container[str]) -> str | None:
        """The message ``run`` must fail with, or ``None``; ``imports``: the types it can import."""
        op = self.current
        if op is None or not op.valid:
            return errors.OperationNotFound.message
        if op.status is not ProgressStep.USER_SELECTION:
            return errors.InvalidOperationStatus.message
        if op.importer_key not in importers:
            return errors.ImporterNotDefined.message
        for data_type in DATA_TYPES:
            if data_type not in imports and any(r.data_type == data_type for r in op.staged):
                return f"The importer ({op.importer_key}) cannot import {data_type} records."
        return None

    def run_order(self, selection: dict[str, Any] | None) -> list[ModelRecord]:
        """The records a run hands the importer, in order: users, channels, then messages."""
        op = self.current
        assert op is not None  # noqa: S101 - callers check run_refusal first
        chosen = [r for r, k in zip(op.staged, kept(op.staged, selection), strict=True) if k]
        return [r for data_type in DATA_TYPES for r in chosen if r.data_type == data_type]

    def run(
        self, failures: dict[int, str | None], now: dt.datetime,
        selection: dict[str, Any] | None = None,
    ) -> ModelOperation:
        """Finish the current operation's run: ``failures`` maps run order index to message.

        The counts shrink to what ``selection`` keeps when the run starts;
        the records it leaves out go with the successes at the end.
        """
        op = self.current
        assert op is not None  # noqa: S101 - callers check run_refusal first
        order = self.run_order(selection)
        for data_type, name in COUNT_OF.items():
            if name in op.count:
                left = sum(1 for r in order if r.data_type == data_type)
                op.count["total"] -= op.count[name] - left
                op.count[name] = left
        op.add(completed=len(order) - len(failures), error=len(failures))
        for index, message in failures.items():
            order[index].errors.append(message)
        op.staged = [record for record in op.staged if record.errors]
        op.status, op.updated_at = ProgressStep.DONE, now
        return op

    def selection(self, names: dict[str, str]) -> dict[str, Any]:
        """What ``selection().to_wire()`` must return for the current operation.

        Behaviour: selection.

        Callers check :meth:`selection_refusal` first.
        """
        op = self.current
        assert op is not None  # noqa: S101 - callers check selection_refusal first
        users, channels, direct = [], [], False
        for record in op.staged:
            data = record.data
            if record.data_type == "user":
                users.append({
                    "user_id": data["importIds"][0], "username": data.get("username"),
                    "email": data["emails"][0], "is_deleted": bool(data.get("deleted")),
                    "is_bot": data.get("type") == "bot", "do_import": True,
                    "is_email_taken": False,
                })
            elif record.data_type == "channel" and data.get("t") == "d":
                direct = True
            elif record.data_type == "channel":
                channels.append({
                    "channel_id": data["importIds"][0], "name": data["name"],
                    "is_archived": bool(data.get("archived")), "do_import": True,
                    "is_private": data.get("t") == "p", "is_direct": False,
                })
        if direct:
            channels.append({
                "channel_id": DIRECT_MESSAGES, "name": DIRECT_MESSAGES, "is_archived": False,
                "do_import": True, "is_private": False, "is_direct": True,
            })
        return {
            "name": names.get(op.importer_key, op.importer_key), "users": users,
            "channels": channels, "contacts": [],
            "message_count": sum(1 for r in op.staged if r.data_type == "message"),
        }

    def selection_refusal(self, importers: Collection[str]) -> str | None:
        """The message ``selection()`` must fail with, or ``None``."""
        op = self.current
        if op is None:
            return errors.OperationNotFound.message
        if not self.knows_importer(importers):
            return errors.ImporterNotDefined.message
        if op.status in _WAITING:
            if not op.valid:
                return errors.InvalidImportOperation.message
            return str(errors.SelectionNotReady(op.status))
        return None

    def cancel_refusal(self) -> str | None:
        """The message ``cancel`` must fail with, or ``None``."""
        op = self.current
        if op is None or not op.valid:
            return errors.OperationNotFound.message
        if op.state in {"done", "error", "canceled"}:
            return errors.OperationAlreadyFinished.message
        return None

    def cancel(self, now: dt.datetime) -> ModelOperation:
        """Cancel the current operation; its staging stays."""
        return self.move(ProgressStep.IMPORT_CANCELLED, now)

    def status(self) -> dict[str, Any]:
        """What ``import.status`` must report."""
        op = self.current
        if op is None:
            return {"state": "none"}
        return {"state": op.state, "operation": op.to_wire()}
