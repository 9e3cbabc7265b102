"""Checks of option values, as Click callbacks: a value out of range is a user error.

A value Click cannot read (``--limit abc``) is a usage error (exit 2, with
the usage); one it reads but the command cannot use (``--port 99999``) is
one line, ``--port must be between 1 and 65535, got 99999``, and exit 1,
as every other user error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import click

from importstate.cli._context import CommandError

Check = Callable[[click.Context, click.Parameter, Any], Any]


def _number(value: float) -> str:
    # Echoed as typed: a port or a count of seconds is not a quantity to group by thousands.
    return str(value) if isinstance(value, int) else f"{value:g}"


def check(test: Callable[[Any], bool], rule: str) -> Check:
    """A callback refusing a value that fails ``test`` with ``--opt <rule>, got <value>``."""

    def checked(_: click.Context, param: click.Parameter, value: Any) -> Any:  # noqa: ANN401
        if value is not None and not test(value):
            msg = f"{param.opts[0]} {rule}, got {_number(value)}"
            raise CommandError(msg)
        return value

    return checked


def at_least(minimum: int) -> Check:
    """Refuse a number under ``minimum``."""
    return check(lambda value: value >= minimum, f"must be at least {minimum}")


def between(low: int, high: int) -> Check:
    """Refuse a number outside ``low``..``high``."""
    return check(lambda value: low <= value <= high, f"must be between {low} and {high}")


POSITIVE: Final = check(lambda value: value > 0, "must be positive")
NOT_NEGATIVE: Final = check(lambda value: value >= 0, "must not be negative")


class Duration(click.ParamType[float]):
    """Seconds, as a number (``45``, ``1.5``) or with a unit: ``90d``, ``12h``, ``30m``, ``45s``."""

    name = "duration"
    _UNITS: Final = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None,  # noqa: ANN401
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        text = str(value).strip().lower()
        scale = self._UNITS.get(text[-1:], None)
        number = text[:-1] if scale is not None else text
        try:
            seconds = float(number) * (scale or 1.0)
        except ValueError:
            self.fail(f"{value!r} is not a duration (seconds, or 90d, 12h, 30m, 45s)", param, ctx)
        if not seconds >= 0:  # also NaN
            self.fail(f"{value!r} is not a duration (seconds, or 90d, 12h, 30m, 45s)", param, ctx)
        return seconds


#: Seconds, or a number with a unit.
DURATION: Final = Duration()
