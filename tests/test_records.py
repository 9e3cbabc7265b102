"""The table of record kinds (`importstate.records`), and what each kind may be staged as."""

import json

import pytest

from importstate import (
    InvalidChannelList,
    InvalidMessageList,
    InvalidUserList,
    MissingChannelData,
    MissingMessageData,
    MissingUserData,
    ProgressStep,
    _staging,
)
from importstate.records import RECORD_KINDS, DataType, kind_of, kinds_after, phase_of


def channel(n=1, **extra):
    return {"importIds": [f"c{n}"], "name": f"channel-{n}", **extra}


def message(n=1, **extra):
    return {"importIds": [f"m{n}"], "rid": "c1", "u": {"_id": "u1"}, "msg": f"hello {n}",
            "ts": "2023-08-11T20:08:37.655Z", **extra}


def test_the_kinds_go_users_channels_messages_each_with_its_phase_and_count():
    assert [(k.data_type, k.count, k.step, k.importer_method) for k in RECORD_KINDS] == [
        ("user", "users", ProgressStep.IMPORTING_USERS, "import_batch"),
        ("channel", "channels", ProgressStep.IMPORTING_CHANNELS, "import_channels"),
        ("message", "messages", ProgressStep.IMPORTING_MESSAGES, "import_messages"),
    ]
    assert [k.missing for k in RECORD_KINDS] == [
        MissingUserData, MissingChannelData, MissingMessageData,
    ]
    assert [k.not_a_list for k in RECORD_KINDS] == [
        InvalidUserList, InvalidChannelList, InvalidMessageList,
    ]


def test_phases_and_the_kinds_after_a_status():
    assert phase_of(ProgressStep.IMPORTING_CHANNELS) is kind_of("channel")
    assert phase_of(ProgressStep.IMPORTING_STARTED) is None
    assert phase_of(ProgressStep.FINISHING) is None
    assert kinds_after(ProgressStep.IMPORTING_STARTED) == RECORD_KINDS
    assert kinds_after(ProgressStep.IMPORTING_USERS) == RECORD_KINDS[1:]
    assert kinds_after(ProgressStep.IMPORTING_MESSAGES) == ()
    assert kinds_after(ProgressStep.IMPORTING_CONTACTS) == ()


def test_an_unknown_data_type_is_a_value_error():
    with pytest.raises(ValueError, match="contact"):
        kind_of("contact")


def _staged(data_type, records):
    return [json.loads(r.json) for r in _staging.prepare(kind_of(data_type), records)]


def test_a_channel_gets_its_defaults_and_keeps_what_it_has():
    assert _staged("channel", [channel(1), channel(2, t="p", users=["u1"], archived=True)]) == [
        {"t": "c", "users": [], **channel(1)},
        channel(2, t="p", users=["u1"], archived=True),
    ]
    assert {r.data_type for r in _staging.prepare(kind_of("channel"), [channel()])} == {"channel"}


def test_a_message_is_staged_as_given_with_either_time_form():
    given = [message(1), message(2, ts=1635280600083, msg=""), message(3, ts="1635280600083")]
    assert _staged("message", given) == given


@pytest.mark.parametrize("bad", [
    None, "general", ["c1"],
    {"name": "general"},
    {"importIds": [], "name": "general"},
    {"importIds": [""], "name": "general"},
    {"importIds": ["c1"]},
    {"importIds": ["c1"], "name": ""},
    {"importIds": ["c1"], "name": 7},
    channel(t="x"),
    channel(t=None),
    channel(users="u1"),
    channel(users=[7]),
])
def test_a_channel_missing_or_with_wrong_data_is_refused(bad):
    with pytest.raises(MissingChannelData) as refused:
        _staging.prepare(kind_of("channel"), [channel(1), bad])
    assert str(refused.value) == "Channels are missing required data."
    assert refused.value.index == 1


@pytest.mark.parametrize("bad", [
    None, "hi", [message()],
    {k: v for k, v in message().items() if k != "importIds"},
    {k: v for k, v in message().items() if k != "rid"},
    {k: v for k, v in message().items() if k != "u"},
    {k: v for k, v in message().items() if k != "msg"},
    {k: v for k, v in message().items() if k != "ts"},
    message(importIds=[""]),
    message(rid=""),
    message(u="u1"),
    message(u={"_id": ""}),
    message(msg=None),
    message(ts="yesterday"),
    message(ts=1.5),
    message(ts=True),
])
def test_a_message_missing_or_with_wrong_data_is_refused(bad):
    with pytest.raises(MissingMessageData) as refused:
        _staging.prepare(kind_of("message"), [bad, message(1)])
    assert str(refused.value) == "Messages are missing required data."
    assert refused.value.index == 0


@pytest.mark.parametrize(("data_type", "error", "noun"), [
    (DataType.USER, InvalidUserList, "users"),
    (DataType.CHANNEL, InvalidChannelList, "channels"),
    (DataType.MESSAGE, InvalidMessageList, "messages"),
])
def test_records_must_be_a_list(data_type, error, noun):
    with pytest.raises(error, match=f"^{noun} must be a list, got dict$"):
        _staging.as_list({"a": 1}, kind_of(data_type))
