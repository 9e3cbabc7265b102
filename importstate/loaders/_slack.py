"""The ``slack`` importer: a Slack export zip (Behaviour: files).

::

    users.json                  [{id, name, deleted, is_bot, is_admin, profile: {email, ...}}]
    channels.json               public channels  [{id, name, creator, members, is_archived, ...}]
    groups.json                 private channels (same shape)
    mpims.json                  group conversations (same shape; private here)
    dms.json                    direct conversations [{id, created, members}]
    <folder>/<YYYY-MM-DD>.json  one day of a conversation's messages [{ts, user, text, ...}]

A conversation's folder is its name (its id for a direct one). Slack ids are
the import ids; a message's is its conversation's id and its ``ts``, which is
unique there (``C024BE91L/1503435956.000247``), and its ``ts`` (seconds with a
fraction) becomes epoch milliseconds. The listings are parsed first, then
the day files one at a time, folder by folder and day by day.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final

import attrs

from importstate.errors import FileFormatError
from importstate.loaders._archive import Archive, ArchiveLoader, Reading
from importstate.loaders._protocol import Placed
from importstate.loaders._text import json_elements
from importstate.records import DataType

USERS: Final = "users.json"
#: The listings of conversations and the ``t`` each gives its channels, in the order parsed.
CONVERSATIONS: Final = (("channels.json", "c"), ("groups.json", "p"), ("mpims.json", "p"),
                        ("dms.json", "d"))
_DAY: Final = re.compile(r"\A\d{4}-\d{2}-\d{2}\.json\Z")
_LISTINGS: Final = ", ".join([USERS, *(listing for listing, _ in CONVERSATIONS)])
_ADMINS: Final = ("is_admin", "is_owner", "is_primary_owner")
#: Builds the record of one element: ``build(member, line, element)``; ``None`` skips it.
_Builder = Callable[[str, int, dict[str, Any]], dict[str, Any] | None]


@attrs.define
class _Layout:
    listings: dict[str, str] = attrs.Factory(dict)  # lower-cased name -> member
    days: dict[str, list[str]] = attrs.Factory(dict)  # folder -> its day files


def _layout(archive: Archive) -> _Layout:
    layout = _Layout()
    for member in archive.members:
        parts = member.split("/")
        if len(parts) == 1 and member.lower().endswith(".json"):
            # Slack writes other listings too (integration_logs.json, canvases.json): not imported.
            layout.listings[member.lower()] = member
        elif len(parts) == 2 and parts[0] and _DAY.match(parts[1]):  # noqa: PLR2004
            layout.days.setdefault(parts[0], []).append(member)
        else:
            reason = (f"not part of a Slack export (expected {_LISTINGS} or"
                      " <conversation>/<YYYY-MM-DD>.json)")
            raise FileFormatError(member, None, reason)
    known = [USERS, *(listing for listing, _ in CONVERSATIONS)]
    if not any(name in layout.listings for name in known) and not layout.days:
        raise FileFormatError(archive.name, None, f"not a Slack export (none of {_LISTINGS})")
    return layout


class SlackLoader(ArchiveLoader):
    """Slack's workspace export: users, conversations and their messages, day by day."""

    key = "slack"
    name = "Slack"

    def read(self, reading: Reading) -> None:
        """Stage the users, then the conversations, then their messages."""
        layout = _layout(reading.archive)
        users = layout.listings.get(USERS)
        if users is not None:
            _stage(reading, DataType.USER, users, _user)
        reading.sink.preparing(DataType.CHANNEL)
        folders: dict[str, str] = {}  # a conversation's folder -> its id
        for listing, kind in CONVERSATIONS:
            member = layout.listings.get(listing)
            if member is not None:
                _stage(reading, DataType.CHANNEL, member, _Conversation(kind, folders))
        reading.sink.preparing(DataType.MESSAGE)
        for folder in sorted(layout.days):
            channel = folders.get(folder)
            days = sorted(layout.days[folder])
            if channel is None:
                reason = f"no conversation {folder!r} in {', '.join(c for c, _ in CONVERSATIONS)}"
                raise FileFormatError(days[0], None, reason)
            for member in days:
                _stage(reading, DataType.MESSAGE, member, _Messages(channel))


def _stage(reading: Reading, data_type: DataType, member: str, build: _Builder) -> None:
    with reading.archive.reading(member) as handle:
        elements = json_elements(handle, member, reading.max_line)
        reading.sink.stage(data_type, member, _built(member, elements, build))


def _built(member: str, elements: Iterable[tuple[int, Any]], build: _Builder) -> Iterator[Placed]:
    for line, value in elements:
        if not isinstance(value, dict):
            raise FileFormatError(member, line, f"expected an object, found {type(value).__name__}")
        record = build(member, line, value)
        if record is not None:
            yield line, record


def _string(member: str, line: int, value: dict[str, Any], key: str) -> str:
    found = value.get(key)
    if not isinstance(found, str) or not found:
        raise FileFormatError(member, line, f'expected a non-empty string in "{key}"')
    return found


def _user(member: str, line: int, value: dict[str, Any]) -> dict[str, Any] | None:
    user_id = _string(member, line, value, "id")
    found = value.get("profile")
    profile: dict[str, Any] = found if isinstance(found, dict) else {}
    email = profile.get("email")
    if not isinstance(email, str) or not email:
        return None  # bots and Slackbot have no email: a staged user needs one
    name = value.get("name")
    username = name if isinstance(name, str) and name else user_id
    user: dict[str, Any] = {
        "importIds": [user_id], "emails": [email], "username": username,
        "name": profile.get("real_name") or value.get("real_name") or username,
        "type": "bot" if value.get("is_bot") else "user",
    }
    if value.get("deleted"):
        user["deleted"] = True
    if any(value.get(flag) for flag in _ADMINS):
        user["roles"] = ["admin"]
    offset = value.get("tz_offset")
    if isinstance(offset, int) and not isinstance(offset, bool):
        user["utcOffset"] = offset / 3600
    return user


@attrs.frozen
class _Conversation:
    kind: str
    folders: dict[str, str]

    def __call__(self, member: str, line: int, value: dict[str, Any]) -> dict[str, Any]:
        channel_id = _string(member, line, value, "id")
        name = value.get("name") if self.kind != "d" else None
        name = name if isinstance(name, str) and name else channel_id
        self.folders[name] = channel_id
        members = value.get("members")
        members = members if isinstance(members, list) else []
        channel: dict[str, Any] = {
            "importIds": [channel_id], "name": name, "t": self.kind,
            "users": [m for m in members if isinstance(m, str)],
            "archived": bool(value.get("is_archived")),
        }
        creator = value.get("creator") or value.get("user")
        if isinstance(creator, str) and creator:
            channel["u"] = {"_id": creator}
        for key, field in (("topic", "topic"), ("purpose", "description")):
            text = value.get(key, {}).get("value") if isinstance(value.get(key), dict) else None
            if isinstance(text, str) and text:
                channel[field] = text
        created = value.get("created")
        if isinstance(created, int) and not isinstance(created, bool):
            channel["ts"] = created * 1000
        return channel


def millis(member: str, line: int, ts: object) -> int:
    """Slack's ``ts`` (seconds with a fraction, as text) in epoch milliseconds, exactly.

    Raises:
        FileFormatError: it is not seconds with a fraction.
    """
    if isinstance(ts, str) and ts.isascii():  # isascii: int() takes digits other than 0-9
        seconds, _, fraction = ts.partition(".")
        if seconds.isdigit() and (fraction.isdigit() or not fraction):
            return int(seconds + fraction[:3].ljust(3, "0"))
    reason = f'expected "ts" as seconds with a fraction ("1503435956.000247"), found {ts!r}'
    raise FileFormatError(member, line, reason)


@attrs.frozen
class _Messages:
    channel: str

    def __call__(self, member: str, line: int, value: dict[str, Any]) -> dict[str, Any] | None:
        get, channel = value.get, self.channel  # once per message: the hot path
        author = get("user") or get("bot_id")
        if not author or not isinstance(author, str):
            return None  # a notice without an author (some subtypes): nobody to import it as
        ts, text = get("ts"), get("text")
        message: dict[str, Any] = {
            "importIds": [f"{channel}/{ts}"], "rid": channel, "u": {"_id": author},
            "msg": text if isinstance(text, str) else "", "ts": millis(member, line, ts),
        }
        thread = get("thread_ts")
        if thread is not None and thread != ts and isinstance(thread, str):
            message["tmid"] = f"{channel}/{thread}"
        reactions = get("reactions")
        if isinstance(reactions, list) and reactions:
            message["reactions"] = [
                {"name": r.get("name"), "users": r.get("users", [])}
                for r in reactions if isinstance(r, dict)
            ]
        files = value.get("files")
        if isinstance(files, list) and files:
            message["attachments"] = [
                {"title": f.get("name") or f.get("title"),
                 "url": f.get("url_private_download") or f.get("url_private")}
                for f in files if isinstance(f, dict)
            ]
            attached = _attached_file(files)
            if attached is not None:
                message["_importFile"] = attached
        return message


def _attached_file(files: list[Any]) -> dict[str, Any] | None:
    """The message's first file with a URL, as the target's pending downloads read it.

    Rocket.Chat's imported message carries one file to fetch (``_importFile``);
    the built-in target records its ``downloadUrl`` for ``downloadPendingFiles``.
    """
    for file in files:
        if not isinstance(file, dict):
            continue
        url = file.get("url_private_download") or file.get("url_private")
        if isinstance(url, str) and url:
            attached = {"downloadUrl": url, "name": file.get("name") or file.get("title"),
                        "type": file.get("mimetype"), "size": file.get("size")}
            return {key: value for key, value in attached.items() if value is not None}
    return None
