"""What may be staged: the shape of users, channels and messages.

Behaviour: service checks 5-6, records.

Every record given is checked before any is encoded, and each kind's
defaults are merged in as it is encoded (a user's roles, a channel's ``t``
and ``users``), so a store is handed text to copy and an importer the whole
record.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any, Final, overload

from importstate._ids import new_ids
from importstate._time import epoch_millis, parse_time
from importstate.errors import InvalidRoles, WireFormatError
from importstate.records import DataType, RecordKind
from importstate.stores import NewRecord

#: Roles a staged user may carry unless the service is given others.
KNOWN_ROLES: Final = ("user", "admin", "bot", "app", "guest", "livechat-agent")
#: Roles every staged user gets, merged in without duplicates.
DEFAULT_ROLES: Final = ("user",)
#: A channel's ``t``: public, private, direct; the first is the default (Behaviour: records).
CHANNEL_TYPES: Final = ("c", "p", "d")
#: The epoch milliseconds a datetime can hold, as ``parse_time`` reads them.
_FIRST_MILLIS: Final = epoch_millis(dt.datetime.min.replace(tzinfo=dt.UTC))
_LAST_MILLIS: Final = epoch_millis(dt.datetime.max.replace(tzinfo=dt.UTC))

def _refuse(value: object) -> object:
    msg = f"Object of type {type(value).__name__} is not JSON serializable"
    raise TypeError(msg)


_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), default=_refuse)
# The C encoder behind json.dumps, made once: json.dumps builds it again for every
# value, which is a third of the cost of encoding one user. Without its circular
# check (a staged user is JSON data), a cycle ends in RecursionError instead.
_C_ENCODER: Final = (
    # Its flags go by position: sort_keys, skipkeys, allow_nan.
    json.encoder.c_make_encoder(  # type: ignore[attr-defined]
        None, _refuse, json.encoder.encode_basestring_ascii, None, ":", ",",
        False, False, True,  # noqa: FBT003
    )
    if json.encoder.c_make_encoder is not None  # type: ignore[attr-defined]
    else None
)


def _encode(value: object) -> str:
    """``value`` as compact JSON text.

    Raises:
        TypeError: it holds a value JSON cannot (a ``datetime``).
        ValueError: it refers to itself.
    """
    if _C_ENCODER is None:
        return _ENCODER.encode(value)
    try:
        return "".join(_C_ENCODER(value, 0))
    except RecursionError:
        msg = "Circular reference detected"
        raise ValueError(msg) from None


def as_list(records: object, kind: RecordKind) -> list[Any]:
    """``records`` as a list.

    Raises:
        InvalidRecordList: ``records`` is not a list (or tuple); the kind's subclass.
    """
    if not isinstance(records, list | tuple):
        raise kind.not_a_list(type(records).__name__)
    return list(records)


def _has_text(value: object) -> bool:
    if not isinstance(value, list):
        return False
    for item in value:  # noqa: SIM110 - a plain loop is faster on the staging hot path
        if item and isinstance(item, str):
            return True
    return False


def _is_text(value: object) -> bool:
    return isinstance(value, str) and value != ""


def _user_fits(user: object) -> bool:
    return (
        isinstance(user, dict)
        and _has_text(user.get("emails"))
        and _has_text(user.get("importIds"))
    )


def _channel_fits(channel: object) -> bool:
    if not (isinstance(channel, dict) and _has_text(channel.get("importIds"))
            and _is_text(channel.get("name"))):
        return False
    members = channel.get("users", [])
    return (
        channel.get("t", CHANNEL_TYPES[0]) in CHANNEL_TYPES
        and isinstance(members, list) and all(isinstance(member, str) for member in members)
    )


def _message_fits(message: object) -> bool:
    if not (isinstance(message, dict) and _has_text(message.get("importIds"))
            and _is_text(message.get("rid")) and isinstance(message.get("msg"), str)):
        return False
    author = message.get("u")
    return isinstance(author, dict) and _is_text(author.get("_id")) and _is_time(message.get("ts"))


def _is_time(value: object) -> bool:
    """ISO-8601 or epoch milliseconds (an integer, or its digits), as the wire format reads times.

    Behaviour: document.
    """
    if type(value) is int:  # the common case, without building the datetime
        return _FIRST_MILLIS <= value <= _LAST_MILLIS
    try:
        parse_time(value, "ts")
    except WireFormatError:
        return False
    return True


def _first_misfit(records: Sequence[Any], fits: Callable[[object], bool]) -> int | None:
    for index, record in enumerate(records):
        if not fits(record):
            return index
    return None


def _check_roles(users: Sequence[dict[str, Any]], known: Collection[str]) -> None:
    for index, user in enumerate(users):
        roles = user.get("roles")
        if roles is None:
            continue
        if not isinstance(roles, list):
            raise InvalidRoles(index, roles)
        for role in roles:
            if not isinstance(role, str) or role not in known:
                raise InvalidRoles(index, role)


def prepare(
    kind: RecordKind,
    records: Sequence[Any],
    *,
    known_roles: Collection[str] = KNOWN_ROLES,
    default_roles: Sequence[str] = DEFAULT_ROLES,
) -> Records:
    """Check every record of ``kind``, then build the records to stage (defaults merged).

    Every record is checked for its data before any user is checked for
    roles (Behaviour: service); ``known_roles`` and ``default_roles`` concern users only.

    Raises:
        MissingRecordData: an entry is not an object or lacks required data
            (the kind's subclass, e.g. :class:`~importstate.MissingUserData`).
        InvalidRoles: a user's ``roles`` is not a list of known roles.
    """
    fits, encoder = _SHAPES[kind.data_type]
    misfit = _first_misfit(records, fits)
    if misfit is not None:
        raise kind.missing(misfit)
    if kind.data_type is DataType.USER:
        _check_roles(records, known_roles)
    encode = encoder(default_roles)
    texts = [encode(record) for record in records]
    return Records(new_ids(len(records)), texts, kind.data_type.value)


class Records(Sequence[NewRecord]):
    """Records to stage, kept as columns of text; each :class:`NewRecord` is made as it is read.

    A list of 200,000 records would be 200,000 tuples the garbage collector
    tracks (a tuple subclass is never untracked), and staging them would set
    off full collections over the caller's whole heap; lists of strings it
    does not track at all.
    """

    def __init__(self, ids: list[str], texts: list[str], data_type: str) -> None:
        self._ids, self._texts, self._data_type = ids, texts, data_type

    def __len__(self) -> int:
        return len(self._ids)

    @overload
    def __getitem__(self, index: int) -> NewRecord: ...
    @overload
    def __getitem__(self, index: slice) -> list[NewRecord]: ...

    def __getitem__(self, index: int | slice) -> NewRecord | list[NewRecord]:
        if isinstance(index, slice):
            return list(itertools.islice(self, *index.indices(len(self))))
        return NewRecord(self._ids[index], self._texts[index], self._data_type)

    def __iter__(self) -> Iterator[NewRecord]:
        new, kind = tuple.__new__, self._data_type  # tuples built in C: the staging hot path
        for record_id, text in zip(self._ids, self._texts, strict=True):
            yield new(NewRecord, (record_id, text, kind))


_Encoder = Callable[[dict[str, Any]], str]


def _with_roles(default_roles: Sequence[str]) -> _Encoder:
    """An encoder of one user as JSON text with the default roles merged in.

    A merged copy is made only when the roles change, and dropped once
    encoded: holding 200,000 copies until the insert would make the garbage
    collector rescan them again and again.
    """
    encode = _encode
    defaults = list(dict.fromkeys(default_roles))
    required = frozenset(defaults)
    # A user without "roles" is a JSON object with at least "emails": close it with the roles.
    roles_suffix = encode({"roles": defaults})[1:]

    def encoded(user: dict[str, Any]) -> str:
        roles = user.get("roles")
        if roles is None:
            return encode(user)[:-1] + "," + roles_suffix
        distinct = set(roles)
        if len(distinct) == len(roles) and required <= distinct:
            return encode(user)  # nothing to merge
        return encode({**user, "roles": list(dict.fromkeys([*roles, *defaults]))})

    return encoded


def _with_channel_defaults(_default_roles: Sequence[str]) -> _Encoder:
    """An encoder of one channel with ``t`` (public) and ``users`` (none) filled in when absent."""
    encode = _encode

    def encoded(channel: dict[str, Any]) -> str:
        if "t" in channel and "users" in channel:
            return encode(channel)
        return encode({"t": CHANNEL_TYPES[0], "users": [], **channel})

    return encoded


def _as_given(_default_roles: Sequence[str]) -> _Encoder:
    """An encoder of one record as it was given (messages have no defaults)."""
    return _encode


#: Each kind's check of one record, and the encoder that merges its defaults in.
_Shape = tuple[Callable[[object], bool], Callable[[Sequence[str]], _Encoder]]
_SHAPES: Final[dict[DataType, _Shape]] = {
    DataType.USER: (_user_fits, _with_roles),
    DataType.CHANNEL: (_channel_fits, _with_channel_defaults),
    DataType.MESSAGE: (_message_fits, _as_given),
}
