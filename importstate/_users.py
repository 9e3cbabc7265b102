"""Checks 5 and 6 of ``add_users`` (SPEC §4): the shape of import users."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any, Final, overload

from importstate._ids import new_ids
from importstate.errors import InvalidRoles, InvalidUserList, MissingUserData
from importstate.stores import NewRecord

#: Roles a staged user may carry unless the service is given others.
KNOWN_ROLES: Final = ("user", "admin", "bot", "app", "guest", "livechat-agent")
#: Roles every staged user gets, merged in without duplicates.
DEFAULT_ROLES: Final = ("user",)

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


def as_user_list(users: object) -> list[Any]:
    """``users`` as a list.

    Raises:
        InvalidUserList: ``users`` is not a list (or tuple).
    """
    if not isinstance(users, list | tuple):
        raise InvalidUserList(type(users).__name__)
    return list(users)


def _has_text(value: object) -> bool:
    if not isinstance(value, list):
        return False
    for item in value:  # noqa: SIM110 - a plain loop is faster on the staging hot path
        if item and isinstance(item, str):
            return True
    return False


def _first_missing_data(users: Sequence[Any]) -> int | None:
    for index, user in enumerate(users):
        if not (
            isinstance(user, dict)
            and _has_text(user.get("emails"))
            and _has_text(user.get("importIds"))
        ):
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
    users: Sequence[Any],
    *,
    known_roles: Collection[str] = KNOWN_ROLES,
    default_roles: Sequence[str] = DEFAULT_ROLES,
) -> Records:
    """Check every user, then build the records to stage (roles merged).

    Every user is checked for data before any is checked for roles (SPEC §4).

    Raises:
        MissingUserData: an entry is not an object, or lacks a non-empty
            string in ``emails`` or in ``importIds``.
        InvalidRoles: a user's ``roles`` is not a list of known roles.
    """
    missing = _first_missing_data(users)
    if missing is not None:
        raise MissingUserData(missing)
    _check_roles(users, known_roles)
    encode = _with_roles(default_roles)
    return Records(new_ids(len(users)), [encode(user) for user in users], "user")


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


def _with_roles(default_roles: Sequence[str]) -> Callable[[dict[str, Any]], str]:
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
