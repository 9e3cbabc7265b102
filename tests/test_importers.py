"""What an importer is (`importstate.importers`): its calls per record type, and wrappers."""

from importstate.importers import BatchImporter, batch_calls, from_calls


def test_a_plain_callable_imports_users_one_at_a_time():
    seen = []

    def import_user(user):
        seen.append(user)
        if user.get("bad"):
            raise ValueError("bad")

    calls = batch_calls(import_user)
    assert set(calls) == {"user"}
    [ok, failed] = calls["user"]([{"a": 1}, {"bad": True}])
    assert ok is None
    assert isinstance(failed, ValueError)
    assert seen == [{"a": 1}, {"bad": True}]


def test_an_object_imports_the_types_it_has_methods_for():
    class Rooms:
        def import_channels(self, channels):
            return [None] * len(channels)

        def import_messages(self, messages):
            return [None] * len(messages)

    assert set(batch_calls(Rooms())) == {"channel", "message"}

    class Everything(Rooms):
        def __call__(self, _user):
            raise AssertionError("import_batch comes first")

        def import_batch(self, users):
            return [None] * len(users)

    calls = batch_calls(Everything())
    assert set(calls) == {"user", "channel", "message"}
    assert calls["user"]([{}]) == [None]


def test_a_wrapper_built_from_calls_imports_exactly_those_types():
    handed = []

    def wrapped(data_type):
        def call(records):
            handed.append((data_type, len(records)))
            return [None] * len(records)
        return call

    importer = from_calls({"user": wrapped("user"), "message": wrapped("message")})
    assert isinstance(importer, BatchImporter)
    assert set(batch_calls(importer)) == {"user", "message"}
    importer.import_batch([{}, {}])
    importer.import_messages([{}])
    assert handed == [("user", 2), ("message", 1)]
    assert not hasattr(importer, "import_channels")
