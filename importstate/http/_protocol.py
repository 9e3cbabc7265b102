"""The server's HTTP/1.1 connections: uvicorn's h11 protocol, with two limits uvicorn lacks.

Uvicorn closes a kept-alive connection that stays idle (``timeout_keep_alive``),
but waits forever for the head of a request that is sent slowly or never
finished, so a few hundred such connections hold the server's descriptors
and its attention. Here every request's line and headers must arrive within
``header_timeout`` of the connection opening (or of the previous response),
and a connection beyond ``max_connections`` gets a JSON 503 and is closed.
(Uvicorn's own ``limit_concurrency`` answers in plain text.)
"""

from __future__ import annotations

import asyncio
import json
import resource
import socket
from typing import ClassVar

import h11
from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.protocols.http.h11_impl import H11Protocol

from importstate.errors import TooManyConnections

_OVER_CAPACITY = json.dumps({"success": False, "error": TooManyConnections.message}).encode()
#: Seconds a connection over the cap has to send its request's head.
_OVER_CAPACITY_DEADLINE = 1.0
#: Descriptors kept for the server's own files (database, log, threads' connections).
RESERVED_DESCRIPTORS = 64


async def _over_capacity(
    _scope: Scope, _receive: ASGIReceiveCallable, send: ASGISendCallable,
) -> None:
    await send({
        "type": "http.response.start", "status": 503,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(_OVER_CAPACITY)).encode()),
                    (b"retry-after", b"1"), (b"connection", b"close")],
    })
    await send({"type": "http.response.body", "body": _OVER_CAPACITY, "more_body": False})


class _Connection(H11Protocol):
    header_timeout: ClassVar[float]
    max_connections: ClassVar[int]
    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # asyncio turns Nagle's algorithm off only on sockets it opened for TCP; the
        # listening socket is ours (made before the database is opened), and without
        # this a response's body waits for the client's delayed ACK: 40 ms a request.
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in {socket.AF_INET, socket.AF_INET6}:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        deadline = self.header_timeout
        if len(self.connections) > self.max_connections:
            # Answered as soon as its head is in, and given little time to send it:
            # a connection over the cap must not hold its descriptor for long.
            self.app = _over_capacity
            deadline = min(deadline, _OVER_CAPACITY_DEADLINE)
        self._await_head(deadline)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._head_arrived()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._await_head(self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_arrived()
        super().connection_lost(exc)

    def _await_head(self, seconds: float) -> None:
        self._head_arrived()
        self._head_deadline = self.loop.call_later(seconds, self._head_too_slow)

    def _head_arrived(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self.timeout_keep_alive_handler()  # uvicorn's own way of closing an idle one


def connection_class(*, header_timeout: float, max_connections: int) -> type[H11Protocol]:
    """The protocol class uvicorn is given (``http=``), with these limits."""
    return type("Connection", (_Connection,), {
        "header_timeout": header_timeout, "max_connections": max_connections,
    })


def connections_allowed(wanted: int) -> int:
    """``wanted``, or fewer if the process may not open that many descriptors.

    Past its descriptor limit (``ulimit -n``) the server can accept no
    connection and open no file: every client waits, and the database
    fails to open.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - RESERVED_DESCRIPTORS))
