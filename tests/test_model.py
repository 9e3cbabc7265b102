import datetime as dt
import json
from pathlib import Path

import attrs
import pytest

from importstate import Count, Failure, Operation, ProgressStep, State, WireFormatError
from importstate._time import format_time, parse_time
from importstate.model import WIRE_FIELDS

SEEDS = json.loads((Path(__file__).parent / "data" / "seed_examples.json").read_text())["pages"]


def seed_operations():
    """Every operation document in the seeds' example bodies, verbatim."""
    docs = []
    for number, page in SEEDS.items():
        for example in page["examples"]:
            if isinstance(example, list):
                docs += [(number, doc) for doc in example]
            elif "operation" in example:
                docs.append((number, example["operation"]))
    return docs


SEED_DOCS = seed_operations()


def test_the_seeds_hold_every_documented_example():
    assert len(SEED_DOCS) == 5 + 7 + 7 + 1 + 1


@pytest.mark.parametrize(("page", "doc"), SEED_DOCS, ids=[f"{p}-{d['_id']}" for p, d in SEED_DOCS])
def test_seed_documents_read_verbatim(page, doc):  # noqa: ARG001 - page names the case
    op = Operation.from_wire(doc)
    assert op.id == doc["_id"]
    assert op.status == doc["status"]
    assert op.valid is doc["valid"]
    assert op.importer_key == doc["importerKey"]
    assert op.to_wire()["ts"].endswith("Z")
    written = op.to_wire()
    # Every key the seed has comes back; only ts is rewritten to the ISO form.
    assert set(written) == set(doc)
    for key in doc.keys() - {"ts"}:
        assert written[key] == doc[key], key
    assert parse_time(doc["ts"], "ts") == op.ts


def test_three_ts_forms_give_the_same_time():
    moment = dt.datetime(2021, 10, 26, 20, 36, 40, 83000, tzinfo=dt.UTC)
    assert parse_time(1635280600083, "ts") == moment
    assert parse_time("1635280600083", "ts") == moment
    assert parse_time("2021-10-26T20:36:40.083Z", "ts") == moment
    assert format_time(moment) == "2021-10-26T20:36:40.083Z"


def test_the_status_seed_reads_as_ready():
    body = SEEDS["004"]["examples"][0]
    op = Operation.from_wire(body["operation"])
    assert op.state == body["state"] == State.READY
    assert op.count == Count(total=2, users=2)
    assert op.count.get("completed") == 0
    assert op.to_wire() == body["operation"]


def test_the_new_seed_round_trips_exactly():
    doc = SEEDS["003"]["examples"][0]["operation"]
    assert Operation.from_wire(doc).to_wire() == doc
    assert list(Operation.from_wire(doc).to_wire()) == list(doc)  # key order too


def test_file_importer_keys_appear_only_when_set():
    doc = next(d for _, d in SEED_DOCS if "file" in d)
    op = Operation.from_wire(doc)
    assert (op.file, op.content_type) == (doc["file"], doc["contentType"])
    plain = Operation.from_wire(SEEDS["003"]["examples"][0]["operation"])
    assert "file" not in plain.to_wire()
    assert "contentType" not in plain.to_wire()
    assert "count" not in plain.to_wire()
    assert "failure" not in plain.to_wire()


def test_failure_is_written_and_read():
    base = Operation.from_wire(SEEDS["003"]["examples"][0]["operation"])
    at = dt.datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=dt.UTC)
    failed = base.touched(at, failure=Failure("disk full", at))
    assert failed.to_wire()["failure"] == {"message": "disk full", "at": "2024-05-01T12:00:00.123Z"}
    assert Operation.from_wire(failed.to_wire()) == failed


GOOD = {
    "_id": "64d69545ee8ae821983005f5", "type": "api", "importerKey": "api",
    "ts": "2023-08-11T20:08:37.655Z", "status": "importer_user_selection", "valid": True,
    "user": "rbAXPnMktTFbNpwtJ", "_updatedAt": "2023-08-11T20:08:37.655Z",
    "count": {"total": 2, "users": 2, "completed": 0, "error": 0},
}


@pytest.mark.parametrize(("change", "field"), [
    ({"_id": None}, "_id"),
    ({"_id": 5}, "_id"),
    ({"status": "importer_bogus"}, "status"),
    ({"status": 3}, "status"),
    ({"valid": "yes"}, "valid"),
    ({"ts": "yesterday"}, "ts"),
    ({"ts": True}, "ts"),
    ({"ts": 1.5}, "ts"),
    ({"_updatedAt": None}, "_updatedAt"),
    ({"user": ["a"]}, "user"),
    ({"count": []}, "count"),
    ({"count": {"total": -1}}, "count.total"),
    ({"count": {"total": "2"}}, "count.total"),
    ({"count": {"total": True}}, "count.total"),
    ({"count": {"bananas": 1}}, "count.bananas"),
    ({"file": 7}, "file"),
    ({"failure": "boom"}, "failure"),
    ({"failure": {"message": "x", "at": "never"}}, "failure.at"),
    ({"progress": 1}, "progress"),
])
def test_misfit_documents_name_the_field(change, field):
    doc = {**GOOD, **change}
    doc = {k: v for k, v in doc.items() if v is not None}
    with pytest.raises(WireFormatError) as caught:
        Operation.from_wire(doc)
    assert caught.value.field == field
    assert str(caught.value).startswith(field)


@pytest.mark.parametrize("missing", ["_id", "type", "importerKey", "ts", "status", "valid", "user",
                                     "_updatedAt"])
def test_missing_keys_are_named(missing):
    doc = {k: v for k, v in GOOD.items() if k != missing}
    with pytest.raises(WireFormatError) as caught:
        Operation.from_wire(doc)
    assert caught.value.field == missing


@pytest.mark.parametrize(("change", "missing", "field"), [
    ({"_id": 5, "status": "importer_bogus"}, (), "status"),
    ({"_id": 5, "user": 5, "valid": "yes"}, (), "valid"),
    ({"_id": 5, "status": 3}, ("valid",), "status"),
    ({"_id": 5}, ("_updatedAt",), "_updatedAt"),
    ({"status": "importer_bogus"}, ("_id", "ts"), "status"),
    ({"_id": 5, "ts": "yesterday", "file": 7}, (), "_id"),
    ({"ts": "yesterday", "user": 5}, (), "ts"),
    ({"progress": 1, "status": 3}, ("_id",), "progress"),
    ({"count": [], "file": 7}, (), "count"),
])
def test_several_misfits_name_the_same_field_first(change, missing, field):
    doc = {k: v for k, v in {**GOOD, **change}.items() if k not in missing}
    with pytest.raises(WireFormatError) as caught:
        Operation.from_wire(doc)
    assert caught.value.field == field


def test_the_wire_table_holds_every_attribute_in_order():
    assert [f.attr for f in WIRE_FIELDS] == [a.name for a in attrs.fields(Operation)]
    assert [f.wire for f in WIRE_FIELDS if f.required] == [
        "_id", "type", "importerKey", "ts", "status", "valid", "user", "_updatedAt",
    ]


@pytest.mark.parametrize("value", [None, [], "doc", 3, True])
def test_a_document_must_be_an_object(value):
    with pytest.raises(WireFormatError) as caught:
        Operation.from_wire(value)
    assert caught.value.field == "$"


def test_updated_at_never_moves_backwards():
    op = Operation.from_wire(GOOD)
    earlier = op.updated_at - dt.timedelta(minutes=5)
    assert op.touched(earlier).updated_at == op.updated_at
    later = op.updated_at + dt.timedelta(seconds=1)
    assert op.touched(later).updated_at == later


def test_times_keep_milliseconds_only():
    at = dt.datetime(2024, 1, 2, 3, 4, 5, 678999, tzinfo=dt.UTC)
    op = Operation.create(user="u", at=at)
    assert op.ts.microsecond == 678000
    assert op.to_wire()["ts"] == "2024-01-02T03:04:05.678Z"


def test_create_defaults_to_the_api_importer():
    op = Operation.create(user="u1", at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    doc = op.to_wire()
    assert (doc["type"], doc["importerKey"], doc["status"], doc["valid"]) == (
        "api", "api", "importer_new", True,
    )
    assert doc["ts"] == doc["_updatedAt"]
    assert len(op.id) == 24
    assert int(op.id, 16) >= 0


def test_create_with_another_importer():
    op = Operation.create(user="u1", at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC), type="CSV",
                          importer_key="csv")
    assert (op.type, op.importer_key) == ("CSV", "csv")


def test_fire_moves_through_the_machine_and_stamps():
    at = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    op = Operation.create(user="u", at=at)
    later = at + dt.timedelta(seconds=3)
    staged = op.fire("stage", at=later, count=op.count.added(total=3, users=3))
    assert staged.status is ProgressStep.USER_SELECTION
    assert staged.updated_at == later
    assert staged.count.to_wire() == {"total": 3, "users": 3}


def test_count_reads_absent_keys_as_zero():
    count = Count.from_wire({"total": 4})
    assert [count.get(k) for k in ("total", "completed", "error")] == [4, 0, 0]
    assert count.added(completed=2).to_wire() == {"total": 4, "completed": 2}
