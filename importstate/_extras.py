"""The optional extras: a module that needs one says which, in one line, when it is missing."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from importstate.errors import MissingExtra


@contextlib.contextmanager
def needs(extra: str, needed_by: str) -> Iterator[None]:
    """The block imports ``extra``'s packages; one missing raises :class:`MissingExtra`.

    The :class:`ImportError` that named the missing package is its ``__cause__``.
    """
    try:
        yield
    except MissingExtra:
        raise
    except ImportError as exc:
        raise MissingExtra(needed_by, extra) from exc
