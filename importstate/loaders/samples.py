"""Sample exports in the three layouts, written as they are generated: to try the loaders on.

``importstate demo`` loads them, the tests build their round trips on them
and ``benchmarks/bench_loaders.py`` times them at 200,000 users and 1,000,000
messages; memory stays flat whatever the size. Each writer returns what the
loader will stage from it. The same arguments write the same file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from collections.abc import Iterator
from typing import IO, Any, Final

import attrs

__all__ = ["SampleExport", "write_csv_export", "write_slack_export", "write_slack_users"]

#: The first message's time, in epoch seconds (2023-11-14 22:13:20 UTC).
START: Final = 1_700_000_000
_DAY: Final = 86_400
#: Messages of a conversation per day file.
PER_DAY: Final = 100
#: Direct messages are between the first this many users.
_DIRECT_USERS: Final = 50


@attrs.frozen
class SampleExport:
    """What a sample export holds: the records its loader stages from it."""

    path: str
    users: int
    channels: int
    messages: int

    @property
    def records(self) -> int:
        """Users, channels and messages together."""
        return self.users + self.channels + self.messages


def _spread(count: int, parts: int, part: int) -> range:
    """The indices of ``part`` when ``count`` items are cut into ``parts`` runs in order."""
    return range(count * part // parts, count * (part + 1) // parts)


def _text(n: int) -> str:
    # Now and then the text needs CSV quoting: a comma, a quote, a line break.
    extra = (", with a comma", ' "quoted"', "\nover two lines", "")[n % 4]
    return f"message {n}{extra}"


def _csv_line(*fields: object) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(fields)
    return out.getvalue()


def _member(archive: zipfile.ZipFile, name: str) -> IO[str]:
    return io.TextIOWrapper(archive.open(name, "w", force_zip64=True), encoding="utf-8",
                            newline="")


def _pairs(count: int, users: int) -> Iterator[tuple[int, int]]:
    """``count`` direct messages' writer and reader, among the first users."""
    among = min(users, _DIRECT_USERS)
    for n in range(count):
        one = n % among
        other = (one + 1 + (n // among) % (among - 1)) % among
        yield one, other


def write_csv_export(
    path: str | os.PathLike[str], *, users: int, channels: int, messages: int,
) -> SampleExport:
    """A CSV import zip: every third channel private, a tenth of the messages direct.

    Raises:
        ValueError: fewer than two users, or messages without a channel.
    """
    _check(users, channels, messages)
    direct = messages // 10 if users >= 2 else 0  # noqa: PLR2004 - a pair
    in_channels = messages - direct
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with _member(archive, "users.csv") as out:
            for n in range(users):
                out.write(_csv_line(f"user{n}", f"user{n}@example.com", f"User {n}"))
        with _member(archive, "channels.csv") as out:
            for c in range(channels):
                members = ";".join(f"user{m % users}" for m in range(c, c + 5))
                privacy = "private" if c % 3 == 2 else "public"  # noqa: PLR2004 - every third
                out.write(_csv_line(f"channel-{c}", "user0", privacy, members))
        for c in range(channels):
            with _member(archive, f"channel-{c}/messages.csv") as out:
                for n in _spread(in_channels, channels, c):
                    out.write(_csv_line(f"user{n % users}", (START + n) * 1000, _text(n)))
        pairs = set()
        if direct:
            with _member(archive, "directmessages/messages.csv") as out:
                for n, (one, other) in enumerate(_pairs(direct, users)):
                    pairs.add(frozenset((one, other)))
                    out.write(_csv_line(f"user{one}", f"user{other}",
                                        (START + in_channels + n) * 1000, _text(n)))
    return SampleExport(os.fspath(path), users, channels + len(pairs), messages)


def _check(users: int, channels: int, messages: int) -> None:
    if users < 2:  # noqa: PLR2004 - a pair
        msg = f"a sample export needs at least two users, not {users}"
        raise ValueError(msg)
    if messages and not channels:
        msg = "messages need at least one channel"
        raise ValueError(msg)


def _listing(archive: zipfile.ZipFile, name: str, elements: Iterator[dict[str, Any]]) -> None:
    """A JSON array, one element per line, as it is generated."""
    with _member(archive, name) as out:
        out.write("[")
        for n, element in enumerate(elements):
            out.write(",\n    " if n else "\n    ")
            out.write(json.dumps(element, ensure_ascii=False))
        out.write("\n]\n")


def _slack_user(n: int) -> dict[str, Any]:
    return {
        "id": f"U{n:08d}", "name": f"user{n}", "real_name": f"User {n}",
        "deleted": n % 50 == 49,  # noqa: PLR2004 - now and then "is_bot": False, "is_admin": n == 0, "tz_offset": 3600,
        "profile": {"email": f"user{n}@example.com", "real_name": f"User {n}",
                    "display_name": f"user{n}"},
    }


@attrs.frozen
class _Conversation:
    id: str
    folder: str
    listing: str
    members: list[str]


def _conversations(users: int, channels: int) -> list[_Conversation]:
    """Public and private channels, one group conversation, and a fifth as many direct ones."""
    found = []
    for c in range(channels):
        members = [f"U{m % users:08d}" for m in range(c, c + 5)]
        if c % 3 == 2:  # noqa: PLR2004 - every third
            found.append(_Conversation(f"G{c:08d}", f"private-{c}", "groups.json", members))
        else:
            found.append(_Conversation(f"C{c:08d}", f"channel-{c}", "channels.json", members))
    if channels:
        found.append(_Conversation("G99999999", "mpdm-user0--user1--user2-1", "mpims.json",
                                   [f"U{m % users:08d}" for m in range(3)]))
    for d, (one, other) in enumerate(_pairs(max(channels // 5, 1) if channels else 0, users)):
        found.append(_Conversation(f"D{d:08d}", f"D{d:08d}", "dms.json",
                                   [f"U{one:08d}", f"U{other:08d}"]))
    return found


def _slack_listing(conversation: _Conversation) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": conversation.id, "created": START,
                           "members": conversation.members}
    if conversation.listing != "dms.json":
        doc.update(name=conversation.folder, creator=conversation.members[0],
                   is_archived=conversation.id.endswith("7"),
                   topic={"value": f"about {conversation.folder}"},
                   purpose={"value": ""})
    return doc


def _slack_message(conversation: _Conversation, n: int, first: int) -> dict[str, Any]:
    at = n - first
    message: dict[str, Any] = {"type": "message", "ts": _slack_ts(n, at), "text": _text(n),
                               "user": conversation.members[n % len(conversation.members)]}
    if at % 5 == 4:  # noqa: PLR2004 - every fifth answers the one before, in a thread
        message["thread_ts"] = _slack_ts(n - 1, at - 1)
    if at % 7 == 6:  # noqa: PLR2004 - now and then a reaction
        message["reactions"] = [{"name": "thumbsup", "users": [message["user"]], "count": 1}]
    return message


def _slack_ts(n: int, at: int) -> str:
    """The ``ts`` of message ``n``, the ``at``-th of its conversation: a minute apart, by day."""
    seconds = START + (at // PER_DAY) * _DAY + at % PER_DAY * 60
    return f"{seconds}.{n % 1_000_000:06d}"


def write_slack_export(
    path: str | os.PathLike[str], *, users: int, channels: int, messages: int,
) -> SampleExport:
    """A Slack export zip: public and private channels, a group, direct conversations, threads.

    Every third channel is private (``groups.json``); a group conversation
    (``mpims.json``) and a fifth as many direct ones (``dms.json``) come
    after; the messages are spread over all of them, :data:`PER_DAY` per day
    file; every fifth answers the one before it in a thread.

    Raises:
        ValueError: fewer than two users, or messages without a channel.
    """
    _check(users, channels, messages)
    conversations = _conversations(users, channels)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        _listing(archive, "users.json", (_slack_user(n) for n in range(users)))
        for listing in ("channels.json", "groups.json", "mpims.json", "dms.json"):
            _listing(archive, listing, (_slack_listing(c) for c in conversations
                                        if c.listing == listing))
        for index, conversation in enumerate(conversations):
            numbers = _spread(messages, len(conversations), index)
            for day in range(0, len(numbers), PER_DAY):
                date = _date(START + day // PER_DAY * _DAY)
                _listing(archive, f"{conversation.folder}/{date}.json", (
                    _slack_message(conversation, n, numbers.start)
                    for n in numbers[day:day + PER_DAY]
                ))
    return SampleExport(os.fspath(path), users, len(conversations), messages)


def _date(seconds: int) -> str:
    import datetime as dt  # noqa: PLC0415 - only the sample writers need it

    return dt.datetime.fromtimestamp(seconds, dt.UTC).date().isoformat()


def write_slack_users(path: str | os.PathLike[str], *, users: int) -> SampleExport:
    """A Slack member list CSV: a header, an admin, a bot, every tenth deactivated.

    Every twentieth member has no email, and is not staged.
    """
    header = ("username,email,status,billing-active,has-2fa,has-sso,userid,fullname,"
              "displayname,expiration-timestamp\n")
    staged = 0
    with open(path, "w", encoding="utf-8", newline="") as out:  # noqa: PTH123 - a plain write
        out.write(header)
        for n in range(users):
            email = "" if n % 20 == 19 else f"user{n}@example.com"  # noqa: PLR2004
            status = ("Primary Owner" if n == 0 else "Bot" if n == 1
                      else "Deactivated" if n % 10 == 9 else "Member")  # noqa: PLR2004
            full = f"User {n}" if n % 2 else ""
            out.write(_csv_line(f"user{n}", email, status, 1, 0, 0, f"U{n:08d}", full,
                                f"user{n}", ""))
            staged += bool(email)
    return SampleExport(os.fspath(path), staged, 0, 0)
