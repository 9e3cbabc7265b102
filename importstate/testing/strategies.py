"""Hypothesis strategies for importstate's values: steps, states, operations, records, calls.

Every strategy gives values the library accepts (or, for
:func:`invalid_user_lists`, rejects in a known way), so a downstream test
suite can property-test its own code against importstate::

    from hypothesis import given
    from importstate.testing import strategies as ist

    @given(ist.operations(state="ready"))
    def test_my_dashboard_renders(op):
        assert render(op.to_wire())

Arguments that pin a value down (``state=``, ``status=``...) raise
:class:`hypothesis.errors.InvalidArgument` when they contradict each other.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any, Final, Literal, TypeAlias

from importstate._extras import needs

with needs("testing", "importstate.testing.strategies"):
    from hypothesis import strategies as st
    from hypothesis.errors import InvalidArgument

from importstate import _staging
from importstate._time import epoch_millis, format_time, to_millis_precision
from importstate.errors import (
    InvalidRoles,
    MissingChannelData,
    MissingMessageData,
    MissingRecordData,
    MissingUserData,
)
from importstate.model import Count, Failure, Operation
from importstate.selection import DIRECT_MESSAGES
from importstate.steps import ProgressStep, State, state_of, steps_of
from importstate.testing._calls import ServiceCall

__all__ = [
    "TS_FORMS",
    "TsForm",
    "channels",
    "csv_fields",
    "events",
    "invalid_channel_lists",
    "invalid_message_lists",
    "invalid_user_lists",
    "messages",
    "operations",
    "progress_steps",
    "selections",
    "states",
    "users",
    "wire_documents",
]

#: The three ways a wire document's ``ts`` is written (Behaviour: document).
TsForm: TypeAlias = Literal["iso", "epoch_millis", "epoch_millis_string"]
TS_FORMS: Final[tuple[TsForm, ...]] = ("iso", "epoch_millis", "epoch_millis_string")

_MIN_TIME: Final = dt.datetime(2001, 1, 1, tzinfo=dt.UTC)
_MAX_TIME: Final = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
_HEX: Final = "0123456789abcdef"
_METEOR_ID: Final = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz"
# Text that survives JSON and UTF-8 unchanged: what an HTTP client can send.
_TEXT: Final = st.text(st.characters(codec="utf-8"), max_size=20)
_NAMES: Final = st.text(
    st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=12,
)
_STARTED: Final = ProgressStep.IMPORTING_STARTED.position


def states() -> st.SearchStrategy[State]:
    """Any of the eight states, ``none`` included.

    >>> from importstate.testing import strategies as ist
    >>> ist.states().example() in set(State)
    True
    """
    return st.sampled_from(State)


def progress_steps(state: State | str | None = None) -> st.SearchStrategy[ProgressStep]:
    """A progress step; with ``state``, one that a valid operation in that state has.

    ``progress_steps("loading")`` gives ``importer_uploading`` ...
    ``importer_preparing_contacts``; ``state="none"`` has no steps and is an
    error.

    >>> from importstate.testing import strategies as ist
    >>> ist.progress_steps("ready").example()
    <ProgressStep.USER_SELECTION: 'importer_user_selection'>
    """
    if state is None:
        return st.sampled_from(ProgressStep)
    steps = steps_of(State(state))
    if not steps:
        msg = f"no progress step is in state {state!r}"
        raise InvalidArgument(msg)
    return st.sampled_from(steps)


def _times() -> st.SearchStrategy[dt.datetime]:
    return st.datetimes(
        min_value=_MIN_TIME.replace(tzinfo=None),
        max_value=_MAX_TIME.replace(tzinfo=None),
        timezones=st.just(dt.UTC),
    ).map(lambda moment: to_millis_precision(moment).replace(fold=0))


def _status_pairs(
    state: State | str | None, status: ProgressStep | str | None, valid: bool | None,
) -> list[tuple[ProgressStep, bool]]:
    pairs = [
        (step, flag)
        for step in ProgressStep
        for flag in (True, False)
        if (state is None or state_of(step, valid=flag) is State(state))
        and (status is None or step is ProgressStep(status))
        and (valid is None or flag is valid)
    ]
    if not pairs:
        msg = f"no operation has state={state!r}, status={status!r} and valid={valid!r}"
        raise InvalidArgument(msg)
    return pairs


@st.composite
def _counts(draw: st.DrawFn, status: ProgressStep) -> Count:
    """Counts an operation at ``status`` can have: ``completed + error <= total``."""
    if status is ProgressStep.NEW:
        return Count()
    total = draw(st.integers(0, 10_000))
    staged = draw(st.sampled_from([Count(), Count(total=total, users=total)]))
    extra = draw(st.fixed_dictionaries({}, optional={
        "channels": st.integers(0, 10_000), "messages": st.integers(0, 10_000),
    }))
    ran = status.position >= _STARTED and (
        status is not ProgressStep.IMPORT_CANCELLED or draw(st.booleans())
    )
    if not ran:
        return Count(total=staged.total, users=staged.users, **extra)
    completed = draw(st.integers(0, total))
    error = total - completed if status is ProgressStep.DONE else draw(
        st.integers(0, total - completed),
    )
    return Count(total=total, users=total, completed=completed, error=error, **extra)


@st.composite
def _operations(
    draw: st.DrawFn,
    pairs: Sequence[tuple[ProgressStep, bool]],
    counts: st.SearchStrategy[Count] | None,
) -> Operation:
    status, valid = draw(st.sampled_from(pairs))
    ts = draw(_times())
    # _updatedAt never precedes ts; often they are equal (an operation never written again).
    updated_at = ts + dt.timedelta(milliseconds=draw(st.integers(0, 30 * 86_400_000)))
    kind = draw(st.sampled_from(["api", "csv", "slack", "hipchatenterprise"]))
    file = draw(st.none() | st.fixed_dictionaries({
        "file": st.from_regex(r"\A[\w.-]{1,20}\.(zip|csv|json)\Z"),
        "content_type": st.sampled_from(["application/zip", "text/csv", "application/json"]),
    }))
    failure = None
    if status is ProgressStep.IMPORT_FAILED and draw(st.booleans()):
        failure = Failure(draw(_TEXT), updated_at)
    return Operation(
        id=draw(st.text(_HEX, min_size=24, max_size=24)),
        type=kind,
        importer_key=draw(st.sampled_from([kind, "api"])),
        ts=ts,
        status=status,
        valid=valid,
        user=draw(st.text(_METEOR_ID, min_size=17, max_size=17)),
        updated_at=updated_at,
        count=draw(counts if counts is not None else _counts(status)),
        failure=failure,
        **(file or {}),
    )


def operations(
    state: State | str | None = None,
    status: ProgressStep | str | None = None,
    valid: bool | None = None,
    counts: Count | st.SearchStrategy[Count] | None = None,
) -> st.SearchStrategy[Operation]:
    """An :class:`~importstate.Operation` whose fields agree with each other.

    ``state``, ``status`` and ``valid`` pin those down (``state="error"``
    gives invalid operations at any step but ``importer_done`` as well as
    valid ones at ``importer_import_failed``). Without ``counts``, the counts
    fit the status: none before staging, ``completed + error <= total`` once a
    run started, ``== total`` when done. ``ts <= _updatedAt``, both with
    millisecond precision; a failed operation may carry a ``failure``.

    >>> from importstate.testing import strategies as ist
    >>> op = ist.operations(state="done").example()
    >>> op.count.get("completed") + op.count.get("error") == op.count.get("total")
    True
    """
    pairs = _status_pairs(state, status, valid)
    count_strategy = st.just(counts) if isinstance(counts, Count) else counts
    return _operations(pairs, count_strategy)


def _ts_as(form: TsForm, moment: dt.datetime, iso: str) -> str | int:
    if form == "epoch_millis":
        return epoch_millis(moment)
    if form == "epoch_millis_string":
        return str(epoch_millis(moment))
    return iso


def wire_documents(ts_form: TsForm | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """An operation's wire document, with ``ts`` in one of the three forms of Behaviour: document.

    ``ts_form`` is ``"iso"`` (``"2023-08-11T20:08:37.655Z"``),
    ``"epoch_millis"`` (``1635280600083``) or ``"epoch_millis_string"``
    (``"1635280600083"``); by default any of them. Every document is one
    :meth:`Operation.from_wire` accepts.

    >>> from importstate import Operation
    >>> from importstate.testing import strategies as ist
    >>> doc = ist.wire_documents("epoch_millis").example()
    >>> isinstance(doc["ts"], int) and Operation.from_wire(doc).id == doc["_id"]
    True
    """
    if ts_form is not None and ts_form not in TS_FORMS:
        msg = f"ts_form must be one of {TS_FORMS}, not {ts_form!r}"
        raise InvalidArgument(msg)
    forms = st.just(ts_form) if ts_form is not None else st.sampled_from(TS_FORMS)

    @st.composite
    def documents(draw: st.DrawFn) -> dict[str, Any]:
        operation = draw(operations())
        doc: dict[str, Any] = dict(operation.to_wire())
        doc["ts"] = _ts_as(draw(forms), operation.ts, doc["ts"])
        return doc

    return documents()


_EMAILS: Final = st.builds(
    "{}@{}.{}".format, _NAMES, _NAMES, st.sampled_from(["com", "org", "io"]),
)


def _with_blanks(values: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    """Non-empty lists with at least one real value, maybe mixed with empty strings."""
    return st.tuples(st.lists(values, min_size=1, max_size=3), st.booleans()).flatmap(
        lambda drawn: st.permutations([*drawn[0], ""] if drawn[1] else drawn[0]),
    )


def users(roles: Collection[str] = _staging.KNOWN_ROLES) -> st.SearchStrategy[dict[str, Any]]:
    """A valid import user (Behaviour: service): ``emails`` and ``importIds``, optional fields.

    Every user passes ``add_users``' checks for a service whose known roles
    include ``roles``; its ``roles`` (when present) are drawn from them.
    Values are JSON data (what a store keeps and an importer receives).

    >>> from importstate.testing import strategies as ist
    >>> user = ist.users().example()
    >>> any(user["emails"]) and any(user["importIds"])
    True
    """
    role_list = sorted(roles)
    optional: dict[str, st.SearchStrategy[Any]] = {
        "username": _NAMES,
        "name": _TEXT,
        "type": st.sampled_from(["user", "bot"]),
        "utcOffset": st.integers(-24, 28).map(lambda half_hours: half_hours / 2),
        "avatarUrl": st.builds("https://example.com/{}.png".format, _NAMES),
        "deleted": st.booleans(),
        "statusText": _TEXT,
        "bio": _TEXT,
        "password": _TEXT,
        "services": st.dictionaries(_NAMES, st.dictionaries(_NAMES, _TEXT, max_size=2), max_size=2),
        "customFields": st.dictionaries(_NAMES, _TEXT | st.integers() | st.booleans(), max_size=3),
    }
    if role_list:
        optional["roles"] = st.lists(st.sampled_from(role_list), max_size=3)
    return st.fixed_dictionaries(
        {"emails": _with_blanks(_EMAILS), "importIds": _with_blanks(_NAMES)},
        optional=optional,
    )


def _missing_data(user: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Ways an entry fails check 5: not an object, or no non-empty email / import id."""
    not_objects = st.sampled_from([None, "ann@example.com", 42, ["ann@example.com"]])
    blank_values = st.sampled_from([None, "", "x@example.com", [], [""], [None], [7]])
    fields = st.sampled_from(["emails", "importIds"])
    broken = st.tuples(fields, blank_values).map(lambda kv: {**user, kv[0]: kv[1]})
    dropped = fields.map(lambda field: {k: v for k, v in user.items() if k != field})
    return not_objects | broken | dropped


def _bad_roles(user: dict[str, Any], known: Collection[str]) -> st.SearchStrategy[Any]:
    """Ways a user fails check 6: a role outside ``known``, or ``roles`` not a list."""
    unknown = _NAMES.filter(lambda role: role not in known).map(lambda role: [role])
    odd = st.sampled_from([[1], [None], "admin", {"admin": True}])
    return (unknown | odd).map(lambda roles: {**user, "roles": roles})


def invalid_user_lists(
    error: type[MissingUserData | InvalidRoles] | None = None,
    roles: Collection[str] = _staging.KNOWN_ROLES,
) -> st.SearchStrategy[tuple[list[Any], str]]:
    """``(users, message)``: a list ``add_users`` rejects, and the exact Behaviour: service message.

    ``error`` picks the check: :class:`~importstate.MissingUserData` (an
    entry that is not an object or lacks a non-empty ``emails``/``importIds``
    string; the list may also hold bad roles, which are checked later) or
    :class:`~importstate.InvalidRoles` (every entry has its data, one has an
    unknown role or a ``roles`` that is not a list of strings). ``roles`` are
    the service's known roles.

    >>> from importstate import MissingUserData
    >>> from importstate.testing import strategies as ist
    >>> users, message = ist.invalid_user_lists(MissingUserData).example()
    >>> message
    'Users are missing required data.'
    """
    if error not in {None, MissingUserData, InvalidRoles}:
        msg = f"error must be MissingUserData or InvalidRoles, not {error!r}"
        raise InvalidArgument(msg)
    kinds = [error] if error is not None else [MissingUserData, InvalidRoles]
    chosen = st.sampled_from(kinds)
    return chosen.flatmap(lambda kind: _invalid_list(kind, roles))


@st.composite
def _invalid_list(
    draw: st.DrawFn, kind: type[MissingUserData | InvalidRoles], roles: Collection[str],
) -> tuple[list[Any], str]:
    good = draw(st.lists(users(roles), max_size=4))
    template = draw(users(roles))
    if kind is MissingUserData:
        bad = draw(_missing_data(template))
        # Check 5 runs over the whole list before check 6: bad roles elsewhere change nothing.
        if draw(st.booleans()):
            good.append(draw(_bad_roles(draw(users(roles)), roles)))
    else:
        bad = draw(_bad_roles(template, roles))
    good.insert(draw(st.integers(0, len(good))), bad)
    return good, kind.message


def _ids(ids: st.SearchStrategy[str] | None) -> st.SearchStrategy[str]:
    return ids if ids is not None else _NAMES


def channels(
    members: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[dict[str, Any]]:
    """A valid import channel (Behaviour: records): ``importIds`` and ``name``, optional fields.

    ``t`` is ``c``, ``p`` or ``d`` when present; ``members`` draws the user
    import ids of ``users`` and ``u._id`` (any names by default).

    >>> from importstate.testing import strategies as ist
    >>> channel = ist.channels().example()
    >>> any(channel["importIds"]) and channel["name"] != ""
    True
    """
    people = _ids(members)
    return st.fixed_dictionaries(
        {"importIds": _with_blanks(_NAMES), "name": _NAMES},
        optional={
            "t": st.sampled_from(_staging.CHANNEL_TYPES),
            "users": st.lists(people, max_size=3),
            "u": st.builds(lambda creator: {"_id": creator}, people),
            "topic": _TEXT,
            "description": _TEXT,
            "archived": st.booleans(),
            "ts": _times().map(format_time),
        },
    )


def _message_times() -> st.SearchStrategy[str | int]:
    return st.one_of(_times().map(format_time), _times().map(epoch_millis))


def messages(
    rooms: st.SearchStrategy[str] | None = None,
    authors: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[dict[str, Any]]:
    """A valid import message: ``importIds``, ``rid``, ``u``, ``msg`` and ``ts``.

    Behaviour: records.

    ``rooms`` draws ``rid`` (a channel's import id) and ``authors`` ``u._id``
    (any names by default); ``ts`` is ISO-8601 or epoch milliseconds, ``msg``
    may be empty.

    >>> from importstate.testing import strategies as ist
    >>> message = ist.messages(rooms=st.just("general")).example()
    >>> message["rid"]
    'general'
    """
    return st.fixed_dictionaries(
        {
            "importIds": _with_blanks(_NAMES),
            "rid": _ids(rooms),
            "u": st.builds(lambda author: {"_id": author}, _ids(authors)),
            "msg": _TEXT,
            "ts": _message_times(),
        },
        optional={
            "tmid": _NAMES,
            "attachments": st.lists(st.fixed_dictionaries({"title": _TEXT}), max_size=2),
            "reactions": st.dictionaries(
                st.builds(":{}:".format, _NAMES),
                st.fixed_dictionaries({"usernames": st.lists(_NAMES, max_size=2)}),
                max_size=2,
            ),
        },
    )


#: Ways a channel or message lacks (or has a wrong) required field: (field, bad values).
_BAD_FIELDS: Final[dict[type[MissingRecordData], dict[str, list[Any]]]] = {
    MissingChannelData: {
        "importIds": [None, "general", [], [""], [7]],
        "name": [None, "", 7, ["general"]],
        "t": ["x", "", None, ["c"]],
        "users": ["ann", [7], {"ann": True}],
    },
    MissingMessageData: {
        "importIds": [None, "m1", [], [""], [None]],
        "rid": [None, "", 7, ["general"]],
        "u": [None, "ann", {}, {"_id": ""}, {"_id": 7}],
        "msg": [None, 7, ["hi"]],
        "ts": [None, "", "yesterday", 1.5, True, [1635280600083]],
    },
}


@st.composite
def _invalid_records(
    draw: st.DrawFn,
    error: type[MissingRecordData],
    valid: st.SearchStrategy[dict[str, Any]],
) -> tuple[list[Any], str]:
    good = draw(st.lists(valid, max_size=4))
    fields = _BAD_FIELDS[error]
    template = draw(valid)
    field = draw(st.sampled_from(sorted(fields)))
    not_objects = st.sampled_from([None, "general", 42, [template]])
    broken = st.sampled_from(fields[field]).map(lambda bad: {**template, field: bad})
    dropped = st.just({k: v for k, v in template.items() if k != field})
    optional = field in {"t", "users"}  # these may be absent, but not wrong
    bad = draw(not_objects | broken | (st.nothing() if optional else dropped))
    good.insert(draw(st.integers(0, len(good))), bad)
    return good, error.message


def invalid_channel_lists() -> st.SearchStrategy[tuple[list[Any], str]]:
    """``(channels, message)``: a list ``add_channels`` rejects, and the exact message.

    One entry is not an object, or lacks ``importIds`` or ``name``, or has
    a wrong ``t`` or ``users``; the message is ``Channels are missing
    required data.``

    >>> from importstate.testing import strategies as ist
    >>> ist.invalid_channel_lists().example()[1]
    'Channels are missing required data.'
    """
    return _invalid_records(MissingChannelData, channels())


def invalid_message_lists() -> st.SearchStrategy[tuple[list[Any], str]]:
    """``(messages, message)``: a list ``add_messages`` rejects, and the exact message.

    One entry is not an object, or lacks (or has a wrong) ``importIds``,
    ``rid``, ``u``, ``msg`` or ``ts``; the message is ``Messages are missing
    required data.``

    >>> from importstate.testing import strategies as ist
    >>> ist.invalid_message_lists().example()[1]
    'Messages are missing required data.'
    """
    return _invalid_records(MissingMessageData, messages())


def _choice(ids: Sequence[str]) -> st.SearchStrategy[dict[str, Any]]:
    listed = st.lists(st.sampled_from(ids), unique=True) if ids else st.just([])
    return st.fixed_dictionaries({}, optional={"all": st.booleans(), "list": listed})


def selections(
    users: Sequence[str] = (), channels: Sequence[str] = (),
) -> st.SearchStrategy[dict[str, Any]]:
    """A selection to start a run with: ``{users?: {all?, list?}, channels?: ...}``.

    Behaviour: selection.

    Lists are drawn from ``users`` and ``channels`` (import ids; channels
    may also list ``__directMessages__``) and a few unknown ids.

    >>> from importstate.testing import strategies as ist
    >>> set(ist.selections(["ann"], ["general"]).example()) <= {"users", "channels"}
    True
    """
    unknown = ["nobody", "nowhere"]
    return st.fixed_dictionaries({}, optional={
        "users": _choice([*users, *unknown]),
        "channels": _choice([*channels, DIRECT_MESSAGES, *unknown]),
    })


def _calls(max_users: int) -> st.SearchStrategy[ServiceCall]:
    user_lists = st.lists(users(), max_size=max_users)
    return st.one_of(
        st.builds(lambda uid: ServiceCall("new_operation", {"user_id": uid}),
                  st.text(_METEOR_ID, min_size=17, max_size=17)),
        st.builds(lambda us: ServiceCall("add_users", {"users": us}), user_lists),
        invalid_user_lists().map(lambda pair: ServiceCall("add_users", {"users": pair[0]})),
        st.builds(lambda cs: ServiceCall("add_channels", {"channels": cs}),
                  st.lists(channels(), max_size=max_users)),
        st.builds(lambda ms: ServiceCall("add_messages", {"messages": ms}),
                  st.lists(messages(), max_size=max_users)),
        invalid_channel_lists().map(
            lambda pair: ServiceCall("add_channels", {"channels": pair[0]}),
        ),
        invalid_message_lists().map(
            lambda pair: ServiceCall("add_messages", {"messages": pair[0]}),
        ),
        st.sampled_from([
            ServiceCall(name)
            for name in ("run", "cancel", "clear", "status", "progress", "selection",
                         "current_operation", "latest_operations")
        ]),
    )


def events(
    max_size: int | None = None, *, max_users: int = 5,
) -> st.SearchStrategy[list[ServiceCall]]:
    """A sequence of :class:`~importstate.testing.ServiceCall` to replay on an ``ImportService``.

    The calls are the public API of Behaviour: service, records, selection (new, add_users,
    add_channels and add_messages with valid, invalid and empty lists, run,
    cancel, clear, and the readers, ``selection`` among them). A call may
    be refused by the service; :meth:`ServiceCall.apply` returns the
    :class:`~importstate.ImportStateError` instead of raising, so two
    services can be compared call by call.

    >>> from importstate import ImportService, MemoryStore
    >>> from importstate.testing import strategies as ist
    >>> svc = ImportService(MemoryStore(), {"api": lambda user: None})
    >>> results = [call.apply(svc) for call in ist.events(max_size=5).example()]
    >>> len(results) <= 5
    True
    """
    return st.lists(_calls(max_users), max_size=max_size)


#: What makes a CSV field need quoting, and text beyond ASCII, drawn often.
_AWKWARD: Final = (",", '"', "\n", "\r\n", ";", "é", "名前", "🙂", "\u2028")


def csv_fields(*, blank: bool = False) -> st.SearchStrategy[str]:
    """Text a CSV import must carry through: commas, quotes, line breaks, any Unicode.

    Without leading or trailing whitespace (the file importers trim fields)
    and without NUL or lone surrogates (which no UTF-8 file can hold);
    empty only when ``blank``.
    """
    pieces = st.one_of(
        st.sampled_from(_AWKWARD),
        st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
                max_size=8),
    )
    fields = st.lists(pieces, max_size=6).map("".join).map(str.strip)
    return fields if blank else fields.filter(bool)
