import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from importstate import Operation
from importstate._time import format_time, from_epoch_millis, parse_time
from importstate.testing import strategies as ist


@given(ist.operations())
def test_from_wire_inverts_to_wire(op):
    assert Operation.from_wire(op.to_wire()) == op


@given(ist.operations())
def test_wire_documents_survive_json(op):
    assert Operation.from_wire(json.loads(json.dumps(op.to_wire()))) == op


@given(ist.wire_documents())
def test_reading_a_document_then_writing_it_gives_iso_ts(doc):
    written = Operation.from_wire(doc).to_wire()
    assert written == {**doc, "ts": written["ts"]}
    assert written["ts"] == format_time(parse_time(doc["ts"], "ts"))
    assert written["ts"].endswith("Z")


@pytest.mark.parametrize(("form", "kind"), [
    ("iso", str), ("epoch_millis", int), ("epoch_millis_string", str),
])
@given(data=st.data())
def test_each_ts_form_reads_as_the_same_time(form, kind, data):
    doc = data.draw(ist.wire_documents(ts_form=form))
    assert type(doc["ts"]) is kind
    ts = Operation.from_wire(doc).ts
    if form == "iso":
        assert format_time(ts) == doc["ts"]
    else:
        assert ts == from_epoch_millis(int(doc["ts"]))
        assert str(doc["ts"]).isdigit()
