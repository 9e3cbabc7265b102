"""status() and progress(): plain dicts at run time, TypedDicts to a type checker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from importstate import ImportService, MemoryStore
from importstate.documents import (
    CountDocument,
    OperationDocument,
    ProgressCount,
    ProgressDocument,
    StatusDocument,
)
from importstate.model import COUNT_FIELDS, WIRE_FIELDS

TYPED = Path(__file__).parent / "downstream" / "typed"


def test_the_operation_documents_keys_are_the_wire_fields():
    assert list(OperationDocument.__annotations__) == [f.wire for f in WIRE_FIELDS]
    assert OperationDocument.__required_keys__ == {f.wire for f in WIRE_FIELDS if f.required}
    assert list(CountDocument.__annotations__) == list(COUNT_FIELDS)
    assert not CountDocument.__required_keys__


def test_status_and_progress_are_the_plain_documents_their_types_name():
    service = ImportService(MemoryStore(), {"api": lambda _user: None})
    assert service.status() == {"state": "none"}
    service.new_operation("admin")
    service.add_users([{"emails": ["a@example.com"], "importIds": ["1"]}])
    status, progress = service.status(), service.progress()
    assert type(status) is dict
    assert set(status) == StatusDocument.__required_keys__ | StatusDocument.__optional_keys__
    assert set(status["operation"]) <= set(OperationDocument.__annotations__)
    assert set(progress) == ProgressDocument.__required_keys__
    assert set(progress["count"]) == ProgressCount.__required_keys__
    assert progress["count"] == {"completed": 0, "total": 1, "error": 0}


def mypy(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", *map(str, files)],
        capture_output=True, text=True, check=False, cwd=Path(__file__).parent.parent,
    )


def test_mypy_strict_passes_keys_read_right_and_refuses_each_misspelt_one():
    good, bad = TYPED / "good_use.py", TYPED / "misuse.py"
    assert mypy(good).returncode == 0, mypy(good).stdout
    refused = mypy(bad)
    assert refused.returncode == 1
    errors = [line for line in refused.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 3, refused.stdout
    for key in ('"stat"', '"complete"', '"updatedAt"'):
        assert any(key in line and "typeddict" in line for line in errors), (key, errors)
