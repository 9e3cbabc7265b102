"""The twenty progress steps and the eight states they fall into (Behaviour: steps, states).

This module is the one table of steps and states; everything else (the
machine, the diagrams, the strategies) derives from it.
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = [
    "FINISHED_STATES",
    "STEP_STATE",
    "TERMINAL_STEPS",
    "ProgressStep",
    "State",
    "state_of",
    "steps_of",
]


class State(enum.StrEnum):
    """What ``import.status`` reports: the state of the current operation."""

    NONE = "none"
    NEW = "new"
    LOADING = "loading"
    READY = "ready"
    IMPORTING = "importing"
    ERROR = "error"
    CANCELED = "canceled"
    DONE = "done"


class ProgressStep(enum.StrEnum):
    """The fine-grained ``status`` of an operation, in natural order."""

    NEW = "importer_new"
    UPLOADING = "importer_uploading"
    DOWNLOADING_FILE = "importer_downloading_file"
    FILE_LOADED = "importer_file_loaded"
    PREPARING_STARTED = "importer_preparing_started"
    PREPARING_USERS = "importer_preparing_users"
    PREPARING_CHANNELS = "importer_preparing_channels"
    PREPARING_MESSAGES = "importer_preparing_messages"
    PREPARING_CONTACTS = "importer_preparing_contacts"
    USER_SELECTION = "importer_user_selection"
    IMPORTING_STARTED = "importer_importing_started"
    IMPORTING_USERS = "importer_importing_users"
    IMPORTING_CHANNELS = "importer_importing_channels"
    IMPORTING_MESSAGES = "importer_importing_messages"
    IMPORTING_CONTACTS = "importer_importing_contacts"
    IMPORTING_FILES = "importer_importing_files"
    FINISHING = "importer_finishing"
    DONE = "importer_done"
    IMPORT_FAILED = "importer_import_failed"
    IMPORT_CANCELLED = "importer_import_cancelled"

    @property
    def state(self) -> State:
        """The state a valid operation at this step is in."""
        return STEP_STATE[self]

    @property
    def position(self) -> int:
        """The step's index in the natural order of Behaviour: steps."""
        return _POSITION[self]


#: Each step's state, for a valid operation (Behaviour: states, rules 3-9).
STEP_STATE: Final[dict[ProgressStep, State]] = {
    ProgressStep.NEW: State.NEW,
    ProgressStep.UPLOADING: State.LOADING,
    ProgressStep.DOWNLOADING_FILE: State.LOADING,
    ProgressStep.FILE_LOADED: State.LOADING,
    ProgressStep.PREPARING_STARTED: State.LOADING,
    ProgressStep.PREPARING_USERS: State.LOADING,
    ProgressStep.PREPARING_CHANNELS: State.LOADING,
    ProgressStep.PREPARING_MESSAGES: State.LOADING,
    ProgressStep.PREPARING_CONTACTS: State.LOADING,
    ProgressStep.USER_SELECTION: State.READY,
    ProgressStep.IMPORTING_STARTED: State.IMPORTING,
    ProgressStep.IMPORTING_USERS: State.IMPORTING,
    ProgressStep.IMPORTING_CHANNELS: State.IMPORTING,
    ProgressStep.IMPORTING_MESSAGES: State.IMPORTING,
    ProgressStep.IMPORTING_CONTACTS: State.IMPORTING,
    ProgressStep.IMPORTING_FILES: State.IMPORTING,
    ProgressStep.FINISHING: State.IMPORTING,
    ProgressStep.DONE: State.DONE,
    ProgressStep.IMPORT_FAILED: State.ERROR,
    ProgressStep.IMPORT_CANCELLED: State.CANCELED,
}

_POSITION: Final[dict[ProgressStep, int]] = {step: i for i, step in enumerate(ProgressStep)}

#: States in which no more work happens to an operation.
FINISHED_STATES: Final = frozenset({State.DONE, State.ERROR, State.CANCELED})
#: The steps of a finished operation: done, failed, cancelled.
TERMINAL_STEPS: Final = frozenset(step for step in ProgressStep if step.state in FINISHED_STATES)


def steps_of(state: State) -> tuple[ProgressStep, ...]:
    """The steps that map to ``state``, in natural order (none for ``none``)."""
    return tuple(step for step, owner in STEP_STATE.items() if owner is state)


def state_of(status: ProgressStep | str | None, *, valid: bool = True) -> State:
    """Compute an operation's state from its ``status`` and ``valid`` (Behaviour: states).

    ``None`` stands for "no operation exists". An invalid operation is in
    ``error`` unless it finished (``importer_done`` stays ``done``).

    Raises:
        ValueError: ``status`` is not one of the twenty wire values.
    """
    if status is None:
        return State.NONE
    step = status if status.__class__ is ProgressStep else ProgressStep(status)
    if not valid and step is not ProgressStep.DONE:
        return State.ERROR
    return STEP_STATE[step]
