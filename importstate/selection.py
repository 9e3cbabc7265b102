"""The administrator's selection: what staging offers, and what a run imports.

Behaviour: selection.

:class:`Offer` is what ``getImportFileData`` shows, built from an
operation's staging (``ImportService.selection()``): an entry per staged
user and channel, and the number of messages. :class:`Selection` is the
choice ``startImport`` sends back (``Offer.choose`` makes one), and
:func:`narrow` applies it when a run starts: the records it leaves out are
deselected in staging (the run skips them, the end of the run removes them
with the successes) and the counts shrink to what it keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import attrs

from importstate.errors import InvalidSelection
from importstate.model import Count
from importstate.records import DataType
from importstate.steps import ProgressStep
from importstate.stores import StagedRecord, Transaction

__all__ = [
    "DIRECT_MESSAGES",
    "WAITING_STEPS",
    "Offer",
    "OfferedChannel",
    "OfferedUser",
    "Selection",
    "narrow",
    "selection_document",
]

#: The one entry of the selection that stands for every direct channel (``t`` = ``d``).
DIRECT_MESSAGES: Final = "__directMessages__"
#: While downloading or preparing there is no selection yet (REST: ``{waiting: true}``).
WAITING_STEPS: Final = frozenset({
    ProgressStep.DOWNLOADING_FILE,
    ProgressStep.PREPARING_STARTED,
    ProgressStep.PREPARING_USERS,
    ProgressStep.PREPARING_CHANNELS,
    ProgressStep.PREPARING_MESSAGES,
    ProgressStep.PREPARING_CONTACTS,
})
#: Records read per query while a selection is applied.
_PAGE: Final = 1000
_TYPES: Final = ("users", "channels")
_CHOICE_KEYS: Final = frozenset({"all", "list"})


def _first(values: object) -> Any:  # noqa: ANN401 - a JSON value, as staged
    return values[0] if isinstance(values, list) and values else None


# The entries' attribute names are their wire names, in wire order: attrs.asdict is to_wire.


@attrs.frozen
class OfferedUser:
    """A staged user as the selection offers it (an entry of ``getImportFileData``'s ``users``).

    The values are the staged JSON values: ``user_id`` and ``email`` are the
    first ``importIds`` and ``emails`` entries, ``username`` is ``None`` for
    a user without one.
    """

    user_id: Any
    username: Any
    email: Any
    is_deleted: bool
    is_bot: bool
    do_import: bool = True
    is_email_taken: bool = False

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> OfferedUser:
        """The entry of a staged user's ``data``."""
        return cls(
            user_id=_first(data.get("importIds")),
            username=data.get("username"),
            email=_first(data.get("emails")),
            is_deleted=bool(data.get("deleted")),
            is_bot=data.get("type") == "bot",
        )

    def to_wire(self) -> dict[str, Any]:
        """``{user_id, username, email, is_deleted, is_bot, do_import, is_email_taken}``."""
        return attrs.asdict(self)


@attrs.frozen
class OfferedChannel:
    """A staged channel as the selection offers it (an entry of its ``channels``).

    ``channel_id`` is the first ``importIds`` entry; every direct channel
    together is one entry, :data:`DIRECT_MESSAGES` (id and name).
    """

    channel_id: Any
    name: Any
    is_archived: bool
    do_import: bool
    is_private: bool
    is_direct: bool

    @classmethod
    def of(cls, channel_id: object, name: object, data: Mapping[str, Any]) -> OfferedChannel:
        """The entry of a staged channel's ``data``, under ``channel_id`` and ``name``."""
        return cls(channel_id=channel_id, name=name, is_archived=bool(data.get("archived")),
                   do_import=True, is_private=data.get("t") == "p", is_direct=data.get("t") == "d")

    def to_wire(self) -> dict[str, Any]:
        """``{channel_id, name, is_archived, do_import, is_private, is_direct}``."""
        return attrs.asdict(self)


@attrs.frozen
class Offer:
    """What an operation offers to import: ``getImportFileData`` (Behaviour: selection), as a value.

    ``ImportService.selection()`` gives it; :meth:`to_wire` is the REST
    document and :meth:`choose` the :class:`Selection` to run with.

    Attributes:
        name: the importer's display name (``API``, ``CSV``...).
        users: an entry per staged user, in staging order.
        channels: an entry per staged channel that is not direct, in staging
            order, then one :data:`DIRECT_MESSAGES` entry if any is direct.
        message_count: how many messages are staged.
    """

    name: str
    users: tuple[OfferedUser, ...] = ()
    channels: tuple[OfferedChannel, ...] = ()
    message_count: int = 0

    @classmethod
    def of(
        cls, records: Iterable[StagedRecord], name: str, *, message_count: int | None = None,
    ) -> Offer:
        """The offer of the staged ``records``; ``name`` is the importer's display name.

        The messages among ``records`` are counted, unless ``message_count`` is given.
        """
        users: list[OfferedUser] = []
        channels: list[OfferedChannel] = []
        direct = False
        messages = 0
        for record in records:
            data = record.data
            if record.data_type == DataType.USER:
                users.append(OfferedUser.of(data))
            elif record.data_type == DataType.MESSAGE:
                messages += 1
            elif data.get("t") == "d":
                direct = True
            else:
                channels.append(OfferedChannel.of(_first(data.get("importIds")), data.get("name"),
                                                  data))
        if direct:
            channels.append(OfferedChannel.of(DIRECT_MESSAGES, DIRECT_MESSAGES, {"t": "d"}))
        return cls(name, tuple(users), tuple(channels),
                   messages if message_count is None else message_count)

    def to_wire(self) -> dict[str, Any]:
        """``{name, users, channels, contacts, message_count}``: ``getImportFileData``'s body.

        ``contacts`` is always empty: no importer stages contacts.
        """
        return {
            "name": self.name,
            "users": [user.to_wire() for user in self.users],
            "channels": [channel.to_wire() for channel in self.channels],
            "contacts": [],
            "message_count": self.message_count,
        }

    def choose(
        self, *, users: Iterable[str] | None = None, channels: Iterable[str] | None = None,
    ) -> Selection:
        """The :class:`Selection` of these users and channels (by id); ``None``: all of them.

        ``choose()`` imports everything; ``choose(users=[])`` no user.

        Raises:
            InvalidSelection: an id the offer does not have, naming it.
        """
        return Selection(
            users=_chosen("users", users, {user.user_id for user in self.users}),
            channels=_chosen("channels", channels, {c.channel_id for c in self.channels}),
        )


def _chosen(name: str, ids: Iterable[str] | None, offered: set[Any]) -> frozenset[str] | None:
    if ids is None:
        return None
    chosen = frozenset(ids)
    unknown = sorted(chosen - offered, key=str)
    if unknown:
        raise InvalidSelection(name, f"{unknown[0]!r} is not offered")
    return chosen


def selection_document(
    records: Iterable[StagedRecord], name: str, *, message_count: int | None = None,
) -> dict[str, Any]:
    """``Offer.of(records, name, message_count=...).to_wire()``: the offer as a document."""
    return Offer.of(records, name, message_count=message_count).to_wire()


@attrs.frozen
class Selection:
    """Which users and channels a run imports (``startImport``'s ``input``).

    The choice made from an :class:`Offer` (:meth:`Offer.choose`), or built
    directly; ``Selection()`` imports everything.

    Attributes:
        users: the users to import, by their first ``importIds`` entry;
            ``None``: every user.
        channels: the channels to import, by their first ``importIds``
            entry (:data:`DIRECT_MESSAGES`: every direct channel); ``None``:
            every channel. The messages of a channel left out are left out.
    """

    users: frozenset[str] | None = None
    channels: frozenset[str] | None = None

    @classmethod
    def from_wire(cls, doc: object) -> Selection:
        """Read ``{users?: {all?: bool, list?: [importId]}, channels?: {...}}``.

        A type that is absent, or has ``all: true``, is imported whole;
        otherwise its ``list`` (none when absent) is.

        Raises:
            InvalidSelection: naming the part that does not fit.
        """
        if not isinstance(doc, Mapping):
            raise InvalidSelection("$", f"expected an object, got {type(doc).__name__}")
        unknown = sorted(set(doc) - set(_TYPES), key=str)
        if unknown:
            raise InvalidSelection(str(unknown[0]), "unknown key")
        chosen = {name: _choice(doc[name], name) for name in _TYPES if name in doc}
        return cls(**chosen)

    def to_wire(self) -> dict[str, Any]:
        """``{users: {all: true} | {list: [...]}, channels: ...}``: ``startImport``'s ``input``.

        Lists are sorted; :meth:`from_wire` reads it back to an equal selection.
        """
        return {name: {"all": True} if ids is None else {"list": sorted(ids)}
                for name, ids in (("users", self.users), ("channels", self.channels))}

    def keeps_user(self, data: Mapping[str, Any]) -> bool:
        """Whether the run imports the staged user ``data``."""
        return self.users is None or _first(data.get("importIds")) in self.users

    def keeps_channel(self, data: Mapping[str, Any]) -> bool:
        """Whether the run imports the staged channel ``data``."""
        if self.channels is None:
            return True
        if data.get("t") == "d":
            return DIRECT_MESSAGES in self.channels
        return _first(data.get("importIds")) in self.channels


def _choice(value: object, name: str) -> frozenset[str] | None:
    if not isinstance(value, Mapping):
        raise InvalidSelection(name, f"expected an object, got {type(value).__name__}")
    unknown = sorted(set(value) - _CHOICE_KEYS, key=str)
    if unknown:
        raise InvalidSelection(f"{name}.{unknown[0]}", "unknown key")
    everything = value.get("all", False)
    if not isinstance(everything, bool):
        raise InvalidSelection(f"{name}.all", "expected a boolean")
    listed = value.get("list", [])
    if not isinstance(listed, list) or not all(isinstance(item, str) for item in listed):
        raise InvalidSelection(f"{name}.list", "expected a list of import ids")
    return None if everything else frozenset(listed)


def narrow(tx: Transaction, operation_id: str, count: Count, selection: Selection) -> Count:
    """Deselect in ``tx`` the records ``selection`` leaves out; ``count`` shrunk to the rest.

    Only the types the selection narrows are read, so a selection of
    everything reads nothing. ``total`` loses what the kinds' counts lose.
    """
    kept: dict[str, int] = {}
    if selection.users is not None and count.get("users"):
        kept["users"] = _keep(tx, operation_id, DataType.USER, selection.keeps_user)
    if selection.channels is not None and count.get("channels"):
        left_out: set[str] = set()
        imported: set[str] = set()

        def keeps(data: Mapping[str, Any]) -> bool:
            keep = selection.keeps_channel(data)
            ids = data.get("importIds", [])
            (imported if keep else left_out).update(i for i in ids if isinstance(i, str))
            return keep

        kept["channels"] = _keep(tx, operation_id, DataType.CHANNEL, keeps)
        skipped = left_out - imported  # an id a kept channel also has is the kept one's
        if skipped and count.get("messages"):
            kept["messages"] = _keep(
                tx, operation_id, DataType.MESSAGE, lambda data: data.get("rid") not in skipped,
            )
    if not kept:
        return count
    lost = sum(count.get(name) - number for name, number in kept.items())
    return attrs.evolve(count, total=count.get("total") - lost, **kept)


def _keep(
    tx: Transaction, operation_id: str, data_type: DataType,
    keeps: Callable[[Mapping[str, Any]], bool],
) -> int:
    """Deselect the records of ``data_type`` that ``keeps`` refuses; how many it keeps."""
    kept = 0
    after: int | None = None
    while page := tx.pending(operation_id, data_type, after=after, limit=_PAGE):
        left_out = [record.position for record in page if not keeps(record.data)]
        tx.deselect(operation_id, left_out)
        kept += len(page) - len(left_out)
        after = page[-1].position
    return kept
