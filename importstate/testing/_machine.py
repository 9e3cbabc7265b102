"""A Hypothesis state machine that checks an :class:`ImportService` against the spec."""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import tempfile
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO, ClassVar, Final, cast

from importstate._extras import needs

with needs("testing", "importstate.testing.ImportServiceMachine"):
    import pytest
    from hypothesis import note
    from hypothesis import strategies as st
    from hypothesis.stateful import (
        RuleBasedStateMachine,
        initialize,
        invariant,
        precondition,
        rule,
    )

from importstate import machine
from importstate.errors import (
    DownloadFailed,
    HistoryUnsupported,
    ImportStateError,
    InvalidTransition,
    OperationNotFound,
)
from importstate.importers import BatchCall, Importer, batch_calls
from importstate.machine import Event
from importstate.model import Operation
from importstate.pending import PendingDownload, PendingKind
from importstate.records import kind_of
from importstate.service import PASSWORD_MASK, ImportService
from importstate.steps import ProgressStep
from importstate.testing import strategies as ist
from importstate.testing._reference import (
    LOADING_STEPS,
    PENDING_IMPORTERS,
    ReferenceModel,
    rejection,
)

#: The importer key that the machine never registers (``run`` must refuse it).
UNREGISTERED_KEY: Final = "importstate-unregistered"
_START: Final = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
_FIRST_USER: Final = "rbAXPnMktTFbNpwtJ"
_USER_IDS: Final = st.sampled_from([_FIRST_USER, "aobEdbYhXfu5hkeqG", "u1"])


#: The service's method that stages each type.
_ADD: Final = {"user": "add_users", "channel": "add_channels", "message": "add_messages"}


def _records(invalid: tuple[list[Any], str]) -> list[Any]:
    return invalid[0]


class InjectedFailure(Exception):
    """The error the machine's importer wrapper raises for a record it was told to fail."""


class _InjectingImporter:
    """Wraps the importer under test: fails chosen records, hands the rest to it, records all.

    It imports exactly the types the importer under test imports; records
    are numbered in the order the run hands them over, across types.
    """

    def __init__(self, importer: Importer) -> None:
        self.inner: dict[str, BatchCall] = batch_calls(importer)
        self.inject: frozenset[int] = frozenset()
        self.seen: list[dict[str, Any]] = []
        self.batch_of: list[list[dict[str, Any]]] = []
        self.own_failures: dict[int, BaseException] = {}
        for data_type in self.inner:
            setattr(self, kind_of(data_type).importer_method,
                    functools.partial(self._import_batch, data_type))

    def start(self, inject: frozenset[int]) -> None:
        self.inject, self.seen, self.batch_of, self.own_failures = inject, [], [], {}

    def injected_message(self, index: int) -> str:
        """What the run stores for an injected failure: the batch's passwords masked."""
        text = f"injected failure of record #{index}"
        passwords = {
            record["password"] for record in self.batch_of[index]
            if isinstance(record.get("password"), str) and record["password"]
        }
        for password in sorted(passwords, key=len, reverse=True):
            text = text.replace(password, PASSWORD_MASK)
        return text

    def _import_batch(
        self, data_type: str, records: list[dict[str, Any]],
    ) -> list[BaseException | None]:
        first = len(self.seen)
        self.seen.extend(records)
        self.batch_of.extend([records] * len(records))
        indices = [first + i for i in range(len(records))]
        passed = [i for i in indices if i not in self.inject]
        outcomes: dict[int, BaseException | None] = {
            i: InjectedFailure(f"injected failure of record #{i}")
            for i in indices if i in self.inject
        }
        if passed:
            try:
                results: Sequence[BaseException | None] = self.inner[data_type](
                    [self.seen[i] for i in passed],
                )
            except Exception as exc:  # noqa: BLE001 - the run fails the batch; the model must too
                results = [exc] * len(passed)
            for i, result in zip(passed, results, strict=True):
                outcomes[i] = result
                if result is not None:
                    self.own_failures[i] = result
        return [outcomes[i] for i in indices]


class _PendingList:
    """A target with downloads pending, and a fetch that fetches or fails each as drawn."""

    def __init__(self, kind: PendingKind, outcomes: Sequence[bool]) -> None:
        self.items = [
            PendingDownload(kind, f"r{i}", f"https://files.example/{i}")
            for i in range(len(outcomes))
        ]
        self.outcomes = dict(zip((item.url for item in self.items), outcomes, strict=True))
        self.tried: list[tuple[str, bool]] = []

    def pending_downloads(self, kind: PendingKind) -> list[PendingDownload]:
        return [item for item in self.items if item.kind is kind]

    def downloaded(
        self, kind: PendingKind, import_id: str, *, path: str | None = None,
        error: str | None = None,
    ) -> None:
        del kind, error
        self.tried.append((import_id, path is not None))

    def fetch(self, url: str, dest: BinaryIO) -> int:
        if not self.outcomes[url]:
            raise DownloadFailed(url, "HTTP 404 Not Found")
        return dest.write(url.encode())


_Staging = list[tuple[dict[str, Any], list[str | None]]]


def _blank_unpredicted(got: _Staging, want: _Staging) -> _Staging:
    """``got`` with each message the model leaves open (``None`` in ``want``) set to ``None``."""
    blanked: _Staging = []
    for index, (data, messages) in enumerate(got):
        expected = want[index][1] if index < len(want) else []
        blanked.append((data, [
            None if i < len(expected) and expected[i] is None else message
            for i, message in enumerate(messages)
        ]))
    return blanked


class ImportServiceMachine(RuleBasedStateMachine):
    """Drives an :class:`~importstate.ImportService` with random calls beside a reference model.

    Use :meth:`with_factory` to point it at your service; the returned
    class's ``.TestCase`` is a test case pytest and unittest collect::

        TestMyService = ImportServiceMachine.with_factory(make_service).TestCase

    Rules: new operation (also with an unregistered importer key), add
    valid, invalid and empty lists of users, channels and messages, run
    (with or without a selection, failing a random subset of records),
    cancel, clear, letting time pass, the file importers' loading path
    (``begin_loading``, ``advance``, ``stage``, ``finish_loading``), and
    pending downloads (``begin_pending``, then ``fetch_pending`` with some
    downloads failing, perhaps after a cancel or a new operation). After
    every step, ``status``, ``progress``, ``selection``,
    ``current_operation`` and ``latest_operations`` must say what the model
    predicts; at most one operation is valid; ``completed + error <=
    total``; and once a run is done ``completed + error == total`` with staging
    holding exactly the failed records, each with its error. A run must hand
    the importer the records its selection keeps, users, then channels,
    then messages, each in staging order; an importer without a method for
    a type staged must be refused.

    The machine sets the service's ``clock`` (time moves only when a rule
    says so, which exercises the tie-breaking rules), ``batch_size`` (1-4)
    and ``message_batch_size`` (1-6), so that a few records span several
    batches, and wraps the importer registered under ``"api"``: records it
    picks fail with :class:`InjectedFailure`, the rest go to your importer,
    whose own failures the model then expects (with any message: the
    service masks the batch's passwords in it and cuts it at 2,000
    characters). Subclass the result of :meth:`with_factory` to add rules;
    ``self.service`` and ``self.model`` are there to use.
    """

    factory: ClassVar[Callable[[], ImportService] | None] = None

    @classmethod
    def with_factory(cls, factory: Callable[[], ImportService]) -> type[ImportServiceMachine]:
        """A subclass that tests the services ``factory()`` returns.

        ``factory`` is called once per example (each run of the machine) and
        must return a service on an empty store with the importer under test
        registered under ``"api"``. The store is closed when the run ends.
        """
        name = f"{cls.__name__}_{getattr(factory, '__name__', 'factory')}"
        return type(name, (cls,), {"factory": staticmethod(factory)})

    def __init__(self) -> None:
        super().__init__()
        factory = type(self).factory
        if factory is None:
            msg = "use ImportServiceMachine.with_factory(make_service) to say what to test"
            raise TypeError(msg)
        self.service = factory()
        if "api" not in self.service.importers:
            msg = "the factory's service must register the importer under test as 'api'"
            raise TypeError(msg)
        self.importer = _InjectingImporter(self.service.importers["api"])
        self.service.importers["api"] = cast("Importer", self.importer)
        self.now = _START
        self.service.clock = lambda: self.now
        self.model = ReferenceModel()
        self.begun: Operation | None = None
        self.pending = _PendingList(PendingKind.FILES, [])
        self._files_dir: tempfile.TemporaryDirectory[str] | None = None

    def teardown(self) -> None:
        """Close the service's store; remove the fetched files."""
        self.service.store.close()
        if self._files_dir is not None:
            self._files_dir.cleanup()

    def _refused(self, message: str, call: Callable[[], object]) -> None:
        with pytest.raises(ImportStateError) as refused:
            call()
        assert str(refused.value) == message, (
            f"expected the refusal {message!r}, got {str(refused.value)!r}"
        )

    def _same(self, operation: Operation | None, expected: dict[str, Any]) -> None:
        assert operation is not None, "the service returned no operation"
        got = operation.to_wire()
        assert got == expected, f"operation differs from the spec:\n  got {got}\n want {expected}"

    # -- rules -----------------------------------------------------------------------------

    @initialize(
        batch_size=st.integers(1, 4),
        message_batch_size=st.integers(1, 6),
        start=st.sampled_from(["none", "new", "loading", "ready", "done"]),
        users=st.lists(ist.users(), min_size=1, max_size=8),
        channels=st.lists(ist.channels(), max_size=3),
        data=st.data(),
    )
    def start(  # noqa: PLR0913 - one argument per drawn part of the start
        self, *, batch_size: int, message_batch_size: int, start: str,
        users: list[dict[str, Any]], channels: list[dict[str, Any]], data: st.DataObject,
    ) -> None:
        """Use small batches, and often begin with an operation ready to run, or run.

        Small batches make a handful of records span several batches; starting
        further along spends the steps on the interesting part: users,
        channels and messages in those channels staged (the types the
        importer under test imports), and for ``done`` a run, often with a
        selection.
        """
        self.service.batch_size = batch_size
        self.service.message_batch_size = message_batch_size
        if start != "none":
            self.new_operation(_FIRST_USER, registered=True)
        if start == "loading":
            self.begin_loading("users.csv", "text/csv")
        if start in {"ready", "done"}:
            self._add(users)
            # Only the types the importer under test imports: a run would be refused.
            if "channel" in self.importer.inner:
                self._add(channels, "channel")
            if "message" in self.importer.inner:
                self.add_messages(data)
        if start == "done":
            if data.draw(st.booleans(), label="with a selection"):
                self.run_with_a_selection(data)
            else:
                self.run(data)

    @rule(millis=st.sampled_from([1, 1, 7, 60_000]))
    def tick(self, millis: int) -> None:
        """Let time pass; without a tick, calls share one millisecond (ties)."""
        self.now += dt.timedelta(milliseconds=millis)

    @rule(user_id=_USER_IDS, registered=st.booleans())
    def new_operation(self, user_id: str, registered: bool) -> None:
        """``import.new``: clears everything and creates an operation at ``importer_new``."""
        key = "api" if registered else UNREGISTERED_KEY
        operation = self.service.new_operation(user_id, importer_key=key)
        self.model.new_operation(operation.id, user_id, key, self.now)
        self._same(operation, self.model.operations[-1].to_wire())

    @rule(users=st.lists(ist.users(), max_size=5))
    def add_users(self, users: list[dict[str, Any]]) -> None:
        """``import.addUsers`` with valid users (an empty list does nothing)."""
        self._add(users)

    @rule(invalid=ist.invalid_user_lists())
    def add_invalid_users(self, invalid: tuple[list[Any], str]) -> None:
        """``import.addUsers`` with a list Behaviour: service rejects: nothing is staged."""
        self._add(invalid[0])

    @rule(channels=st.lists(ist.channels(), max_size=4))
    def add_channels(self, channels: list[dict[str, Any]]) -> None:
        """``add_channels`` with valid channels (an empty list does nothing)."""
        self._add(channels, "channel")

    @rule(invalid=ist.invalid_channel_lists())
    def add_invalid_channels(self, invalid: tuple[list[Any], str]) -> None:
        """``add_channels`` with a list Behaviour: records rejects: nothing is staged."""
        self._add(invalid[0], "channel")

    @rule(data=st.data())
    def add_messages(self, data: st.DataObject) -> None:
        """``add_messages`` with valid messages, often in the channels staged."""
        rooms = sorted(self._staged_ids("channel")) or ["nowhere"]
        messages = data.draw(st.lists(
            ist.messages(rooms=st.sampled_from(rooms) | st.just("elsewhere")), max_size=6,
        ), label="messages")
        self._add(messages, "message")

    @rule(invalid=ist.invalid_message_lists())
    def add_invalid_messages(self, invalid: tuple[list[Any], str]) -> None:
        """``add_messages`` with a list Behaviour: records rejects: nothing is staged."""
        self._add(invalid[0], "message")

    def _staged_ids(self, data_type: str) -> set[str]:
        current = self.model.current
        return {
            import_id for record in (current.staged if current else [])
            if record.data_type == data_type for import_id in record.data["importIds"]
        }

    def _add(self, records: list[Any], data_type: str = "user") -> None:
        add = getattr(self.service, _ADD[data_type])
        if not records:
            assert add(records) is None
            return
        refusal = self.model.add_users_refusal(records, self.service.known_roles, data_type)
        if refusal is not None:
            self._refused(refusal, lambda: add(records))
            return
        updated = add(records)
        expected = self.model.add_users(records, self.service.default_roles, self.now, data_type)
        self._same(updated, expected.to_wire())

    @rule(file=st.sampled_from(["users.csv", "export.zip"]),
          content_type=st.sampled_from(["text/csv", "application/zip"]))
    def begin_loading(self, file: str, content_type: str) -> None:
        """A file importer starts: ``new`` → ``importer_uploading``, recording the file."""
        if not self._loading_refused("begin_loading"):
            got = self.service.begin_loading(file=file, content_type=content_type)
            self._same(got, self.model.move(
                ProgressStep.UPLOADING, self.now, file=file, content_type=content_type,
            ).to_wire())

    @rule(step=ist.progress_steps())
    def advance(self, step: ProgressStep) -> None:
        """Move to any step: only a forward move within ``loading`` is allowed."""
        if not self._loading_refused("advance", step):
            self._same(self.service.advance(step), self.model.move(step, self.now).to_wire())

    @precondition(lambda self: self.model.current is not None
                  and self.model.current.status in LOADING_STEPS[:-1])
    @rule(data=st.data())
    def advance_while_loading(self, data: st.DataObject) -> None:
        """Move forward within ``loading``, as a file importer does."""
        current = self.model.current
        assert current is not None
        later = LOADING_STEPS[LOADING_STEPS.index(current.status) + 1:]
        self.advance(data.draw(st.sampled_from(later), label="step"))

    @rule(staged=st.one_of(
        st.tuples(st.lists(ist.users(), max_size=5) | ist.invalid_user_lists().map(_records),
                  st.just("user")),
        st.tuples(st.lists(ist.channels(), max_size=3)
                  | ist.invalid_channel_lists().map(_records), st.just("channel")),
        st.tuples(st.lists(ist.messages(), max_size=3)
                  | ist.invalid_message_lists().map(_records), st.just("message")),
    ))
    def stage(self, staged: tuple[list[Any], str]) -> None:
        """Stage records while loading, with the checks of ``add_users`` (and its kin)."""
        records, data_type = staged
        if not records:
            assert self.service.stage(records, data_type) is None
            return
        invalid = rejection(records, self.service.known_roles, data_type)
        refusal = self.model.loading_refusal("stage")
        if invalid is not None or refusal is not None:
            # The spec does not order the two checks: either refusal will do.
            with pytest.raises(ImportStateError) as refused:
                self.service.stage(records, data_type)
            assert str(refused.value) == invalid or self._is_refusal(refused.value, "stage")
            return
        got = self.service.stage(records, data_type)
        expected = self.model.stage(records, self.service.default_roles, self.now, data_type)
        self._same(got, expected.to_wire())

    @rule()
    def finish_loading(self) -> None:
        """``loading`` → ``importer_user_selection`` (``ready``)."""
        if not self._loading_refused("finish_loading"):
            got = self.service.finish_loading()
            self._same(got, self.model.move(ProgressStep.USER_SELECTION, self.now).to_wire())

    def _loading_refused(self, event: str, step: ProgressStep | None = None) -> bool:
        """Check the refusal the model predicts for ``event``, if any; say whether there was one."""
        if self.model.loading_refusal(event, step) is None:
            return False
        call = getattr(self.service, event)
        with pytest.raises(ImportStateError) as refused:
            call(step) if step is not None else call()
        assert self._is_refusal(refused.value, event), f"{event} refused with {refused.value!r}"
        return True

    def _is_refusal(self, error: ImportStateError, event: str) -> bool:
        """Whether ``error`` is the refusal the model predicts for ``event``."""
        if self.model.loading_refusal(event) == "not found":
            return isinstance(error, OperationNotFound)
        current = self.model.current
        return (isinstance(error, InvalidTransition) and error.event == event
                and current is not None and error.state == current.state)

    @rule(data=st.data())
    def run(self, data: st.DataObject) -> None:
        """``import.run`` with a random subset of records failing."""
        self._run(lambda size: data.draw(
            st.frozensets(st.integers(0, size - 1)) if size else st.just(frozenset()),
            label="fail",
        ))

    @rule()
    def run_without_injected_failures(self) -> None:
        """``import.run`` where only the importer under test may fail records."""
        self._run(lambda _size: frozenset())

    @rule(data=st.data())
    def run_with_a_selection(self, data: st.DataObject) -> None:
        """``startImport``: a run of the users and channels a selection keeps."""
        selection = data.draw(ist.selections(
            sorted(self._staged_ids("user")), sorted(self._staged_ids("channel")),
        ), label="selection")
        self._run(lambda size: data.draw(
            st.frozensets(st.integers(0, size - 1)) if size else st.just(frozenset()),
            label="fail",
        ), selection)

    def _run(
        self, inject_among: Callable[[int], frozenset[int]],
        selection: dict[str, Any] | None = None,
    ) -> None:
        refusal = self.model.run_refusal(self.service.importers, self.importer.inner)
        if refusal is not None:
            self._refused(refusal, lambda: self.service.run(selection=selection))
            return
        order = self.model.run_order(selection)
        inject = inject_among(len(order))
        self.importer.start(inject)
        finished = self.service.run(selection=selection)
        assert self.importer.seen == [record.data for record in order], (
            "the importer was not handed the records the selection keeps: users, channels,"
            " then messages, each in staging order"
        )
        # The service may mask or shorten an importer's own message: any will do.
        failures: dict[int, str | None] = {
            i: self.importer.injected_message(i) if i in inject else None
            for i in sorted(inject | self.importer.own_failures.keys())
        }
        note(f"failures: {failures}")
        self._same(finished, self.model.run(failures, self.now, selection).to_wire())

    @rule()
    def cancel(self) -> None:
        """``import.cancel``: the current operation becomes ``canceled`` at once."""
        refusal = self.model.cancel_refusal()
        if refusal is not None:
            self._refused(refusal, self.service.cancel)
            return
        cancelled = self.service.cancel()
        self._same(cancelled, self.model.cancel(self.now).to_wire())

    @rule(kind=st.sampled_from(list(PendingKind)), user_id=_USER_IDS,
          outcomes=st.lists(st.booleans(), max_size=4))
    def begin_pending(self, kind: PendingKind, user_id: str, outcomes: list[bool]) -> None:
        """``downloadPendingFiles`` / ``Avatars``: a new operation counting what is pending.

        ``outcomes`` says, per pending download, whether it will be fetched.
        """
        self.pending = _PendingList(kind, outcomes)
        begun = self.service.begin_pending(kind, self.pending, user_id=user_id)
        self.begun = begun
        expected = self.model.begin_pending(begun.id, user_id, kind.importer_key,
                                            len(outcomes), self.now)
        self._same(begun, expected.to_wire())

    @precondition(lambda self: self.begun is not None)
    @rule()
    def fetch_pending(self) -> None:
        """The background part: each download fetched or failed, counted, then done."""
        assert self.begun is not None
        ended = self.service.fetch_pending(
            self.begun, self.pending, self.pending.fetch, self.files_dir(),
        )
        fetched = [ok for _, ok in self.pending.tried]
        self._same(ended, self.model.fetch_pending(self.begun.id, fetched, self.now).to_wire())
        self.begun = None

    def files_dir(self) -> str:
        """A directory for fetched files, made once per example."""
        if self._files_dir is None:
            self._files_dir = tempfile.TemporaryDirectory(prefix="importstate-machine-")
        return self._files_dir.name

    @rule()
    def clear(self) -> None:
        """``import.clear``: every valid operation becomes invalid; staging is emptied."""
        self.service.clear()
        self.model.clear(self.now)

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def status_matches_the_model(self) -> None:
        """``import.status`` reports what the spec predicts."""
        assert self.service.status() == self.model.status()

    @invariant()
    def current_operation_matches_the_model(self) -> None:
        """``getCurrentImportOperation``: the newest by ``ts``; ties go to the later created."""
        current = self.model.current
        got = self.service.current_operation()
        assert (got.to_wire() if got else None) == (current.to_wire() if current else None)

    @invariant()
    def progress_matches_the_model(self) -> None:
        """``getImportProgress`` answers for the current operation, valid or not."""
        current = self.model.current
        if current is None:
            self._refused("error-operation-not-found", self.service.progress)
            return
        if not self.model.knows_importer(self.service.importers):
            self._refused("error-importer-not-defined", self.service.progress)
            return
        count = {name: current.count.get(name, 0) for name in ("completed", "total", "error")}
        assert self.service.progress() == {
            "key": current.importer_key,
            "name": self.service.names.get(current.importer_key, current.importer_key),
            "step": current.status.value,
            "count": count,
        }

    @invariant()
    def selection_matches_the_model(self) -> None:
        """``getImportFileData``: built from staging; ``SelectionNotReady`` while preparing."""
        refusal = self.model.selection_refusal(self.service.importers)
        if refusal is not None:
            self._refused(refusal, self.service.selection)
            return
        offer = self.service.selection()
        assert offer.to_wire() == self.model.selection(self.service.names), (
            "the selection differs from the spec"
        )

    @invariant()
    def latest_operations_match_the_model(self) -> None:
        """Newest ``_updatedAt`` first, ties by ``ts`` then creation; 20 by default."""
        everything = len(self.model.operations) + 1
        for got, want in (
            (self.service.latest_operations(), self.model.latest(20)),
            (self.service.latest_operations(everything), self.model.latest(everything)),
        ):
            assert [op.to_wire() for op in got] == [op.to_wire() for op in want], (
                "latest_operations order or content differs from the spec"
            )

    @invariant()
    def history_replays_to_every_stored_status(self) -> None:
        """Each operation's history, replayed through the machine, rebuilds its status.

        The first entry is the creation, each one starts where the one before
        ended, its event takes that step there, and the last ends at the
        stored status and validity: no change was stored without its entry.
        (Skipped for a store that keeps no history.)
        """
        for operation in self.service.latest_operations(len(self.model.operations) + 1):
            try:
                entries = self.service.history(operation.id)
            except HistoryUnsupported:
                return
            assert entries, f"operation {operation.id} has no history"
            assert entries[0].event == Event.CREATE, "its history does not begin with a creation"
            status, valid = None, True
            for entry in entries:
                assert entry.operation_id == operation.id
                assert entry.before is status, f"{entry} does not start where the last ended"
                step = entry.after if entry.event == Event.ADVANCE else None
                status, valid = machine.fire(Event(entry.event), status, valid=valid, step=step)
                assert status is entry.after, f"{entry.event} from {entry.before} is not {entry}"
            assert (status, valid) == (operation.status, operation.valid), (
                f"the history of {operation.id} ends at {status} (valid {valid}), "
                f"the store has {operation.status} (valid {operation.valid})"
            )
            assert all(a.at <= b.at for a, b in itertools.pairwise(entries))
            assert entries[-1].at <= operation.updated_at

    @invariant()
    def at_most_one_valid_operation(self) -> None:
        """Only the newest operation can be valid."""
        everything = self.service.latest_operations(len(self.model.operations) + 1)
        valid = [op.id for op in everything if op.valid]
        assert len(valid) <= 1, f"several valid operations: {valid}"

    @invariant()
    def counts_never_exceed_total(self) -> None:
        """``completed + error <= total``."""
        current = self.service.current_operation()
        if current is not None:
            count = current.count
            assert count.get("completed") + count.get("error") <= count.get("total")

    @invariant()
    def staging_matches_the_model(self) -> None:
        """The current operation's staged records, in order, each with its type and errors."""
        current = self.model.current
        want = [] if current is None else [
            ({"dataType": r.data_type, **r.data}, r.errors) for r in current.staged
        ]
        got = [
            ({"dataType": record["dataType"], **record["data"]},
             [error["message"] for error in record.get("errors", [])])
            for record in self.service.staged_records()
        ]
        assert _blank_unpredicted(got, want) == want, (
            f"staged records differ from the spec:\n  got {got}\n want {want}"
        )

    @precondition(lambda self: self.model.current is not None
                  and self.model.current.status.value == "importer_done"
                  and self.model.current.valid
                  and self.model.current.importer_key not in PENDING_IMPORTERS)
    @invariant()
    def done_keeps_exactly_the_failed_users(self) -> None:
        """After a run's done: every record counted, and staging holds exactly the failed ones."""
        current = self.service.current_operation()
        assert current is not None
        count = current.count
        assert count.get("completed") + count.get("error") == count.get("total")
        staged = list(self.service.staged_records())
        assert len(staged) == count.get("error"), (
            "staging after done does not hold exactly the failed users"
        )
        assert all(record.get("errors") for record in staged), (
            "staging after done does not hold exactly the failed users"
        )
