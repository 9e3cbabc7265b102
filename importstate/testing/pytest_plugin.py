"""The pytest plugin (entry point ``pytest11``): fixtures for tests of importer services.

Fixtures:

- ``import_service``: a fresh :class:`~importstate.ImportService` on each
  built-in store (the test runs once on ``MemoryStore``, once on
  ``SQLiteStore`` in a temporary file), with ``recording_importer``
  registered under ``"api"``.
- ``recording_importer``: a :class:`~importstate.testing.RecordingImporter`.
- ``failing_importer``: a :class:`~importstate.testing.FailingImporter`
  that fails every user.

pytest loads this module in every run where importstate is installed, so it
imports neither Hypothesis nor the rest of the kit until a fixture is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

__all__ = [
    "failing_importer",
    "import_service",
    "recording_importer",
]

if TYPE_CHECKING:
    from importstate.service import ImportService
    from importstate.testing._importers import FailingImporter, RecordingImporter


@pytest.fixture
def recording_importer() -> RecordingImporter:
    """An importer that imports nothing and records every user it is handed."""
    from importstate.testing._importers import RecordingImporter  # noqa: PLC0415 - loads cheaply

    return RecordingImporter()


@pytest.fixture
def failing_importer() -> FailingImporter:
    """An importer that records every user and fails each with ``ImportFailed``."""
    from importstate.testing._importers import FailingImporter  # noqa: PLC0415 - loads cheaply

    return FailingImporter()


@pytest.fixture(params=["memory", "sqlite"])
def import_service(
    request: pytest.FixtureRequest, tmp_path: Path, recording_importer: RecordingImporter,
) -> Iterator[ImportService]:
    """A fresh service on each built-in store, ``recording_importer`` registered as ``"api"``."""
    from importstate import ImportService, MemoryStore, SQLiteStore  # noqa: PLC0415 - same

    store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "import.db")
    yield ImportService(store, {"api": recording_importer})
    store.close()
