"""A small reference model of SPEC §4-5, written from the text and not from the service.

:class:`~importstate.testing.ImportServiceMachine` runs it beside a real
service and compares them call by call. It knows only what the spec says:
which operations exist, their status, validity, counts and staged users,
and the time each was last written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Container, Sequence
from typing import Any, Final

import attrs

from importstate import errors
from importstate._time import format_time
from importstate.steps import ProgressStep

# SPEC §1-2, restated: the steps of the ``loading`` state, in their natural order.
LOADING_STEPS: Final = (
    ProgressStep.UPLOADING, ProgressStep.DOWNLOADING_FILE, ProgressStep.FILE_LOADED,
    ProgressStep.PREPARING_STARTED, ProgressStep.PREPARING_USERS,
    ProgressStep.PREPARING_CHANNELS, ProgressStep.PREPARING_MESSAGES,
    ProgressStep.PREPARING_CONTACTS,
)
_STATE_OF_STEP: Final = {
    ProgressStep.NEW: "new",
    **dict.fromkeys(LOADING_STEPS, "loading"),
    ProgressStep.USER_SELECTION: "ready",
    ProgressStep.DONE: "done",
    ProgressStep.IMPORT_FAILED: "error",
    ProgressStep.IMPORT_CANCELLED: "canceled",
}


@attrs.define
class ModelRecord:
    """A staged user: the data an importer must receive and its error messages.

    ``None`` stands for a message the model does not predict (the importer's own).
    """

    data: dict[str, Any]
    errors: list[str | None] = attrs.Factory(list)


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

    @property
    def state(self) -> str:
        """SPEC §2, restated for the steps the model reaches (a run ends before it returns)."""
        if not self.valid and self.status is not ProgressStep.DONE:
            return "error"
        return _STATE_OF_STEP[self.status]

    def to_wire(self) -> dict[str, Any]:
        """The wire document the service must report for this operation."""
        doc: dict[str, Any] = {
            "_id": self.id,
            "type": "api",
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


def rejection(users: Sequence[Any], known_roles: Container[str]) -> str | None:
    """The SPEC §4 message checks 5-6 give for ``users``, or ``None`` if they pass."""
    for user in users:
        if not (
            isinstance(user, dict) and _has_text(user.get("emails"))
            and _has_text(user.get("importIds"))
        ):
            return errors.MissingUserData.message
    for user in users:
        roles = user.get("roles", [])
        if not isinstance(roles, list) or not all(
            isinstance(role, str) and role in known_roles for role in roles
        ):
            return errors.InvalidRoles.message
    return None


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

    def add_users_refusal(self, users: Sequence[Any], known_roles: Container[str]) -> str | None:
        """The message ``add_users`` must fail with (checks 2-6 in order), or ``None``."""
        op = self.current
        if op is None or not op.valid:
            return errors.OperationNotInitialized.message
        if op.state in {"loading", "importing"}:
            return errors.OperationCannotReceiveData.message
        if op.state in {"done", "error", "canceled"}:
            return errors.OperationAlreadyFinished.message
        return rejection(users, known_roles)

    def add_users(self, users: Sequence[dict[str, Any]], default_roles: Sequence[str],
                  now: dt.datetime) -> ModelOperation:
        """Stage ``users`` (roles merged) on the current operation; it becomes ready."""
        op = self.stage(users, default_roles, now)
        op.status = ProgressStep.USER_SELECTION
        return op

    def stage(self, users: Sequence[dict[str, Any]], default_roles: Sequence[str],
              now: dt.datetime) -> ModelOperation:
        """Stage ``users`` (roles merged) on the current operation, keeping its status."""
        op = self.current
        assert op is not None  # noqa: S101 - callers check for a refusal first
        for user in users:
            roles = list(dict.fromkeys([*user.get("roles", []), *default_roles]))
            op.staged.append(ModelRecord({**user, "roles": roles}))
        op.add(total=len(users), users=len(users))
        op.updated_at = now
        return op

    def loading_refusal(self, event: str, step: ProgressStep | None = None) -> str | None:
        """``"not found"`` or ``"transition"`` if a loading-path ``event`` must be refused.

        ``begin_loading`` leaves ``new``; ``advance`` moves forward within
        ``loading``; ``stage`` and ``finish_loading`` need ``loading``.
        """
        op = self.current
        if op is None or not op.valid:
            return "not found"
        if event == "begin_loading":
            allowed = op.state == "new"
        elif event == "advance":
            allowed = (op.state == "loading" and step in LOADING_STEPS
                       and LOADING_STEPS.index(step) > LOADING_STEPS.index(op.status))
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

    def run_refusal(self, importers: Collection[str]) -> str | None:
        """The message ``run`` must fail with, or ``None``."""
        op = self.current
        if op is None or not op.valid:
            return errors.OperationNotFound.message
        if op.status is not ProgressStep.USER_SELECTION:
            return errors.InvalidOperationStatus.message
        if op.importer_key not in importers:
            return errors.ImporterNotDefined.message
        return None

    def run(self, failures: dict[int, str | None], now: dt.datetime) -> ModelOperation:
        """Finish the current operation's run: ``failures`` maps staging index to message."""
        op = self.current
        assert op is not None  # noqa: S101 - callers check run_refusal first
        op.add(completed=len(op.staged) - len(failures), error=len(failures))
        for index, message in failures.items():
            op.staged[index].errors.append(message)
        op.staged = [record for record in op.staged if record.errors]
        op.status, op.updated_at = ProgressStep.DONE, now
        return op

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
