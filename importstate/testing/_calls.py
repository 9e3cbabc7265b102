"""A service call as a value: what :func:`~importstate.testing.strategies.events` generates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from importstate.errors import ImportStateError
from importstate.service import ImportService


@attrs.frozen
class ServiceCall:
    """One call of an :class:`~importstate.ImportService` method, replayable on any service.

    Attributes:
        method: the method's name (``"add_users"``).
        kwargs: its keyword arguments.
    """

    method: str
    kwargs: Mapping[str, Any] = attrs.field(factory=dict)

    def apply(self, service: ImportService) -> object:
        """Call the method on ``service``; return its result, or the error it refused with.

        Only :class:`~importstate.ImportStateError` is returned; any other
        exception is a bug and propagates.
        """
        try:
            return getattr(service, self.method)(**self.kwargs)
        except ImportStateError as exc:
            return exc

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"service.{self.method}({args})"
