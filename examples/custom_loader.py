r"""A file importer of your own: Mattermost's bulk export (JSON Lines), loaded as the built-in ones.

A loader (:class:`importstate.loaders.Loader`) reads one file and stages its
users, channels and messages into the sink ``ImportService.load_file`` gives
it; the operation then waits in ``importer_user_selection`` like one loaded
from a CSV zip or a Slack export. Give it to the service::

    service = ImportService(store, {"mattermost": importer},
                            loaders={"mattermost": MattermostLoader()})
    service.load_file("export.jsonl", "mattermost")

or, from a package of yours, declare it as an entry point, and every
service, ``importstate load --importer mattermost`` and the REST server's
``importers.list`` find it::

    [project.entry-points."importstate.loaders"]
    mattermost = "acme_import.mattermost:MattermostLoader"

Run it as a script to load and import a small export into the built-in
target on a temporary SQLite file (``python examples/custom_loader.py
[export.jsonl]``); ``tests/test_example_custom_loader.py`` runs it.

The export is one JSON object a line, ``{"type": ..., "<type>": {...}}``, the
types in this order::

    {"type": "version", "version": 1}
    {"type": "team", "team": {"name": "acme", ...}}
    {"type": "channel", "channel": {"team": "acme", "name": "town-square",
                                    "type": "O", "header": "..."}}
    {"type": "user", "user": {"username": "ann", "email": "ann@example.com",
        "first_name": "Ann", "roles": "system_user system_admin",
        "teams": [{"name": "acme", "channels": [{"name": "town-square"}]}]}}
    {"type": "post", "post": {"team": "acme", "channel": "town-square",
                              "user": "ann", "message": "hi", "create_at": 1700000000000}}
    {"type": "direct_channel", "direct_channel": {"members": ["ann", "bob"]}}
    {"type": "direct_post", "direct_post": {"channel_members": ["ann", "bob"],
                                            "user": "ann", "message": "hi", "create_at": ...}}

A user's import id is its username; a channel's is ``team/name`` and its
members are the users whose ``teams`` list it (channels come before users in
the file, so they are held until the users are read: a workspace has few);
a direct channel's is ``dm:`` and its members' names; a post's is ``post:``
and its line. Teams are not imported (the model has none), nor are replies,
reactions and attachments. A bad line fails the load with a message naming
it: ``export.jsonl: line 4: a user needs a username and an email``.
"""

from __future__ import annotations

import itertools
import json
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Final, NamedTuple

from importstate import FileFormatError, ImportService, Operation, SQLiteStore, UsersTableImporter
from importstate.loaders import FileLimits, Placed, Sink
from importstate.records import DataType

#: The types of line, in the order the export must give them.
ORDER: Final = ("version", "team", "channel", "user", "post", "direct_channel", "direct_post")


class _Line(NamedTuple):
    number: int
    type: str
    body: dict[str, Any]


class MattermostLoader:
    """Mattermost's bulk export: users, channels and posts, one JSON object a line."""

    key = "mattermost"
    name = "Mattermost"
    content_type = "application/x-ndjson"

    def load(self, file: IO[bytes], name: str, sink: Sink, limits: FileLimits) -> None:
        """Stage the export's users, then its channels, then its posts and direct channels."""
        export = _Export(name)
        lines = _lines(file, name, limits.max_line)
        first = next(lines, None)
        if first is None or first.type != "version" or first.body.get("version") != 1:
            raise FileFormatError(name, 1, 'expected {"type": "version", "version": 1}')
        for kind, group in itertools.groupby(lines, key=lambda line: line.type):
            if kind != "user":
                export.stage_channels(sink)  # once every user has been read
            if kind == "channel":
                export.channels += [(line.number, export.channel(line)) for line in group]
            elif kind == "user":
                sink.stage(DataType.USER, name, ((line.number, export.user(line))
                                                 for line in group))
            elif kind in {"post", "direct_post"}:
                sink.stage(DataType.MESSAGE, name, ((line.number, export.post(line))
                                                    for line in group))
            elif kind == "direct_channel":
                sink.stage(DataType.CHANNEL, name, ((line.number, export.direct(line))
                                                    for line in group))
            else:  # teams: not imported
                for _ in group:
                    pass
        export.stage_channels(sink)


class _Export:
    """What a load remembers between lines: channels held back and who is in them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.channels: list[Placed] = []
        self.members: defaultdict[str, list[str]] = defaultdict(list)

    def stage_channels(self, sink: Sink) -> None:
        """Stage the channels held back, each with its members."""
        if not self.channels:
            return
        for _, channel in self.channels:
            channel["users"] = self.members.get(channel["importIds"][0], [])
        sink.stage(DataType.CHANNEL, self.name, self.channels)
        self.channels = []

    def user(self, line: _Line) -> dict[str, Any]:
        username, email = _text(line.body, "username"), _text(line.body, "email")
        if not username or not email:
            raise self.fault(line, "a user needs a username and an email")
        for team in line.body.get("teams") or []:
            for channel in team.get("channels") or []:
                self.members[f"{team.get('name')}/{channel.get('name')}"].append(username)
        full_name = " ".join(filter(None, (_text(line.body, "first_name"),
                                           _text(line.body, "last_name"))))
        roles = _text(line.body, "roles").split()
        return {
            "importIds": [username], "username": username, "emails": [email],
            "name": full_name or _text(line.body, "nickname") or username,
            "roles": ["admin"] if "system_admin" in roles else [],
            "deleted": bool(line.body.get("delete_at")),
        }

    def channel(self, line: _Line) -> dict[str, Any]:
        team, name = _text(line.body, "team"), _text(line.body, "name")
        if not team or not name:
            raise self.fault(line, "a channel needs a team and a name")
        return {
            "importIds": [f"{team}/{name}"], "name": name,
            "t": "p" if line.body.get("type") == "P" else "c",
            "topic": _text(line.body, "header"), "archived": bool(line.body.get("deleted_at")),
        }

    def direct(self, line: _Line) -> dict[str, Any]:
        members = self.people(line, "members")
        return {"importIds": [_direct_id(members)], "name": "-".join(members), "t": "d",
                "users": members}

    def post(self, line: _Line) -> dict[str, Any]:
        if line.type == "post":
            room = f"{_text(line.body, 'team')}/{_text(line.body, 'channel')}"
        else:
            room = _direct_id(self.people(line, "channel_members"))
        user, created = _text(line.body, "user"), line.body.get("create_at")
        if not user or not isinstance(created, int) or isinstance(created, bool):
            raise self.fault(line, "a post needs a user and create_at (epoch milliseconds)")
        return {"importIds": [f"post:{line.number}"], "rid": room, "u": {"_id": user},
                "msg": _text(line.body, "message"), "ts": created}

    def people(self, line: _Line, key: str) -> list[str]:
        members = line.body.get(key)
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise self.fault(line, f"{key} must be a list of usernames")
        return sorted(members)

    def fault(self, line: _Line, reason: str) -> FileFormatError:
        return FileFormatError(self.name, line.number, reason)


def _lines(file: IO[bytes], name: str, max_line: int) -> Iterator[_Line]:
    """Each line that is not blank as ``(number, type, body)``, checked for order and form."""
    rank = 0
    for number, raw in enumerate(iter(lambda: file.readline(max_line + 1), b""), start=1):
        if len(raw) > max_line and not raw.endswith(b"\n"):
            raise FileFormatError(name, number, f"a line longer than {max_line:,} bytes")
        if not raw.strip():
            continue
        try:
            doc = json.loads(raw)
        except ValueError as exc:  # not UTF-8, or not JSON
            raise FileFormatError(name, number, f"not JSON: {exc}") from None
        kind = doc.get("type") if isinstance(doc, dict) else None
        if not isinstance(kind, str) or kind not in ORDER:
            raise FileFormatError(name, number, f"not a line of the export (type {kind!r})")
        body = doc if kind == "version" else doc.get(kind)
        if not isinstance(body, dict):
            raise FileFormatError(name, number, f"expected an object under {kind!r}")
        if ORDER.index(kind) < rank:
            raise FileFormatError(name, number, f"a {kind} line after a {ORDER[rank]} line")
        rank = ORDER.index(kind)
        yield _Line(number, kind, body)


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    return value if isinstance(value, str) else ""


def _direct_id(members: Iterable[str]) -> str:
    return "dm:" + ",".join(members)


SAMPLE: Final = "\n".join(json.dumps(line) for line in [
    {"type": "version", "version": 1},
    {"type": "team", "team": {"name": "acme", "display_name": "Acme", "type": "O"}},
    {"type": "channel", "channel": {"team": "acme", "name": "town-square", "type": "O"}},
    {"type": "user", "user": {"username": "ann", "email": "ann@example.com",
                              "teams": [{"name": "acme", "channels": [{"name": "town-square"}]}]}},
    {"type": "user", "user": {"username": "bob", "email": "bob@example.com", "teams": []}},
    {"type": "post", "post": {"team": "acme", "channel": "town-square", "user": "ann",
                              "message": "hello", "create_at": 1700000000000}},
    {"type": "direct_channel", "direct_channel": {"members": ["bob", "ann"]}},
    {"type": "direct_post", "direct_post": {"channel_members": ["ann", "bob"], "user": "bob",
                                            "message": "hi ann", "create_at": 1700000060000}},
]) + "\n"


def main(export: Path, database: Path) -> Operation:
    """Load ``export`` and import it into the built-in target on ``database``; the end."""
    target = UsersTableImporter(database)
    service = ImportService(SQLiteStore(database), {"mattermost": target},
                            loaders={"mattermost": MattermostLoader()})
    loaded = service.load_file(export, "mattermost", user_id="admin")
    return service.run() if loaded.failure is None else loaded


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(scratch, "export.jsonl")
        if len(sys.argv) == 1:
            path.write_text(SAMPLE)
        ended = main(path, Path(scratch, "imports.db"))
        counts = ended.count
        outcome = ended.failure.message if ended.failure else (
            f"{counts.get('users')} users, {counts.get('channels')} channels and "
            f"{counts.get('messages')} messages: {counts.completed} imported, "
            f"{counts.error} failed")
        sys.stdout.write(f"{ended.state.value}: {outcome}\n")
