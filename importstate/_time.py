"""Times as the wire format keeps them: UTC, to the millisecond (Behaviour: document)."""

from __future__ import annotations

import datetime as dt
from typing import Final

from importstate.errors import WireFormatError

_UTC: Final = dt.UTC
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=_UTC)
_MILLISECOND: Final = dt.timedelta(milliseconds=1)


def utc_now() -> dt.datetime:
    """The current UTC time, cut to the milliseconds the wire format keeps."""
    return to_millis_precision(dt.datetime.now(_UTC))


def to_millis_precision(moment: dt.datetime) -> dt.datetime:
    """``moment`` in UTC with microseconds cut to whole milliseconds."""
    if moment.tzinfo is not _UTC:
        moment = moment.astimezone(_UTC)
    extra = moment.microsecond % 1000
    return moment.replace(microsecond=moment.microsecond - extra) if extra else moment


def epoch_millis(moment: dt.datetime) -> int:
    """``moment`` as integer milliseconds since the Unix epoch."""
    return (moment - _EPOCH) // _MILLISECOND


def from_epoch_millis(millis: int) -> dt.datetime:
    """The UTC time ``millis`` milliseconds after the Unix epoch."""
    return _EPOCH + dt.timedelta(milliseconds=millis)


def format_time(moment: dt.datetime) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``: ``2023-08-11T20:08:37.655Z``."""
    if moment.tzinfo is not _UTC:
        moment = moment.astimezone(_UTC)
    # isoformat pads the year to four digits (strftime's %Y does not on every platform);
    # in UTC it ends in "+00:00", which the wire format writes "Z".
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_time(value: object, field: str) -> dt.datetime:
    """Read a wire time: ISO-8601, epoch milliseconds, or those digits as a string.

    Raises:
        WireFormatError: naming ``field`` when ``value`` is none of those.
    """
    if isinstance(value, bool):
        raise WireFormatError(field, "expected a time, got a boolean")
    if not isinstance(value, int | str):
        raise WireFormatError(field, f"expected a time, got {type(value).__name__}")
    try:
        # isascii: str.isdigit is also true of digits int() refuses, such as "²".
        if isinstance(value, int) or (value.isascii() and value.isdigit()):
            return from_epoch_millis(int(value))
        moment = dt.datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=_UTC)
        return to_millis_precision(moment)
    except ValueError:
        raise WireFormatError(field, f"not an ISO-8601 time: {value!r}") from None
    except OverflowError:
        raise WireFormatError(field, f"time out of range: {value!r}") from None
