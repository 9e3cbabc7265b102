"""Synthetic records for ``importstate demo``: users (a chosen share collide), channels, messages.

Each message is by one of the users, so the messages of a user who failed
fail too (the built-in importer finds no author): the phases depend on one
another as a real import's do.
"""

from __future__ import annotations

import random
from typing import Any

import attrs


@attrs.frozen
class DemoRecords:
    """What the demo stages: users, channels and messages."""

    users: list[dict[str, Any]]
    channels: list[dict[str, Any]]
    messages: list[dict[str, Any]]

    def __len__(self) -> int:
        return len(self.users) + len(self.channels) + len(self.messages)


def synthetic(users: int, fail_rate: float, *, channels: int, messages: int) -> DemoRecords:
    """The demo's records, as :func:`synthetic_users` and its kin make them.

    Raises:
        ValueError: as they do.
    """
    return DemoRecords(
        synthetic_users(users, fail_rate),
        synthetic_channels(channels),
        synthetic_messages(messages, users, channels),
    )


def synthetic_users(count: int, fail_rate: float, *, seed: int = 2023) -> list[dict[str, Any]]:
    """``count`` users of which ``round(count * fail_rate)`` will be rejected as duplicates.

    A rejected user reuses the username or first email (in another letter
    case) of an earlier user that imports cleanly, under its own import id,
    so the built-in importer fails exactly those. The same arguments give the
    same users.

    Raises:
        ValueError: ``fail_rate`` is outside ``[0, 1]`` or ``count`` is negative.
    """
    if not 0 <= fail_rate <= 1:
        msg = f"fail rate must be between 0 and 1, got {fail_rate}"
        raise ValueError(msg)
    if count < 0:
        msg = f"user count must not be negative, got {count}"
        raise ValueError(msg)
    # The first user always imports, so every rejected one has someone to collide with.
    rejected = min(round(count * fail_rate), max(count - 1, 0))
    rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not a secret
    rejects = set(rng.sample(range(1, count), rejected))
    users: list[dict[str, Any]] = []
    last_clean = 0
    for n in range(count):
        user = _user(n)
        if n in rejects:
            target = users[last_clean]
            if n % 2:
                user["username"] = target["username"].upper()
            else:
                user["emails"] = [target["emails"][0].upper()]
        else:
            last_clean = n
        users.append(user)
    return users


def _user(n: int) -> dict[str, Any]:
    return {
        "username": f"user{n:05d}",
        "name": f"Demo User {n}",
        "emails": [f"user{n:05d}@example.com"],
        "importIds": [f"demo-{n:05d}"],
    }


def synthetic_channels(count: int) -> list[dict[str, Any]]:
    """``count`` channels: every fifth private, every tenth a direct one between two users.

    Raises:
        ValueError: ``count`` is negative.
    """
    if count < 0:
        msg = f"channel count must not be negative, got {count}"
        raise ValueError(msg)
    return [_channel(n) for n in range(count)]


def _channel(n: int) -> dict[str, Any]:
    kind = "d" if n % 10 == 9 else "p" if n % 5 == 4 else "c"  # noqa: PLR2004 - the mix shown
    return {"importIds": [f"demo-c{n:04d}"], "name": f"channel-{n:04d}", "t": kind}


def synthetic_messages(
    count: int, users: int, channels: int, *, seed: int = 2023,
) -> list[dict[str, Any]]:
    """``count`` messages, each by one of the first ``users`` users in one of ``channels``.

    The same arguments give the same messages.

    Raises:
        ValueError: ``count`` is negative, or positive with no user or no channel to use.
    """
    if count < 0:
        msg = f"message count must not be negative, got {count}"
        raise ValueError(msg)
    if count and not (users and channels):
        msg = "messages need at least one user and one channel"
        raise ValueError(msg)
    rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not a secret
    start = 1_700_000_000_000  # epoch milliseconds, a second apart
    return [
        {
            "importIds": [f"demo-m{n:06d}"],
            "rid": f"demo-c{rng.randrange(channels):04d}",
            "u": {"_id": f"demo-{rng.randrange(users):05d}"},
            "msg": f"message {n} of the demo",
            "ts": start + 1000 * n,
        }
        for n in range(count)
    ]
