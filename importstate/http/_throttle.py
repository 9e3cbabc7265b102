"""Failed logins, counted per name and per client address over a sliding window.

Every login costs a scrypt hash (tens of milliseconds and 16 MiB), and a
name's password may be guessed: past the limits, ``login`` answers 429 with
``Retry-After`` before it hashes anything. A login that succeeds clears its
name's count (as Rocket.Chat's login blocking does).
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable
from typing import Final

from importstate.errors import TooManyLogins

#: Names and addresses remembered at most; the longest-quiet are forgotten first.
_REMEMBERED: Final = 100_000
#: An address may fail this many times as often as a name (several users behind one NAT).
ADDRESS_FACTOR: Final = 10


class LoginThrottle:
    """Counts failed logins; refuses a name or address that failed too often within ``window``.

    Called from the event loop only, so it needs no lock.
    """

    def __init__(
        self, failures: int, window: float, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self._limits = {"name": failures, "address": failures * ADDRESS_FACTOR}
        self._clock = clock
        self._seen: dict[tuple[str, str], collections.deque[float]] = {}

    def check(self, name: str, address: str) -> None:
        """Raise if ``name`` or ``address`` may not try now.

        Raises:
            TooManyLogins: with the seconds until the oldest failure leaves the window.
        """
        now = self._clock()
        wait = max(self._wait(("name", name), now), self._wait(("address", address), now))
        if wait > 0:
            raise TooManyLogins(max(1, math.ceil(wait)))

    def failed(self, name: str, address: str) -> None:
        """Count one failed login of ``name`` from ``address``."""
        now = self._clock()
        for key in (("name", name), ("address", address)):
            times = self._seen.pop(key, None) or collections.deque()
            times.append(now)
            self._seen[key] = times  # last: the dict's order is the order of last failure
        while len(self._seen) > _REMEMBERED:
            del self._seen[next(iter(self._seen))]

    def succeeded(self, name: str) -> None:
        """Forget ``name``'s failures."""
        self._seen.pop(("name", name), None)

    def _wait(self, key: tuple[str, str], now: float) -> float:
        times = self._seen.get(key)
        if times is None:
            return 0.0
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) < self._limits[key[0]]:
            return 0.0
        return times[-self._limits[key[0]]] + self.window - now
