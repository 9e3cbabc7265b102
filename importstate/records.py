"""The kinds of staged records (Behaviour: records): one table of users, channels and messages.

:data:`RECORD_KINDS` is the table, in the order a run imports them; what
``add_channels`` counts, which step a run shows while it imports a kind, which
importer method takes it and which errors refuse it are read from here.
"""

from __future__ import annotations

import enum
from typing import Final

import attrs

from importstate.errors import (
    InvalidChannelList,
    InvalidMessageList,
    InvalidRecordList,
    InvalidUserList,
    MissingChannelData,
    MissingMessageData,
    MissingRecordData,
    MissingUserData,
)
from importstate.steps import ProgressStep

__all__ = [
    "RECORD_KINDS",
    "DataType",
    "RecordKind",
    "kind_of",
    "kinds_after",
    "phase_of",
]


class DataType(enum.StrEnum):
    """A staged record's ``dataType``."""

    USER = "user"
    CHANNEL = "channel"
    MESSAGE = "message"


@attrs.frozen
class RecordKind:
    """One kind of staged record.

    Attributes:
        data_type: the records' ``dataType``.
        count: the ``count`` key that counts them (``total`` counts them too).
        step: the status a run shows while it imports them (its phase).
        importer_method: the importer method that takes a batch of them; an
            importer without it cannot import them (a plain callable imports
            users, one at a time).
        not_a_list: raised when the records given are not a list.
        missing: raised when one of them lacks required data.
        preparing: the status a file importer shows while it parses them.
    """

    data_type: DataType
    count: str
    step: ProgressStep
    importer_method: str
    not_a_list: type[InvalidRecordList]
    missing: type[MissingRecordData]
    preparing: ProgressStep


#: The kinds, in the order a run imports them: channels refer to users, messages to both.
RECORD_KINDS: Final = (
    RecordKind(DataType.USER, "users", ProgressStep.IMPORTING_USERS, "import_batch",
               InvalidUserList, MissingUserData, ProgressStep.PREPARING_USERS),
    RecordKind(DataType.CHANNEL, "channels", ProgressStep.IMPORTING_CHANNELS, "import_channels",
               InvalidChannelList, MissingChannelData, ProgressStep.PREPARING_CHANNELS),
    RecordKind(DataType.MESSAGE, "messages", ProgressStep.IMPORTING_MESSAGES, "import_messages",
               InvalidMessageList, MissingMessageData, ProgressStep.PREPARING_MESSAGES),
)

_BY_TYPE: Final = {kind.data_type: kind for kind in RECORD_KINDS}
_BY_STEP: Final = {kind.step: kind for kind in RECORD_KINDS}


def kind_of(data_type: DataType | str) -> RecordKind:
    """The kind of records whose ``dataType`` is ``data_type``.

    Raises:
        ValueError: ``data_type`` is not ``user``, ``channel`` or ``message``.
    """
    return _BY_TYPE[DataType(data_type)]


def phase_of(status: ProgressStep) -> RecordKind | None:
    """The kind a run at ``status`` is importing; ``None`` between (or outside) the phases."""
    return _BY_STEP.get(status)


def kinds_after(status: ProgressStep) -> tuple[RecordKind, ...]:
    """The kinds whose phase comes later than ``status``, in run order."""
    return tuple(kind for kind in RECORD_KINDS if kind.step.position > status.position)
