"""The operation document (Behaviour: document): one attrs model, one table of its wire fields.

:class:`Operation` is an immutable value. :data:`WIRE_FIELDS` names every key
of the document; :meth:`Operation.from_wire` (the only reader),
:meth:`Operation.to_wire` (the only writer) and the REST API's schema are
driven by it. A status change is :meth:`Operation.fire`, which goes through
the shared machine.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Mapping
from typing import Any, Final, cast

import attrs

from importstate import machine
from importstate._ids import new_id
from importstate._time import format_time, parse_time, to_millis_precision
from importstate.documents import OperationDocument
from importstate.errors import WireFormatError
from importstate.steps import ProgressStep, State, state_of

__all__ = [
    "COUNT_FIELDS",
    "WIRE_FIELDS",
    "Count",
    "Failure",
    "Operation",
    "WireField",
    "WireKind",
]

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


class WireKind(enum.Enum):
    """What a wire field holds, which decides how it is read, written and described."""

    STRING = "string"
    #: Written as ISO-8601 UTC with milliseconds and ``Z``; read in the three forms of
    #: Behaviour: document.
    TIME = "time"
    #: A :class:`ProgressStep`'s value.
    STATUS = "status"
    BOOL = "bool"
    #: A :class:`Count` object.
    COUNT = "count"
    #: A :class:`Failure` object.
    FAILURE = "failure"


@attrs.frozen
class WireField:
    """One key of the operation document and the :class:`Operation` attribute behind it.

    A required field is always written and must be there to read; an optional
    one is written only when set (``count``: when it holds a key).
    """

    wire: str
    attr: str
    kind: WireKind
    required: bool = True


#: The operation document's keys, in Rocket.Chat's order (Behaviour: document).
WIRE_FIELDS: Final = (
    WireField("_id", "id", WireKind.STRING),
    WireField("type", "type", WireKind.STRING),
    WireField("importerKey", "importer_key", WireKind.STRING),
    WireField("ts", "ts", WireKind.TIME),
    WireField("status", "status", WireKind.STATUS),
    WireField("valid", "valid", WireKind.BOOL),
    WireField("user", "user", WireKind.STRING),
    WireField("_updatedAt", "updated_at", WireKind.TIME),
    WireField("count", "count", WireKind.COUNT, required=False),
    WireField("contentType", "content_type", WireKind.STRING, required=False),
    WireField("file", "file", WireKind.STRING, required=False),
    WireField("failure", "failure", WireKind.FAILURE, required=False),
)

#: What a reader is given for a key the document lacks.
_ABSENT: Final = object()


def _missing(key: str) -> WireFormatError:
    return WireFormatError(key, "missing")


def _read_string(value: object, key: str) -> str:
    if value is _ABSENT:
        raise _missing(key)
    if not isinstance(value, str):
        raise WireFormatError(key, f"expected a string, got {type(value).__name__}")
    return value


def _read_time(value: object, key: str) -> dt.datetime:
    if value is _ABSENT:
        raise _missing(key)
    return parse_time(value, key)


def _read_status(value: object, key: str) -> ProgressStep:
    text = _read_string(value, key)
    try:
        return ProgressStep(text)
    except ValueError:
        raise WireFormatError(key, f"unknown status {text!r}") from None


def _read_bool(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise WireFormatError(key, "expected a boolean")
    return value


def _read_count(value: object, _key: str) -> Count:
    return Count.from_wire(value)


def _read_failure(value: object, _key: str) -> Failure:
    return Failure.from_wire(value)


def _status_value(step: ProgressStep) -> str:
    return step.value


def _count_when_set(count: Count) -> dict[str, int] | None:
    return count.to_wire() or None


@attrs.frozen
class _Codec:
    """How one kind of field is read and written.

    ``read`` takes the key's value (``_ABSENT`` if missing) and the key, and
    raises WireFormatError naming it. ``write`` takes a set value and gives
    the wire value, or None to leave the key out; without one the value is
    written as it is.
    """

    read: Callable[[object, str], object]
    write: Callable[[Any], object] | None


_CODECS: Final = {
    WireKind.STRING: _Codec(_read_string, None),
    WireKind.TIME: _Codec(_read_time, format_time),
    WireKind.STATUS: _Codec(_read_status, _status_value),
    WireKind.BOOL: _Codec(_read_bool, None),
    WireKind.COUNT: _Codec(_read_count, _count_when_set),
    WireKind.FAILURE: _Codec(_read_failure, Failure.to_wire),
}

_WIRE_KEYS: Final = frozenset(field.wire for field in WIRE_FIELDS)
# The converters run for every document read or written: flat tuples keep lookups out of
# their loops.
_WRITERS: Final = tuple((f.wire, f.attr, _CODECS[f.kind].write) for f in WIRE_FIELDS)
_READERS: Final = tuple((f.wire, f.attr, _CODECS[f.kind].read, f.required) for f in WIRE_FIELDS)
# status and valid decide the state: from_wire names a misfit there before any other.
_STATE_READERS: Final = tuple(
    reader for reader, f in zip(_READERS, WIRE_FIELDS, strict=True)
    if f.kind in {WireKind.STATUS, WireKind.BOOL}
)
_REQUIRED_TIMES: Final = tuple(
    f.wire for f in WIRE_FIELDS if f.kind is WireKind.TIME and f.required
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
        """The state computed from ``status`` and ``valid`` (Behaviour: states)."""
        return state_of(self.status, valid=self.valid)

    @classmethod
    def create(
        cls,
        *,
        user: str,
        at: dt.datetime,
        type: str = "api",  # noqa: A002 - the wire name
        importer_key: str | None = None,
        operation_id: str | None = None,
    ) -> Operation:
        """A new operation at ``importer_new``, moved there by the machine's ``create`` event.

        Its ``_id`` is ``operation_id``, else a fresh one.
        """
        status, valid = machine.fire(machine.Event.CREATE, None)
        at = to_millis_precision(at)
        return cls(
            id=operation_id if operation_id is not None else new_id(),
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

    def to_wire(self) -> OperationDocument:
        """The JSON-ready wire document, keys in Rocket.Chat's order (:data:`WIRE_FIELDS`)."""
        doc: dict[str, Any] = {}
        for wire, attr, write in _WRITERS:
            value = getattr(self, attr)
            if value is not None and write is not None:
                value = write(value)
            if value is not None:
                doc[wire] = value
        return cast("OperationDocument", doc)

    @classmethod
    def from_wire(cls, doc: object) -> Operation:
        """Read a wire document (any of the three ``ts`` forms).

        A document with several misfits names the first of: an unknown key,
        ``status``, ``valid``, a missing time, then each key in wire order.

        Raises:
            WireFormatError: the document does not fit; ``field`` names the key.
        """
        if not isinstance(doc, Mapping):
            raise WireFormatError("$", f"expected an object, got {type(doc).__name__}")
        unknown = sorted(set(doc) - _WIRE_KEYS)
        if unknown:
            raise WireFormatError(unknown[0], "unknown key")
        values: dict[str, Any] = {}
        for wire, attr, read, _ in _STATE_READERS:
            values[attr] = read(doc.get(wire, _ABSENT), wire)
        for wire in _REQUIRED_TIMES:
            if wire not in doc:
                raise _missing(wire)
        for wire, attr, read, required in _READERS:
            value = doc.get(wire, _ABSENT)
            # An optional key the document lacks is left to the attribute's default.
            if attr not in values and (required or value is not _ABSENT):
                values[attr] = read(value, wire)
        return cls(**values)


_OPERATION_FIELDS: Final = tuple(field.name for field in attrs.fields(Operation))
