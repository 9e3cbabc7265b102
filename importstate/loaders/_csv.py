"""The ``csv`` importer: Rocket.Chat's CSV zip of users, channels and messages (Behaviour: files).

The files have no header row::

    users.csv                   username,email,name
    channels.csv                name,creator,private|public,member;member;...
    <channel name>/<any>.csv    username,ts (epoch ms),text
    directmessages/<any>.csv    username,otherUsername,ts,text

Users are keyed by username and channels by name (their ``importIds``); a
direct channel stands for each pair of users who wrote to each other, its
import id the two usernames sorted and joined with ``/``. A message's import
id is its member and line (``general/2023.csv:12``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import attrs

from importstate.errors import FileFormatError
from importstate.loaders._archive import Archive, ArchiveLoader, Reading
from importstate.loaders._text import csv_rows, expect_columns
from importstate.records import DataType

USERS: Final = "users.csv"
CHANNELS: Final = "channels.csv"
DIRECT: Final = "directmessages"
_LAYOUT: Final = (f"expected {USERS}, {CHANNELS}, <channel>/<file>.csv or"
                  f" {DIRECT}/<file>.csv")
_PRIVACY: Final = {"private": "p", "public": "c"}
#: Builds the record of one row: ``build(member, line, fields)``.
_Builder = Callable[[str, int, list[str]], dict[str, Any]]


@attrs.define
class _Layout:
    """Which member holds what."""

    users: str | None = None
    channels: str | None = None
    messages: list[str] = attrs.Factory(list)
    direct: list[str] = attrs.Factory(list)


def _layout(archive: Archive) -> _Layout:
    layout = _Layout()
    for member in archive.members:
        parts = member.split("/")
        lowered = member.lower()
        if lowered == USERS:
            layout.users = member
        elif lowered == CHANNELS:
            layout.channels = member
        elif len(parts) == 2 and lowered.endswith(".csv") and parts[0]:  # noqa: PLR2004
            is_direct = parts[0].lower() == DIRECT
            (layout.direct if is_direct else layout.messages).append(member)
        else:
            raise FileFormatError(member, None, f"not part of a CSV import ({_LAYOUT})")
    return layout


class CsvLoader(ArchiveLoader):
    """Rocket.Chat's CSV importer: a zip of ``users.csv``, ``channels.csv`` and message files."""

    key = "csv"
    name = "CSV"

    def read(self, reading: Reading) -> None:
        """Stage the users, the channels (direct ones too), then the messages."""
        layout = _layout(reading.archive)
        if layout.users is not None:
            _stage(reading, DataType.USER, layout.users, _user)
        reading.sink.preparing(DataType.CHANNEL)
        if layout.channels is not None:
            _stage(reading, DataType.CHANNEL, layout.channels, _channel)
        pairs: set[tuple[str, str]] = set()
        for member in layout.direct:  # each pair's channel comes before its messages
            with reading.archive.reading(member) as handle:
                rows = csv_rows(handle, member, reading.max_line)
                pairs.update(_pair(member, line, row) for line, row in rows)
        channels = ((0, _direct_channel(pair)) for pair in sorted(pairs))
        reading.sink.stage(DataType.CHANNEL, DIRECT, channels)
        reading.sink.preparing(DataType.MESSAGE)
        for member in layout.messages:
            _stage(reading, DataType.MESSAGE, member, _InChannel(member.split("/")[0]))
        for member in layout.direct:
            _stage(reading, DataType.MESSAGE, member, _direct_message)


def _stage(reading: Reading, data_type: DataType, member: str, build: _Builder) -> None:
    with reading.archive.reading(member) as handle:
        reading.sink.stage(data_type, member, (
            (line, build(member, line, row))
            for line, row in csv_rows(handle, member, reading.max_line)
        ))


def _text(member: str, line: int, value: str, what: str) -> str:
    value = value.strip()
    if not value:
        raise FileFormatError(member, line, f"the {what} is empty")
    return value


def _user(member: str, line: int, row: list[str]) -> dict[str, Any]:
    expect_columns(member, line, row, 3)
    username = _text(member, line, row[0], "username (column 1)")
    email = _text(member, line, row[1], "email (column 2)")
    user: dict[str, Any] = {"importIds": [username], "emails": [email], "username": username,
                            "type": "user"}
    name = row[2].strip()
    if name:
        user["name"] = name
    return user


def _channel(member: str, line: int, row: list[str]) -> dict[str, Any]:
    expect_columns(member, line, row, 4)
    name = _text(member, line, row[0], "channel name (column 1)")
    privacy = row[2].strip().lower()
    if privacy not in _PRIVACY:
        reason = f"expected private or public in column 3, found {row[2]!r}"
        raise FileFormatError(member, line, reason)
    members = [m.strip() for m in row[3].split(";") if m.strip()]
    channel: dict[str, Any] = {"importIds": [name], "name": name, "t": _PRIVACY[privacy],
                               "users": members}
    creator = row[1].strip()
    if creator:
        channel["u"] = {"_id": creator}
    return channel


def _millis(member: str, line: int, value: str, column: int) -> int:
    if value.isdigit() and value.isascii():  # isascii: int() refuses some digits ("²")
        return int(value)
    text = value.strip()
    if not text.isdigit() or not text.isascii():
        reason = f"expected a time in epoch milliseconds in column {column}, found {value!r}"
        raise FileFormatError(member, line, reason)
    return int(text)


@attrs.frozen
class _InChannel:
    """Builds the messages of one channel's files."""

    channel: str

    def __call__(self, member: str, line: int, row: list[str]) -> dict[str, Any]:
        expect_columns(member, line, row, 3)
        author = _text(member, line, row[0], "username (column 1)")
        return {"importIds": [f"{member}:{line}"], "rid": self.channel, "u": {"_id": author},
                "msg": row[2], "ts": _millis(member, line, row[1], 2)}


def _pair(member: str, line: int, row: list[str]) -> tuple[str, str]:
    expect_columns(member, line, row, 4)
    one = _text(member, line, row[0], "username (column 1)")
    other = _text(member, line, row[1], "other username (column 2)")
    first, second = sorted((one, other))
    return first, second


def direct_id(pair: tuple[str, str]) -> str:
    """The import id of the direct channel of two users: their usernames sorted, joined by ``/``."""
    return "/".join(sorted(pair))


def _direct_channel(pair: tuple[str, str]) -> dict[str, Any]:
    import_id = direct_id(pair)
    return {"importIds": [import_id], "name": import_id, "t": "d", "users": list(pair)}


def _direct_message(member: str, line: int, row: list[str]) -> dict[str, Any]:
    pair = _pair(member, line, row)
    return {"importIds": [f"{member}:{line}"], "rid": direct_id(pair),
            "u": {"_id": row[0].strip()}, "msg": row[3], "ts": _millis(member, line, row[2], 3)}


