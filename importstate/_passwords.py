"""Passwords kept as salted scrypt hashes: API users' and the built-in target's imported users'."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Final

# scrypt at n=2**14, r=8 costs 16 MiB and tens of milliseconds per check:
# slow for a guesser, still quick for one login.
_SCRYPT_N: Final = 2**14
_SCRYPT_R: Final = 8
_SCRYPT_P: Final = 1
_SCRYPT_LEN: Final = 32


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``password`` as ``scrypt$n$r$p$salt$digest`` with a fresh random salt (unless given)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = _scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    """Whether ``password`` is the one ``stored`` (a :func:`hash_password` result) was made of."""
    _, n, r, p, salt, digest = stored.split("$")
    computed = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    return hmac.compare_digest(computed, base64.b64decode(digest))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"), salt=salt, n=n, r=r, p=p,
        dklen=_SCRYPT_LEN, maxmem=256 * 1024 * 1024,
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
