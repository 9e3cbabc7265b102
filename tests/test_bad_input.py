"""Bad input: any JSON value given to ``add_users`` or ``Operation.from_wire``.

Only an :class:`~importstate.ImportStateError` may escape, and a refused call
leaves the store exactly as it was.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
import workers
from hypothesis import given, settings
from hypothesis import strategies as st

from importstate import (
    ImportService,
    ImportStateError,
    MemoryStore,
    Operation,
    SQLiteStore,
    Store,
    WireFormatError,
)
from importstate.testing.strategies import users, wire_documents

# Lone surrogates included: json.loads gives them for "\ud800".
_TEXT = st.text(st.characters(exclude_categories=()), max_size=12)
_SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXT
)
#: Any value json.loads can return.
JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_TEXT, inner, max_size=5),
    max_leaves=20,
)
#: Users as add_users expects them, and near misses of one.
_USER_FIELDS = st.sampled_from(["emails", "importIds", "roles", "username", "password", "type"])
NEAR_USERS = users() | st.builds(
    lambda user, key, value: {**user, key: value}, users(), _USER_FIELDS, JSON,
)
#: What a caller might pass to add_users.
USER_LISTS = JSON | st.lists(NEAR_USERS | JSON, max_size=6)

# Times a wire document may hold, and the out-of-range and odd ones it must refuse.
_ODD_TIMES = st.sampled_from([
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "99999999999999999999",
    "12²4", "٣٣", "", "T", -(10**20), 10**20,
])
#: A wire document with one field replaced by any JSON value.
DAMAGED_DOCUMENTS = st.builds(
    lambda doc, key, value: {**doc, key: value},
    wire_documents(),
    st.sampled_from(["_id", "type", "importerKey", "ts", "status", "valid", "user",
                     "_updatedAt", "count", "contentType", "file", "failure", "extra"]),
    JSON | _ODD_TIMES,
)


@pytest.fixture(scope="module", params=["memory", "sqlite"])
def service(request, tmp_path_factory) -> Iterator[ImportService]:
    store: Store = (
        MemoryStore() if request.param == "memory"
        else SQLiteStore(tmp_path_factory.mktemp("bad") / "bad.db")
    )
    service = ImportService(store)
    yield service
    store.close()


def snapshot(service: ImportService) -> tuple[Any, ...]:
    """Everything a caller can see of the store, bookkeeping included."""
    current = service.current_operation()
    bookkeeping = None
    if current is not None:
        with service.store.reading() as tx:
            bookkeeping = (tx.checkpoint(current.id), tx.heartbeat(current.id))
    return (
        service.status(),
        [op.to_wire() for op in service.latest_operations(100)],
        list(service.staged_users()),
        bookkeeping,
    )


def fresh(service: ImportService) -> None:
    """A ready operation holding a few users."""
    service.new_operation("admin")
    service.add_users(workers.users(3))


@settings(max_examples=150)
@given(given_users=USER_LISTS)
def test_add_users_refuses_any_bad_value_and_changes_nothing(service, given_users):
    fresh(service)
    before = snapshot(service)
    try:
        updated = service.add_users(given_users)
    except ImportStateError:
        assert snapshot(service) == before
        return
    after = snapshot(service)
    added = len(given_users)
    assert updated is None if added == 0 else updated == service.current_operation()
    assert len(after[2]) == len(before[2]) + added
    staged = [record["data"] for record in after[2][len(before[2]):]]
    assert [{k: v for k, v in u.items() if k != "roles"} for u in staged] == [
        {k: v for k, v in u.items() if k != "roles"} for u in given_users
    ]


@settings(max_examples=50)
@given(given_users=st.lists(NEAR_USERS | JSON, min_size=1, max_size=4))
def test_add_users_without_a_receiving_operation_changes_nothing(service, given_users):
    fresh(service)
    service.clear()
    before = snapshot(service)
    with pytest.raises(ImportStateError):
        service.add_users(given_users)
    assert snapshot(service) == before


def test_a_value_json_cannot_hold_is_refused_and_changes_nothing(service):
    fresh(service)
    before = snapshot(service)
    odd = {"emails": ["a@example.com"], "importIds": ["a"], "when": dt.datetime.now(dt.UTC)}
    with pytest.raises((ImportStateError, TypeError)):
        service.add_users([odd])
    assert snapshot(service) == before


REQUIRED = frozenset({"_id", "type", "importerKey", "ts", "status", "valid", "user", "_updatedAt"})


@settings(max_examples=300)
@given(doc=JSON | DAMAGED_DOCUMENTS)
def test_from_wire_accepts_a_document_or_names_the_field_at_fault(doc):
    try:
        operation = Operation.from_wire(doc)
    except WireFormatError as exc:
        refused = exc
    else:
        assert Operation.from_wire(json.loads(json.dumps(operation.to_wire()))) == operation
        return
    field = refused.field  # "$", a key of the document, or "count.total" and the like
    assert field == "$" or field in doc or field.split(".")[0] in REQUIRED | set(doc)
    assert str(refused) == f"{refused.field}: {refused.reason}"


@pytest.mark.parametrize(
    ("field", "value"),
    [("ts", "12²4"), ("ts", "99999999999999999999"), ("_updatedAt", 10**20),
     ("ts", "0001-01-01T00:00:00+01:00"), ("failure", {"message": "m", "at": -(10**20)})],
)
def test_a_time_out_of_range_names_its_field(field, value):
    doc = {
        "_id": "64d69545ee8ae821983005f5", "type": "api", "importerKey": "api",
        "ts": "2023-08-11T20:08:37.655Z", "status": "importer_new", "valid": True,
        "user": "u", "_updatedAt": "2023-08-11T20:08:37.655Z", field: value,
    }
    with pytest.raises(WireFormatError) as refused:
        Operation.from_wire(doc)
    assert refused.value.field.split(".")[0] == field


def test_a_year_before_1000_is_written_with_four_digits():
    doc = {
        "_id": "x", "type": "api", "importerKey": "api", "ts": "0999-01-02T03:04:05.006Z",
        "status": "importer_new", "valid": True, "user": "u", "_updatedAt": 0,
    }
    wire = Operation.from_wire(doc).to_wire()
    assert wire["ts"] == "0999-01-02T03:04:05.006Z"
    assert wire["_updatedAt"] == "1970-01-01T00:00:00.000Z"
