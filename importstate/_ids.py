"""Fresh ids, shaped like MongoDB ObjectIds as Rocket.Chat's documents have them."""

from __future__ import annotations

import os
import secrets
import time


def new_id() -> str:
    """A fresh 24-hex-digit id like a MongoDB ObjectId: seconds since the epoch, then random."""
    return f"{int(time.time()) & 0xFFFFFFFF:08x}{secrets.token_hex(8)}"


def new_ids(count: int) -> list[str]:
    """``count`` fresh random 24-hex-digit ids at once (for staged records)."""
    digits = os.urandom(12 * count).hex()
    return [digits[i:i + 24] for i in range(0, 24 * count, 24)]
