"""Acme's in-house store: a small document database kept in memory.

Writers work on a private copy and swap it in when they commit, so a
transaction that raises leaves nothing behind and readers never wait.
"""

import copy
import datetime as dt
import json
import threading
from contextlib import contextmanager

from importstate import Operation
from importstate.stores import Pending, StagedRecord


class Database:
    """The shared "server": every ``DocumentStore`` on it sees the same data."""

    def __init__(self):
        self.lock = threading.Lock()
        self.data = {"operations": [], "staged": [], "created": 0, "position": 0}


class DocumentStore:
    """A handle on a ``Database``; several handles may share one."""

    def __init__(self, database):
        self.database = database

    @contextmanager
    def transaction(self):
        with self.database.lock:
            work = copy.deepcopy(self.database.data)
            yield _Transaction(work)
            self.database.data = work

    @contextmanager
    def reading(self):
        # Committed data is never changed in place, so a reference is a snapshot.
        yield _Transaction(self.database.data)

    def close(self):
        pass


class _Transaction:
    def __init__(self, data):
        self.data = data

    def _docs(self):
        return self.data["operations"]

    def _find(self, operation_id):
        for doc in self._docs():
            if doc["op"]["_id"] == operation_id:
                return doc
        raise KeyError(operation_id)

    def _ordered(self, key):
        return [Operation.from_wire(d["op"]) for d in sorted(self._docs(), key=key, reverse=True)]

    def current(self):
        ordered = self._ordered(lambda d: (d["ts"], d["created"]))
        return ordered[0] if ordered else None

    def get(self, operation_id):
        try:
            return Operation.from_wire(self._find(operation_id)["op"])
        except KeyError:
            return None

    def latest(self, limit):
        return self._ordered(lambda d: (d["updated"], d["ts"], d["created"]))[:limit]

    def valid_operations(self):
        return [Operation.from_wire(d["op"]) for d in self._docs() if d["op"]["valid"]]

    def insert(self, operation):
        self.data["created"] += 1
        self._docs().append({"op": None, "created": self.data["created"],
                             "checkpoint": None, "heartbeat": None})
        self._write(self._docs()[-1], operation)

    def update(self, operation):
        self._write(self._find(operation.id), operation)

    @staticmethod
    def _write(doc, operation):
        doc.update(op=operation.to_wire(), ts=_millis(operation.ts),
                   updated=_millis(operation.updated_at))

    def stage(self, operation_id, records):
        for record in records:
            self.data["position"] += 1
            self.data["staged"].append({
                "position": self.data["position"], "operation": operation_id, "_id": record.id,
                "data": record.json, "dataType": record.data_type, "errors": [],
                "selected": True,
            })

    def _staged(self, operation_id):
        return [s for s in self.data["staged"] if s["operation"] == operation_id]

    def staged(self, operation_id, *, after, limit):
        later = [s for s in self._staged(operation_id) if after is None or s["position"] > after]
        return [
            StagedRecord(s["position"], s["_id"], json.loads(s["data"]), s["dataType"],
                         tuple(copy.deepcopy(s["errors"])))
            for s in later[:limit]
        ]

    def pending(self, operation_id, data_type, *, after, limit):
        later = [s for s in self._staged(operation_id)
                 if (after is None or s["position"] > after)
                 and s["dataType"] == data_type and s["selected"]]
        return [Pending(s["position"], json.loads(s["data"])) for s in later[:limit]]

    def deselect(self, operation_id, positions):
        left_out = set(positions)
        for s in self._staged(operation_id):
            if s["position"] in left_out:
                s["selected"] = False

    def record_errors(self, operation_id, errors):
        by_position = {s["position"]: s for s in self._staged(operation_id)}
        for position, error in errors:
            if position in by_position:
                by_position[position]["errors"].append(dict(error))

    def remove_succeeded(self, operation_id):
        keep = [s for s in self.data["staged"]
                if s["operation"] != operation_id or s["errors"]]
        removed = len(self.data["staged"]) - len(keep)
        self.data["staged"] = keep
        return removed

    def unstage_all(self):
        removed = len(self.data["staged"])
        self.data["staged"] = []
        return removed

    def checkpoint(self, operation_id):
        return self._find(operation_id)["checkpoint"]

    def heartbeat(self, operation_id):
        millis = self._find(operation_id)["heartbeat"]
        return _from_millis(millis) if millis is not None else None

    def set_checkpoint(self, operation_id, position, heartbeat):
        doc = self._find(operation_id)
        doc["checkpoint"], doc["heartbeat"] = position, _millis(heartbeat)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _millis(moment):
    return (moment - _EPOCH) // dt.timedelta(milliseconds=1)


def _from_millis(millis):
    return _EPOCH + dt.timedelta(milliseconds=millis)
