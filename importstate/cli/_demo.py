"""Synthetic users for ``importstate demo``: most import cleanly, a chosen share collide."""

from __future__ import annotations

import random
from typing import Any


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
