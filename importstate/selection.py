"""The administrator's selection: what staging offers, and what a run imports.

Behaviour: selection.

:func:`selection_document` builds what ``getImportFileData`` shows from an
operation's staging; :class:`Selection` is the choice ``startImport`` sends
back, and :func:`narrow` applies it when a run starts: the records it leaves
out are deselected in staging (the run skips them, the end of the run removes
them with the successes) and the counts shrink to what it keeps.
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


def _user_entry(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "user_id": _first(data.get("importIds")),
        "username": data.get("username"),
        "email": _first(data.get("emails")),
        "is_deleted": bool(data.get("deleted")),
        "is_bot": data.get("type") == "bot",
        "do_import": True,
        "is_email_taken": False,
    }


def _channel_entry(channel_id: object, name: object, data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "channel_id": channel_id,
        "name": name,
        "is_archived": bool(data.get("archived")),
        "do_import": True,
        "is_private": data.get("t") == "p",
        "is_direct": data.get("t") == "d",
    }


def selection_document(
    records: Iterable[StagedRecord], name: str, *, message_count: int | None = None,
) -> dict[str, Any]:
    """``{name, users, channels, contacts, message_count}`` of the staged ``records``.

    Each user and each channel that is not direct is an entry, in staging
    order; every direct channel together is one last entry,
    :data:`DIRECT_MESSAGES`. ``name`` is the importer's display name. The
    messages among ``records`` are counted, unless ``message_count`` is given.
    """
    users: list[dict[str, Any]] = []
    channels: list[dict[str, Any]] = []
    direct = False
    messages = 0
    for record in records:
        data = record.data
        if record.data_type == DataType.USER:
            users.append(_user_entry(data))
        elif record.data_type == DataType.MESSAGE:
            messages += 1
        elif data.get("t") == "d":
            direct = True
        else:
            channels.append(_channel_entry(_first(data.get("importIds")), data.get("name"), data))
    if direct:
        channels.append(_channel_entry(DIRECT_MESSAGES, DIRECT_MESSAGES, {"t": "d"}))
    return {
        "name": name, "users": users, "channels": channels, "contacts": [],
        "message_count": messages if message_count is None else message_count,
    }


@attrs.frozen
class Selection:
    """Which users and channels a run imports (``startImport``'s ``input``).

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
