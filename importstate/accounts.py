"""API users of ``importstate serve``: names, permissions, passwords and auth tokens.

API users live in the ``api_users`` and ``api_tokens`` tables of the same
SQLite file as the operations (never in the imported ``users`` table).
Passwords are kept as salted scrypt hashes; auth tokens only as SHA-256
hashes, looked up by that hash (an index: checking a token costs the same
however many a user has). Tokens expire ``token_ttl`` after they were made,
and a user keeps at most ``tokens_per_user`` of them (a login beyond drops
the oldest). A user's id is generated (it is what clients send as
``X-User-Id``), its name is what ``login`` takes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import functools
import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
import unicodedata
from collections.abc import Iterable, Iterator
from typing import Final

import attrs

from importstate._files import create_private
from importstate._passwords import check_password, hash_password
from importstate._time import epoch_millis, from_epoch_millis, utc_now
from importstate.errors import (
    ApiUserExists,
    EmptyPassword,
    InvalidApiUserName,
    UnknownApiUser,
    UnknownPermission,
)

__all__ = [
    "PERMISSIONS",
    "TOKENS_PER_USER",
    "TOKEN_TTL",
    "Accounts",
    "ApiUser",
    "Credentials",
    "Permission",
]


class Permission(enum.StrEnum):
    """What an API user may do: Rocket.Chat's permission names."""

    #: Every endpoint of the import API but ``getLatestImportOperations``.
    RUN_IMPORT = "run-import"
    #: ``getLatestImportOperations``.
    VIEW_IMPORT_OPERATIONS = "view-import-operations"


#: Every permission an API user may hold.
PERMISSIONS: Final = tuple(Permission)
#: Seconds an auth token lives unless told otherwise: Rocket.Chat's default login expiry.
TOKEN_TTL: Final = 90 * 24 * 60 * 60.0
#: Live tokens a user keeps unless told otherwise; a login beyond drops the oldest.
TOKENS_PER_USER: Final = 50

# Rocket.Chat's user ids: 17 characters from an alphabet without look-alikes.
_ID_ALPHABET: Final = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz"
_ID_LENGTH: Final = 17
#: Unicode categories a name must not hold: controls, format characters, line breaks.
_CONTROL: Final = frozenset({"Cc", "Cf", "Zl", "Zp"})

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS api_users (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    password    TEXT,
    permissions TEXT NOT NULL,
    created     INTEGER NOT NULL,
    revoked     INTEGER
);
CREATE TABLE IF NOT EXISTS api_tokens (
    user_id TEXT NOT NULL REFERENCES api_users (id),
    hash    TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS api_tokens_by_user ON api_tokens (user_id);
CREATE INDEX IF NOT EXISTS api_tokens_by_hash ON api_tokens (hash);
"""


@attrs.frozen
class ApiUser:
    """An account that may call the REST API.

    Attributes:
        id: the generated user id (``X-User-Id``, ``userId``).
        name: the login name.
        permissions: what it may do (a subset of :data:`PERMISSIONS`).
        created: when it was added.
        revoked: when it was revoked, or ``None``; a revoked user has no tokens.
        has_password: it can log in with a password.
    """

    id: str
    name: str
    permissions: frozenset[str]
    created: dt.datetime
    revoked: dt.datetime | None = None
    has_password: bool = False

    def may(self, permission: str) -> bool:
        """The user holds ``permission``."""
        return permission in self.permissions


@attrs.frozen
class Credentials:
    """A user id and a fresh auth token, shown once (only its hash is kept)."""

    user_id: str
    auth_token: str = attrs.field(repr=False)

    def to_wire(self) -> dict[str, str]:
        """``{"userId", "authToken"}``, the names Rocket.Chat's login returns."""
        return {"userId": self.user_id, "authToken": self.auth_token}


class Accounts:
    """The API users of the SQLite file at ``path``; tables are created on first use.

    Safe to share between threads: writes are serialised, reads (such as
    :meth:`authenticate`) use a connection of their own, and password hashing
    runs outside both locks.

    Args:
        path: the database file (usually the store's).
        timeout: seconds to wait for another writer's lock.
        token_ttl: seconds a token works after it was made.
        tokens_per_user: live tokens a user keeps at most.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, timeout: float = 30.0,
        token_ttl: float = TOKEN_TTL, tokens_per_user: int = TOKENS_PER_USER,
    ) -> None:
        self.path = os.fspath(path)
        self.token_ttl = token_ttl
        self.tokens_per_user = tokens_per_user
        create_private(self.path)
        self._conn = _connect(self.path, timeout)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()
        # Reads have their own connection: in WAL mode they never wait for a
        # writer, so authenticating a request never waits for a login's write.
        self._reader = _connect(self.path, timeout)
        self._read_lock = threading.Lock()

    def add(
        self, name: str, *, password: str | None = None, permissions: Iterable[str] = (),
    ) -> tuple[ApiUser, Credentials]:
        """Create a user and a first auth token.

        Raises:
            UnknownPermission: a permission outside :data:`PERMISSIONS`.
            ApiUserExists: the name is taken (by a revoked user too).
            InvalidApiUserName: the name is empty, only spaces, or holds a control character.
            EmptyPassword: ``password`` is ``""`` (``None`` is no password).
        """
        _check_name(name)
        if password == "":
            raise EmptyPassword
        held = frozenset(permissions)
        for permission in sorted(held - set(PERMISSIONS)):
            raise UnknownPermission(permission, PERMISSIONS)
        user = ApiUser(_new_user_id(), name, held, utc_now(), has_password=password is not None)
        stored_password = hash_password(password) if password is not None else None
        token = _new_token()
        with self._writing():
            try:
                self._conn.execute(
                    "INSERT INTO api_users (id, name, password, permissions, created)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (user.id, name, stored_password, " ".join(sorted(held)),
                     epoch_millis(user.created)),
                )
            except sqlite3.IntegrityError:
                raise ApiUserExists(name) from None
            self._store_token(user.id, token)
        return user, Credentials(user.id, token)

    def users(self) -> list[ApiUser]:
        """Every API user, revoked ones included, oldest first."""
        with self._read_lock:
            rows = self._reader.execute(f"SELECT {_COLUMNS} FROM api_users ORDER BY created, name")  # noqa: S608
            return [_user(row) for row in rows]

    def get(self, name: str) -> ApiUser | None:
        """The user called ``name``."""
        with self._read_lock:
            row = self._reader.execute(
                f"SELECT {_COLUMNS} FROM api_users WHERE name = ?", (name,),  # noqa: S608
            ).fetchone()
        return _user(row) if row else None

    def revoke(self, name: str) -> ApiUser:
        """Revoke ``name``: its tokens stop working at once and it can no longer log in.

        Raises:
            UnknownApiUser: no user has that name.
        """
        now = epoch_millis(utc_now())
        with self._writing():
            row = self._conn.execute(
                "SELECT id FROM api_users WHERE name = ?", (name,),
            ).fetchone()
            if row is None:
                raise UnknownApiUser(name)
            self._conn.execute(
                "UPDATE api_users SET revoked = coalesce(revoked, ?) WHERE id = ?", (now, row[0]),
            )
            self._conn.execute("DELETE FROM api_tokens WHERE user_id = ?", (row[0],))
        revoked = self.get(name)
        assert revoked is not None  # noqa: S101 - users are never deleted
        return revoked

    def login(self, name: str, password: str) -> tuple[ApiUser, Credentials] | None:
        """A fresh token for ``name`` if ``password`` is its password, else ``None``.

        Takes as long for an unknown or revoked name as for a wrong password.
        """
        with self._read_lock:
            row = self._reader.execute(
                f"SELECT {_COLUMNS}, password FROM api_users WHERE name = ?", (name,),  # noqa: S608
            ).fetchone()
        usable = row is not None and row[-1] is not None and row[4] is None  # not revoked
        stored = row[-1] if usable else _decoy()
        if not check_password(password, stored) or not usable:
            return None
        user = _user(row[:-1])
        token = _new_token()
        with self._writing():
            self._store_token(user.id, token)
        return user, Credentials(user.id, token)

    def authenticate(self, user_id: str, token: str) -> ApiUser | None:
        """The user whose id is ``user_id`` if ``token`` is a live token of it, else ``None``."""
        # Found by its hash: a token is random, so where the lookup stops tells a
        # guesser nothing of a real one.
        with self._read_lock:
            row = self._reader.execute(
                f"SELECT {_QUALIFIED} FROM api_tokens JOIN api_users ON api_users.id = user_id"  # noqa: S608
                " WHERE hash = ? AND revoked IS NULL AND api_tokens.created > ?",
                (_token_hash(token), self._expired_before()),
            ).fetchone()
        if row is None or not hmac.compare_digest(str(row[0]).encode(), user_id.encode()):
            return None
        return _user(row)

    def logout(self, user_id: str, token: str) -> bool:
        """Invalidate one token of ``user_id``; whether it existed."""
        with self._writing():
            cursor = self._conn.execute(
                "DELETE FROM api_tokens WHERE user_id = ? AND hash = ?",
                (user_id, _token_hash(token)),
            )
        return cursor.rowcount > 0

    def tokens(self, name: str) -> int:
        """How many live (unexpired) tokens ``name`` has."""
        with self._read_lock:
            row = self._reader.execute(
                "SELECT count(*) FROM api_tokens JOIN api_users ON api_users.id = user_id"
                " WHERE name = ? AND api_tokens.created > ?", (name, self._expired_before()),
            ).fetchone()
        return int(row[0])

    def _expired_before(self) -> int:
        """Tokens made at or before this epoch millisecond have expired."""
        return epoch_millis(utc_now()) - int(self.token_ttl * 1000)

    def close(self) -> None:
        """Close the connection; the accounts are not used afterwards."""
        with self._lock, self._read_lock:
            self._conn.close()
            self._reader.close()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """One write transaction, holding SQLite's write lock from its start."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _store_token(self, user_id: str, token: str) -> None:
        """Add a token; drop the user's expired ones and the oldest beyond the cap."""
        self._conn.execute(
            "INSERT INTO api_tokens (user_id, hash, created) VALUES (?, ?, ?)",
            (user_id, _token_hash(token), epoch_millis(utc_now())),
        )
        self._conn.execute(
            "DELETE FROM api_tokens WHERE user_id = ? AND (created <= ? OR rowid NOT IN ("
            " SELECT rowid FROM api_tokens WHERE user_id = ?"
            " ORDER BY created DESC, rowid DESC LIMIT ?))",
            (user_id, self._expired_before(), user_id, self.tokens_per_user),
        )


_COLUMNS: Final = "id, name, permissions, created, revoked, password IS NOT NULL"
_QUALIFIED: Final = ", ".join(f"api_users.{column}" for column in _COLUMNS.split(", "))


def _connect(path: str, timeout: float) -> sqlite3.Connection:
    # Autocommit (transactions are explicit), shared by the threads of a server.
    return sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)


def _user(row: tuple[object, ...]) -> ApiUser:
    user_id, name, permissions, created, revoked, has_password = row
    return ApiUser(
        id=str(user_id),
        name=str(name),
        permissions=frozenset(str(permissions).split()),
        created=from_epoch_millis(int(str(created))),
        revoked=from_epoch_millis(int(str(revoked))) if revoked is not None else None,
        has_password=bool(has_password),
    )


def _new_user_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LENGTH))


def _new_token() -> str:
    # 32 random bytes, 43 URL-safe characters: the shape of Rocket.Chat's tokens.
    return secrets.token_urlsafe(32)


def _token_hash(token: str) -> str:
    # Tokens are random, so a fast unsalted hash is enough to make a stolen table useless.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@functools.cache
def _decoy() -> str:
    """Checked against when the name is unknown, revoked or has no password.

    So a wrong name costs the same time as a wrong password. Hashed on first
    use, not at import: every pytest run loads importstate (its plugin).
    """
    return hash_password("", b"importstate-decoy")


def _check_name(name: str) -> None:
    # A name is typed at login and shown in listings: a blank one cannot be
    # told apart, and control characters (an escape, a newline) rewrite the
    # terminal that lists it.
    if not name:
        raise InvalidApiUserName(name, "an API user needs a non-empty name")
    if not name.strip():
        raise InvalidApiUserName(name, "an API user needs a non-empty name, not only spaces")
    if any(unicodedata.category(char) in _CONTROL for char in name):
        raise InvalidApiUserName(
            name, f"an API user's name must not hold control characters (got {name!r})",
        )
