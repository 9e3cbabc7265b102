"""A loader plug-in installed the way pip would leave it: a distribution in a folder on sys.path."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from importstate.loaders import ENTRY_POINT_GROUP, available


@contextlib.contextmanager
def installed_plugin(folder: Path, monkeypatch: pytest.MonkeyPatch, *, distribution: str,
                     key: str, target: str) -> Iterator[None]:
    """Declare ``key = target`` in the loaders' entry-point group while the block runs.

    The registry reads entry points once per process, so it is forgotten on the way in and
    out, and the plug-in's module is unloaded after when it is a file of ``folder``.
    """
    info = folder / f"{distribution.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{key} = {target}\n")
    monkeypatch.syspath_prepend(str(folder))
    available.cache_clear()
    try:
        yield
    finally:
        available.cache_clear()
        module = sys.modules.get(target.split(":", maxsplit=1)[0])
        if module is not None and Path(module.__file__ or "").parent == folder:
            del sys.modules[module.__name__]
