"""Checks 5 and 6 of ``add_users`` (SPEC §4): the shape of import users."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from typing import Any, Final

from importstate._ids import new_ids
from importstate.errors import InvalidRoles, InvalidUserList, MissingUserData
from importstate.stores import NewRecord

#: Roles a staged user may carry unless the service is given others.
KNOWN_ROLES: Final = ("user", "admin", "bot", "app", "guest", "livechat-agent")
#: Roles every staged user gets, merged in without duplicates.
DEFAULT_ROLES: Final = ("user",)

_ENCODER: Final = json.JSONEncoder(separators=(",", ":"))


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
) -> list[NewRecord]:
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
    encode, new = _with_roles(default_roles), tuple.__new__  # tuples built in C: hot path
    return [
        new(NewRecord, (record_id, encode(user), "user"))
        for record_id, user in zip(new_ids(len(users)), users, strict=True)
    ]


def _with_roles(default_roles: Sequence[str]) -> Callable[[dict[str, Any]], str]:
    """An encoder of one user as JSON text with the default roles merged in.

    A merged copy is made only when the roles change, and dropped once
    encoded: holding 200,000 copies until the insert would make the garbage
    collector rescan them again and again.
    """
    encode = _ENCODER.encode
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
