"""The ``slack-users`` importer: the CSV that Slack's "Export member list" writes.

Behaviour: files.

One CSV with a header row::

    username,email,status,billing-active,has-2fa,has-sso,userid,fullname,displayname,...

Column 0 is the username, 1 the email (rows without one are skipped), 2 the
account type, 7 the full name and 8 the display name; the import id is the
email. ``Admin``, ``Owner`` and ``Primary Owner`` accounts get the ``admin``
role, guests ``guest``, ``Bot`` accounts are bots and ``Deactivated`` ones
deleted.
"""

from __future__ import annotations

from typing import IO, Any, Final

from importstate.errors import FileFormatError
from importstate.loaders._protocol import FileLimits, Sink
from importstate.loaders._text import csv_rows
from importstate.records import DataType

#: Roles by account type (lower-cased).
_ROLES: Final = {"admin": "admin", "owner": "admin", "primary owner": "admin",
                 "multi-channel guest": "guest", "single-channel guest": "guest", "bot": "bot"}
_NAME_COLUMNS: Final = (7, 8)
_MIN_COLUMNS: Final = 3


class SlackUsersLoader:
    """Slack's member list: one CSV of users."""

    key = "slack-users"
    name = "Slack_Users"
    content_type = "text/csv"

    def load(self, file: IO[bytes], name: str, sink: Sink, limits: FileLimits) -> None:
        """Stage the users of the member list, its header row skipped."""
        sink.preparing(DataType.USER)
        rows = csv_rows(file, name, limits.max_line)
        next(rows, None)  # the header row
        sink.stage(DataType.USER, name, (
            (line, user) for line, row in rows if (user := _user(name, line, row)) is not None
        ))


def _user(member: str, line: int, row: list[str]) -> dict[str, Any] | None:
    if len(row) < _MIN_COLUMNS:
        reason = f"expected at least {_MIN_COLUMNS} columns, found {len(row)}"
        raise FileFormatError(member, line, reason)
    username, email, account = (value.strip() for value in row[:_MIN_COLUMNS])
    if not email:
        return None
    names = [row[column].strip() for column in _NAME_COLUMNS if column < len(row)]
    user: dict[str, Any] = {
        "importIds": [email], "emails": [email], "username": username or email,
        "name": next((name for name in names if name), username or email),
        "type": "bot" if account.lower() == "bot" else "user",
    }
    role = _ROLES.get(account.lower())
    if role is not None:
        user["roles"] = [role]
    if account.lower() == "deactivated":
        user["deleted"] = True
    return user
