"""The operation document (SPEC §3): one attrs model, one converter each way.

:class:`Operation` is an immutable value. :meth:`Operation.from_wire` is the
only reader of the wire format and :meth:`Operation.to_wire` the only writer;
a status change is :meth:`Operation.fire`, which goes through the shared
machine.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Final

import attrs

from importstate import machine
from importstate._ids import new_id
from importstate._time import format_time, parse_time, to_millis_precision
from importstate.errors import WireFormatError
from importstate.steps import ProgressStep, State, state_of

COUNT_FIELDS: Final = ("total", "completed", "error", "users", "channels", "messages")


@attrs.frozen
class Count:
    """``count`` of an operation; ``None`` is a key absent from the document (0 to a reader)."""

    total: int | None = None
    completed: int | None = None
    error: int | None = None
    users: int | None = None
    channels: int | None = None
    messages: int | None = None

    def get(self, name: str) -> int:
        """The value of ``name``, with an absent key read as 0."""
        value: int | None = getattr(self, name)
        return value or 0

    def added(self, **amounts: int) -> Count:
        """A copy with each named count increased (absent counts start at 0)."""
        # Built directly, not with attrs.evolve: a run adds to the counts once per batch.
        values = {name: getattr(self, name) for name in COUNT_FIELDS}
        for name, amount in amounts.items():
            values[name] = (values[name] or 0) + amount
        return Count(**values)

    def to_wire(self) -> dict[str, int]:
        """The ``count`` object, present keys only."""
        return {k: v for k in COUNT_FIELDS if (v := getattr(self, k)) is not None}

    @classmethod
    def from_wire(cls, doc: object) -> Count:
        """Read a ``count`` object.

        Raises:
            WireFormatError: naming ``count`` or ``count.<key>``.
        """
        if not isinstance(doc, Mapping):
            raise WireFormatError("count", "expected an object")
        values: dict[str, int] = {}
        for key, value in doc.items():
            if key not in COUNT_FIELDS:
                raise WireFormatError(f"count.{key}", "unknown count")
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise WireFormatError(f"count.{key}", "expected a non-negative integer")
            values[key] = value
        return cls(**values)


@attrs.frozen
class Failure:
    """Why an operation failed **(ours)**: the message and when it happened."""

    message: str
    at: dt.datetime = attrs.field(converter=to_millis_precision)

    def to_wire(self) -> dict[str, str]:
        """The ``failure`` object."""
        return {"message": self.message, "at": format_time(self.at)}

    @classmethod
    def from_wire(cls, doc: object) -> Failure:
        """Read a ``failure`` object.

        Raises:
            WireFormatError: naming ``failure`` or ``failure.<key>``.
        """
        if not isinstance(doc, Mapping):
            raise WireFormatError("failure", "expected an object")
        message = doc.get("message")
        if not isinstance(message, str):
            raise WireFormatError("failure.message", "expected a string")
        return cls(message, parse_time(doc.get("at"), "failure.at"))


def _string(doc: Mapping[str, Any], key: str, *, required: bool = True) -> str | None:
    if key not in doc:
        if required:
            raise WireFormatError(key, "missing")
        return None
    value = doc[key]
    if not isinstance(value, str):
        raise WireFormatError(key, f"expected a string, got {type(value).__name__}")
    return value


_KNOWN_KEYS: Final = frozenset(
    {"_id", "type", "importerKey", "ts", "status", "valid", "user", "_updatedAt", "count",
     "contentType", "file", "failure"},
)


@attrs.frozen
class Operation:
    """One import operation, as Rocket.Chat stores it.

    Build one with :meth:`from_wire` or :meth:`create`; change it with
    :meth:`fire` (status moves) or :func:`attrs.evolve` (counts, files).
    Times are UTC with millisecond precision.
    """

    id: str
    type: str
    importer_key: str
    ts: dt.datetime = attrs.field(converter=to_millis_precision)
    status: ProgressStep
    valid: bool
    user: str
    updated_at: dt.datetime = attrs.field(converter=to_millis_precision)
    count: Count = Count()
    content_type: str | None = None
    file: str | None = None
    failure: Failure | None = None

    @property
    def state(self) -> State:
        """The state computed from ``status`` and ``valid`` (SPEC §2)."""
        return state_of(self.status, valid=self.valid)

    @classmethod
    def create(
        cls,
        *,
        user: str,
        at: dt.datetime,
        type: str = "api",  # noqa: A002 - the wire name
        importer_key: str | None = None,
    ) -> Operation:
        """A new operation at ``importer_new``, moved there by the machine's ``create`` event."""
        status, valid = machine.fire(machine.Event.CREATE, None)
        at = to_millis_precision(at)
        return cls(
            id=new_id(),
            type=type,
            importer_key=importer_key if importer_key is not None else type,
            ts=at,
            status=status,
            valid=valid,
            user=user,
            updated_at=at,
        )

    def fire(
        self,
        event: machine.Event,
        *,
        at: dt.datetime,
        step: ProgressStep | None = None,
        **changes: Any,  # noqa: ANN401 - other fields to set in the same write
    ) -> Operation:
        """The operation after ``event`` (and ``changes``), stamped at ``at``.

        Raises:
            InvalidTransition: the machine refuses ``event`` here.
        """
        status, valid = machine.fire(event, self.status, valid=self.valid, step=step)
        return self.touched(at, status=status, valid=valid, **changes)

    def touched(self, at: dt.datetime, **changes: Any) -> Operation:  # noqa: ANN401
        """A copy with ``changes`` and ``_updatedAt`` set to ``at`` (never moving backwards)."""
        stamp = max(to_millis_precision(at), self.updated_at)
        # Built directly, not with attrs.evolve: a run stamps its operation once per batch.
        values = {name: getattr(self, name) for name in _OPERATION_FIELDS}
        values.update(changes, updated_at=stamp)
        return Operation(**values)

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready wire document, keys in Rocket.Chat's order."""
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
        count = self.count.to_wire()
        if count:
            doc["count"] = count
        if self.content_type is not None:
            doc["contentType"] = self.content_type
        if self.file is not None:
            doc["file"] = self.file
        if self.failure is not None:
            doc["failure"] = self.failure.to_wire()
        return doc

    @classmethod
    def from_wire(cls, doc: object) -> Operation:
        """Read a wire document (any of the three ``ts`` forms).

        Raises:
            WireFormatError: the document does not fit; ``field`` names the key.
        """
        if not isinstance(doc, Mapping):
            raise WireFormatError("$", f"expected an object, got {type(doc).__name__}")
        unknown = sorted(set(doc) - _KNOWN_KEYS)
        if unknown:
            raise WireFormatError(unknown[0], "unknown key")
        status = _required(doc, "status")
        try:
            step = ProgressStep(status)
        except ValueError:
            raise WireFormatError("status", f"unknown status {status!r}") from None
        valid = doc.get("valid")
        if not isinstance(valid, bool):
            raise WireFormatError("valid", "expected a boolean")
        if "ts" not in doc:
            raise WireFormatError("ts", "missing")
        if "_updatedAt" not in doc:
            raise WireFormatError("_updatedAt", "missing")
        return cls(
            id=_required(doc, "_id"),
            type=_required(doc, "type"),
            importer_key=_required(doc, "importerKey"),
            ts=parse_time(doc["ts"], "ts"),
            status=step,
            valid=valid,
            user=_required(doc, "user"),
            updated_at=parse_time(doc["_updatedAt"], "_updatedAt"),
            count=Count.from_wire(doc["count"]) if "count" in doc else Count(),
            content_type=_string(doc, "contentType", required=False),
            file=_string(doc, "file", required=False),
            failure=Failure.from_wire(doc["failure"]) if "failure" in doc else None,
        )


def _required(doc: Mapping[str, Any], key: str) -> str:
    value = _string(doc, key)
    assert value is not None  # noqa: S101 - _string raises for a missing required key
    return value


_OPERATION_FIELDS: Final = tuple(field.name for field in attrs.fields(Operation))
