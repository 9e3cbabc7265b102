"""Deliberately broken stores: the test kit must catch each of them."""

import copy
from contextlib import contextmanager

from acme_import.store import DocumentStore, _Transaction


class _FirstComeTransaction(_Transaction):
    def current(self):
        # The bug: a tie on ts goes to the operation created first.
        docs = sorted(self._docs(), key=lambda d: (d["ts"], -d["created"]), reverse=True)
        return self.get(docs[0]["op"]["_id"]) if docs else None


class FirstComeStore(DocumentStore):
    """Breaks "ties on ts go to the later created operation"."""

    def _wrap(self, tx):
        return _FirstComeTransaction(tx.data)

    def transaction(self):
        return _Rewrapped(super().transaction(), self._wrap)

    def reading(self):
        return _Rewrapped(super().reading(), self._wrap)


class _ForgetfulTransaction(_Transaction):
    def remove_succeeded(self, operation_id):
        # The bug: failed records are removed as well.
        removed = len(self._staged(operation_id))
        self.data["staged"] = [s for s in self.data["staged"] if s["operation"] != operation_id]
        return removed


class ForgetfulStore(DocumentStore):
    """Breaks "after done, staging keeps exactly the failed users"."""

    def transaction(self):
        return _Rewrapped(super().transaction(), lambda tx: _ForgetfulTransaction(tx.data))

    def reading(self):
        return _Rewrapped(super().reading(), lambda tx: _ForgetfulTransaction(tx.data))


class _Rewrapped:
    def __init__(self, manager, wrap):
        self.manager, self.wrap = manager, wrap

    def __enter__(self):
        return self.wrap(self.manager.__enter__())

    def __exit__(self, *exc):
        return self.manager.__exit__(*exc)


class LeakyStore(DocumentStore):
    """Breaks "a transaction that raises leaves nothing behind"."""

    @contextmanager
    def transaction(self):
        with self.database.lock:
            work = copy.deepcopy(self.database.data)
            try:
                yield _Transaction(work)
            finally:
                self.database.data = work
