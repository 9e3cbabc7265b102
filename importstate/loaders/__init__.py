"""File importers (Behaviour: files): a file in, its users, channels and messages staged.

A :class:`Loader` reads one file and stages what it holds into a
:class:`Sink`; :meth:`ImportService.load_file <importstate.ImportService.load_file>`
runs one on the loading path, in one transaction. The built-in loaders are
registered under their importer keys: ``csv`` (:class:`CsvLoader`),
``slack`` (:class:`SlackLoader`) and ``slack-users``
(:class:`SlackUsersLoader`). Another package adds a format without touching
importstate by declaring an entry point in the group :data:`ENTRY_POINT_GROUP`,
named by its key, that resolves to a loader (or a class whose instances are)::

    [project.entry-points."importstate.loaders"]
    teams = "acme_import.teams:TeamsLoader"
"""

from __future__ import annotations

import functools
import importlib.metadata
import warnings
from collections.abc import Mapping
from typing import Final

from importstate.errors import ImporterNotDefined
from importstate.loaders._csv import CsvLoader
from importstate.loaders._protocol import (
    MAX_LINE,
    MAX_RATIO,
    MAX_UNPACKED_SIZE,
    FileLimits,
    Loader,
    Placed,
    Sink,
)
from importstate.loaders._slack import SlackLoader
from importstate.loaders._slack_users import SlackUsersLoader

__all__ = [
    "BUILTIN_LOADERS",
    "ENTRY_POINT_GROUP",
    "MAX_LINE",
    "MAX_RATIO",
    "MAX_UNPACKED_SIZE",
    "CsvLoader",
    "FileLimits",
    "Loader",
    "Placed",
    "Sink",
    "SlackLoader",
    "SlackUsersLoader",
    "available",
    "loader_for",
]

#: The entry point group third-party loaders are declared in, each named by its importer key.
ENTRY_POINT_GROUP: Final = "importstate.loaders"

#: The loaders importstate ships, by importer key.
BUILTIN_LOADERS: Final[Mapping[str, Loader]] = {
    loader.key: loader for loader in (CsvLoader(), SlackLoader(), SlackUsersLoader())
}


@functools.cache
def available() -> Mapping[str, Loader]:
    """Every loader by key: the built-in ones and those of :data:`ENTRY_POINT_GROUP`.

    Entry points are read once per process. One that cannot be loaded, or
    does not give a :class:`Loader`, is left out with a warning; one named as
    a built-in key does not replace the built-in loader.
    """
    found: dict[str, Loader] = {}
    for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if point.name in BUILTIN_LOADERS:
            continue
        try:
            loaded = point.load()
            loader = loaded() if isinstance(loaded, type) else loaded
        except Exception as exc:  # noqa: BLE001 - a broken plug-in must not break importstate
            warnings.warn(f"loader {point.name!r} ({point.value}) cannot be loaded: {exc}",
                          stacklevel=2)
            continue
        if not isinstance(loader, Loader):
            warnings.warn(f"loader {point.name!r} ({point.value}) is not a Loader", stacklevel=2)
            continue
        found[point.name] = loader
    return {**found, **BUILTIN_LOADERS}


def loader_for(key: str, extra: Mapping[str, Loader] | None = None) -> Loader:
    """The loader registered under ``key`` (in ``extra``, then :func:`available`).

    Raises:
        ImporterNotDefined: none is.
    """
    loader = (extra or {}).get(key) or available().get(key)
    if loader is None:
        raise ImporterNotDefined(key)
    return loader
