"""Staging (`importstate._staging`): encoding, and the records handed to a store."""

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from importstate import _staging
from importstate.records import DataType, kind_of
from importstate.stores import NewRecord

USERS = kind_of(DataType.USER)

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=20,
)


@given(value=JSON)
def test_a_value_is_encoded_as_compact_json_dumps_writes_it(value):
    assert _staging._encode(value) == json.dumps(value, separators=(",", ":"))


def test_a_value_json_cannot_hold_is_a_type_error():
    with pytest.raises(TypeError, match="datetime"):
        _staging._encode({"when": dt.datetime.now(dt.UTC)})


def test_a_user_that_contains_itself_is_a_value_error():
    user: dict[str, object] = {"emails": ["a@example.com"], "importIds": ["a"]}
    user["self"] = user
    with pytest.raises(ValueError, match="Circular reference"):
        _staging.prepare(USERS, [user])


def test_prepared_records_read_as_new_records_every_way():
    users = [{"emails": [f"{n}@example.com"], "importIds": [str(n)]} for n in range(5)]
    records = _staging.prepare(USERS, users)
    listed = list(records)
    assert len(records) == 5
    assert all(type(record) is NewRecord for record in listed)
    assert [records[n] for n in range(5)] == listed
    assert records[-1] == listed[-1]
    assert records[1:4] == listed[1:4]
    assert records[::2] == listed[::2]
    assert [json.loads(record.json)["roles"] for record in listed] == [["user"]] * 5
    assert {record.data_type for record in listed} == {"user"}
    assert len({record.id for record in listed}) == 5
