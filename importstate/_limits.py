"""What ``importstate serve`` allows a client, and how long it waits for one: one table.

The command line's options of ``serve``, :func:`~importstate.http.serve` and
:func:`~importstate.http.create_app` take their defaults from :class:`Limits`
(exported as ``importstate.http.Limits``; it lives outside ``http`` so that the
command line reads it without loading the server); the README's "Operating
the server" explains each.
"""

from __future__ import annotations

from typing import Final

import attrs

from importstate.accounts import TOKEN_TTL, TOKENS_PER_USER

#: Largest request body accepted, in bytes, unless the server is told otherwise.
DEFAULT_MAX_BODY: Final = 10 * 1024 * 1024
#: A body longer than this (or of unknown length) takes one of ``large_bodies``' slots.
LARGE_BODY: Final = 1024 * 1024


@attrs.frozen
class Limits:
    """The server's limits; times in seconds.

    Attributes:
        max_body: largest request body, in bytes (413 above).
        large_bodies: bodies over 1 MiB read and staged at once; others
            wait for a slot up to ``body_timeout``, then get 503.
        max_connections: open connections (at most the descriptor limit, ``ulimit
            -n``, less 64); one more gets 503 and is closed.
        header_timeout: a request's line and headers must arrive within this.
        idle_timeout: a kept-alive connection with no request is closed after this.
        body_timeout: a body that sends nothing for this long gets 408.
        token_ttl: auth tokens expire this long after they were made
            (Rocket.Chat's default login expiry is 90 days).
        tokens_per_user: live tokens an API user may hold; a login beyond
            drops the oldest.
        login_failures: failed logins per name, and ten times as many per
            client address, within ``login_window``; beyond, 429.
        login_window: the window of ``login_failures``.
        takeover_after: a lease on a running import not renewed for this
            long is void: another server may take the import over.
        prune_after: finished operations last updated longer ago than this
            are deleted, with their staging (``None``: never).
    """

    max_body: int = DEFAULT_MAX_BODY
    large_bodies: int = 2
    max_connections: int = 1000
    header_timeout: float = 10.0
    idle_timeout: float = 5.0
    body_timeout: float = 30.0
    token_ttl: float = TOKEN_TTL
    tokens_per_user: int = TOKENS_PER_USER
    login_failures: int = 10
    login_window: float = 300.0
    takeover_after: float = 30.0
    prune_after: float | None = None
