"""The shapes of the plain documents importstate returns, as ``TypedDict`` s.

At run time they are the ``dict`` s of the wire (Behaviour: document, rest); to a type
checker they name their keys, so ``mypy --strict`` stops a misspelt key in
the caller's code, and FastAPI can use them as response models. The keys
of :class:`OperationDocument` and :class:`CountDocument` are those of
:data:`importstate.model.WIRE_FIELDS` and
:data:`~importstate.model.COUNT_FIELDS`, which drive the converters; a test
holds the two together.
"""

# No ``from __future__ import annotations``: TypedDict reads NotRequired from live annotations.
from typing import NotRequired

try:
    # pydantic (FastAPI's response models) reads only typing_extensions' TypedDict on 3.11;
    # pydantic depends on typing_extensions, so it is there wherever it is needed.
    from typing_extensions import TypedDict
except ImportError:  # pragma: no cover - depends on what is installed
    from typing import TypedDict

__all__ = [
    "CountDocument",
    "FailureDocument",
    "OperationDocument",
    "ProgressCount",
    "ProgressDocument",
    "StatusDocument",
]


class CountDocument(TypedDict, total=False):
    """An operation's ``count``: only the counts that were ever set are there."""

    total: int
    completed: int
    error: int
    users: int
    channels: int
    messages: int


class FailureDocument(TypedDict):
    """Why an operation failed: the message and when (ISO-8601 UTC)."""

    message: str
    at: str


class OperationDocument(TypedDict):
    """The operation document, as ``Operation.to_wire()`` writes it."""

    _id: str
    type: str
    importerKey: str
    ts: str
    status: str
    valid: bool
    user: str
    _updatedAt: str
    count: NotRequired[CountDocument]
    contentType: NotRequired[str]
    file: NotRequired[str]
    failure: NotRequired[FailureDocument]


class StatusDocument(TypedDict):
    """``import.status``: the state, and the current operation when there is one."""

    state: str
    operation: NotRequired[OperationDocument]


class ProgressCount(TypedDict):
    """``getImportProgress``'s counts: every key is there (0 when unset)."""

    completed: int
    total: int
    error: int


class ProgressDocument(TypedDict):
    """``getImportProgress``: the importer's key and name, the step and the counts."""

    key: str
    name: str
    step: str
    count: ProgressCount
