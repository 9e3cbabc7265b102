"""Checks 5 and 6 of ``add_users`` (SPEC §4): the shape of import users."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Final

from importstate.errors import InvalidRoles, InvalidUserList, MissingUserData
from importstate.model import new_id
from importstate.stores import NewRecord

#: Roles a staged user may carry unless the service is given others.
KNOWN_ROLES: Final = ("user", "admin", "bot", "app", "guest", "livechat-agent")
#: Roles every staged user gets, merged in without duplicates.
DEFAULT_ROLES: Final = ("user",)


def as_user_list(users: object) -> list[Any]:
    """``users`` as a list.

    Raises:
        InvalidUserList: ``users`` is not a list (or tuple).
    """
    if not isinstance(users, list | tuple):
        raise InvalidUserList(type(users).__name__)
    return list(users)


def _has_text(value: object) -> bool:
    return isinstance(value, list) and any(isinstance(v, str) and v for v in value)


def prepare(
    users: Sequence[Any],
    *,
    known_roles: Collection[str] = KNOWN_ROLES,
    default_roles: Sequence[str] = DEFAULT_ROLES,
) -> list[NewRecord]:
    """Check every user, then build the records to stage (roles merged).

    Raises:
        MissingUserData: an entry is not an object, or lacks a non-empty
            string in ``emails`` or in ``importIds``.
        InvalidRoles: a user's ``roles`` is not a list of known roles.
    """
    for index, user in enumerate(users):
        if not (
            isinstance(user, dict)
            and _has_text(user.get("emails"))
            and _has_text(user.get("importIds"))
        ):
            raise MissingUserData(index)
    for index, user in enumerate(users):
        roles = user.get("roles", [])
        if not isinstance(roles, list):
            raise InvalidRoles(index, roles)
        for role in roles:
            if not isinstance(role, str) or role not in known_roles:
                raise InvalidRoles(index, role)
    return [NewRecord(new_id(), _with_roles(user, default_roles), "user") for user in users]


def _with_roles(user: dict[str, Any], default_roles: Sequence[str]) -> dict[str, Any]:
    return {**user, "roles": list(dict.fromkeys([*user.get("roles", ()), *default_roles]))}
