"""The next step after an error: one line saying what went wrong and what to run about it.

The library's messages are the specification's (they are what the REST API
returns); at the command line each gets the state of the current operation
and the command that moves it on, from the table :data:`NEXT_STEPS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from importstate.errors import (
    CannotListen,
    ImporterNotDefined,
    ImportStateError,
    InvalidOperationStatus,
    OperationAlreadyFinished,
    OperationCannotReceiveData,
    OperationNotFound,
    OperationNotInitialized,
    WorkersUnsupported,
)
from importstate.model import Operation
from importstate.service import ImportService
from importstate.steps import FINISHED_STATES, State

Advice = Callable[[ImportStateError, Operation | None, ImportService | None], str | None]


def _start_one(_: ImportStateError, operation: Operation | None, __: object) -> str:
    if operation is None:
        return "there is no import operation yet: run `importstate new` first"
    return (f"operation {operation.id} was cleared or replaced (state {operation.state}):"
            " run `importstate new` first")


#: What each state allows next; ``{name}`` is "operation <id>".
_STATE_STEPS: Final = {
    State.NEW: "{name} has no users yet: stage some with `importstate add-users FILE`",
    State.LOADING: "{name} is still loading its file",
    State.READY: "{name} has not started: `importstate run` imports its users",
    State.IMPORTING: "{name} is importing; if its run stopped (a crash, SIGTERM),"
                     " `importstate resume` continues it from its checkpoint",
}


def _by_state(_: ImportStateError, operation: Operation | None, __: object) -> str | None:
    """What the current operation's state allows next."""
    if operation is None or not operation.valid:
        return _start_one(_, operation, __)
    if operation.state in FINISHED_STATES:
        return _ended(operation)
    step = _STATE_STEPS.get(operation.state)
    return step.format(name=f"operation {operation.id}") if step is not None else None


def _ended(operation: Operation) -> str:
    again = "`importstate new` starts another"
    if operation.count.get("error"):
        again = ("`importstate retry` imports its failed users again in a new operation,"
                 f" {again}")
    return f"operation {operation.id} has ended ({operation.state}): {again}"


def _receiving(_: ImportStateError, operation: Operation | None, __: object) -> str | None:
    if operation is not None and operation.state is State.IMPORTING:
        return (f"operation {operation.id} is importing: wait for it to end, or"
                " `importstate cancel` it, then `importstate new`")
    return _by_state(_, operation, __)


def _importers(error: ImportStateError, _: object, service: ImportService | None) -> str | None:
    if not isinstance(error, ImporterNotDefined) or service is None:
        return None
    return (f"the operation's importer {error.key!r} is not one this command line has"
            f" ({', '.join(sorted(service.importers))})")


def _listen(error: ImportStateError, _: object, __: object) -> str | None:
    if isinstance(error, CannotListen) and error.in_use:
        return "is another server running there? choose another --port"
    return None


#: Error class → what to say next, given the current operation (None: there is none).
NEXT_STEPS: Final[dict[type[ImportStateError], Advice]] = {
    OperationNotInitialized: _start_one,
    OperationNotFound: _start_one,
    InvalidOperationStatus: _by_state,
    OperationAlreadyFinished: _by_state,
    OperationCannotReceiveData: _receiving,
    ImporterNotDefined: _importers,
    WorkersUnsupported: lambda *_: "pass --dsn to keep the operations in PostgreSQL,"
                                   " or run with --workers 1",
    CannotListen: _listen,
}


def with_next_step(error: ImportStateError, service: ImportService | None) -> str:
    """``error``'s message, followed by the next step where there is one.

    ``service``, when open, tells the state of the current operation.
    """
    message = str(error)
    advice = NEXT_STEPS.get(type(error))
    if advice is None:
        return message
    operation = _current(service)
    step = advice(error, operation, service)
    if step is None:
        return message
    if message.endswith("."):
        return f"{message} {step[0].upper()}{step[1:]}."
    return f"{message}: {step}"


def _current(service: ImportService | None) -> Operation | None:
    if service is None:
        return None
    try:
        return service.current_operation()
    except Exception:  # noqa: BLE001 - advice must never hide the error it advises on
        return None
