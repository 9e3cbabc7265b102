"""Fetching a file by URL on a user's behalf: a server-side request with address rules.

Behaviour: file-api.

Only ``http`` and ``https`` URLs whose every resolved address is public are
fetched, unless :attr:`UrlRules.allow_private` lifts that rule. The
connection goes to the address that was vetted (the name is not looked up a
second time, so a name cannot be re-pointed at a private address between the
check and the request), while the ``Host`` header, TLS SNI and the
certificate check still use the name. Each redirect is vetted again by the
same rules. A local path (no scheme, or ``file://``) is read only when its
real path (symlinks resolved) lies inside :attr:`UrlRules.import_dir`.
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import socket
import ssl
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, Final

import attrs

from importstate.errors import DownloadFailed, UrlNotAllowed

__all__ = [
    "MAX_REDIRECTS",
    "Connect",
    "Fetcher",
    "Resolve",
    "UrlRules",
    "VettedUrl",
    "fetch",
    "system_resolve",
    "vet",
]

#: Redirects followed before a download is refused.
MAX_REDIRECTS: Final = 5
#: Host and port → the addresses the name resolves to, as strings.
Resolve = Callable[[str, int], Sequence[str]]
#: ``(address, port), timeout`` → a connected socket (:func:`socket.create_connection`'s shape).
Connect = Callable[[tuple[str, int], float], socket.socket]

_WEB_SCHEMES: Final = {"http": 80, "https": 443}
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_CHUNK: Final = 64 * 1024


@attrs.frozen
class UrlRules:
    """What a fetch on a user's behalf may reach.

    Attributes:
        allow_private: fetch from loopback, private, link-local and other
            non-public addresses too (``--allow-private-urls``).
        import_dir: the directory local paths may be read from
            (``--import-dir``); ``None`` refuses every local path.
    """

    allow_private: bool = False
    import_dir: Path | None = None


@attrs.frozen
class VettedUrl:
    """A URL that passed the rules: where to connect, or which file to read.

    Attributes:
        url: the URL as given.
        host: the name (or address) of a web URL; ``None`` for a local path.
        port: the port to connect to; 0 for a local path.
        tls: whether the connection is ``https``.
        addresses: every address ``host`` resolved to, each allowed.
        path: the real path of a local file inside the import directory.
    """

    url: str
    host: str | None = None
    port: int = 0
    tls: bool = False
    addresses: tuple[str, ...] = ()
    path: Path | None = None


def system_resolve(host: str, port: int) -> list[str]:
    """Every address the system's resolver gives for ``host``, each once, in its order.

    Raises:
        OSError: the name does not resolve.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def vet(url: str, rules: UrlRules, *, resolve: Resolve = system_resolve) -> VettedUrl:
    """Check everything about ``url`` that can be checked before fetching it.

    The scheme, the addresses its host resolves to (each must be public
    unless ``rules.allow_private``), or for a local path that its real path
    is inside ``rules.import_dir`` and is a file. A server calls it to refuse
    a URL before answering; :func:`fetch` calls it again.

    Raises:
        UrlNotAllowed: the scheme, an address or the path is not allowed.
        DownloadFailed: the host does not resolve, or the local file does not exist.
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed [ of an IPv6 address
        raise UrlNotAllowed(url, f"not a URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme in _WEB_SCHEMES:
        return _vet_web(url, parts, rules, resolve)
    if scheme in {"", "file"}:
        return _vet_local(url, parts, rules)
    raise UrlNotAllowed(
        url, f"scheme {scheme!r} is not allowed (only http, https or a path in the import"
        " directory)",
    )


def _vet_web(
    url: str, parts: urllib.parse.SplitResult, rules: UrlRules, resolve: Resolve,
) -> VettedUrl:
    host = parts.hostname
    if not host:
        raise UrlNotAllowed(url, "the URL names no host")
    try:
        port = parts.port or _WEB_SCHEMES[parts.scheme.lower()]
    except ValueError:
        raise UrlNotAllowed(url, "the port is not a number from 0 to 65535") from None
    literal = _is_address(host)
    if literal:
        addresses: tuple[str, ...] = (host,)
    else:
        try:
            addresses = tuple(resolve(host, port))
        except OSError as exc:
            raise DownloadFailed(url, f"{host} does not resolve ({exc})") from None
    if not addresses:
        raise DownloadFailed(url, f"{host} does not resolve")
    if not rules.allow_private:
        for address in addresses:
            why = _not_public(address)
            if why:
                where = f"{address} is" if literal else f"{host} resolves to {address},"
                raise UrlNotAllowed(url, f"{where} a {why} address")
    return VettedUrl(
        url, host=host, port=port, tls=parts.scheme.lower() == "https", addresses=addresses,
    )


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _not_public(address: str) -> str:
    """Why ``address`` is not a public one (``"loopback"``, ``"private"``, ...), or ``""``."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for why, test in (
        ("loopback", ip.is_loopback), ("unspecified", ip.is_unspecified),
        ("link-local", ip.is_link_local), ("multicast", ip.is_multicast),
        ("private", ip.is_private), ("reserved", ip.is_reserved),
        ("non-public", not ip.is_global),
    ):
        if test:
            return why
    return ""


def _vet_local(url: str, parts: urllib.parse.SplitResult, rules: UrlRules) -> VettedUrl:
    if rules.import_dir is None:
        raise UrlNotAllowed(url, "local paths are read only from an import directory; none is set")
    if parts.scheme:
        if parts.netloc not in {"", "localhost"}:
            raise UrlNotAllowed(url, "a file URL must name no host")
        given = urllib.parse.unquote(parts.path)
    else:
        given = url
    root = Path(os.path.realpath(rules.import_dir))
    real = Path(os.path.realpath(root / given))
    if not real.is_relative_to(root):
        raise UrlNotAllowed(url, "the path is outside the import directory")
    if not real.is_file():
        raise DownloadFailed(url, "no such file in the import directory")
    return VettedUrl(url, path=real)


def fetch(  # noqa: PLR0913 - the rules, then keyword-only limits and seams
    url: str,
    dest: BinaryIO,
    rules: UrlRules,
    *,
    max_bytes: int,
    timeout: float = 30.0,
    resolve: Resolve = system_resolve,
    connect: Connect = socket.create_connection,
) -> int:
    """Write the body at ``url`` to ``dest``; return how many bytes were written.

    ``url`` and every redirect (at most :data:`MAX_REDIRECTS`) are vetted as
    :func:`vet` does; the connection goes to a vetted address with ``connect``.
    ``timeout`` is in seconds, for connecting and for each read. On an error
    ``dest`` may hold part of the body.

    Raises:
        UrlNotAllowed: ``url`` or a redirect is not allowed by ``rules``.
        DownloadFailed: an HTTP status other than 2xx, a body over
            ``max_bytes``, a timeout, a refused connection, a TLS or other
            network error, or too many redirects.
    """
    for _ in range(MAX_REDIRECTS + 1):
        target = vet(url, rules, resolve=resolve)
        if target.path is not None:
            try:
                with target.path.open("rb") as source:
                    return _copy(url, source, dest, max_bytes)
            except OSError as exc:
                raise DownloadFailed(url, exc.strerror or type(exc).__name__) from None
        location, written = _get(target, dest, max_bytes, timeout, connect)
        if location is None:
            return written
        if urllib.parse.urlsplit(location).scheme.lower() not in _WEB_SCHEMES:
            raise UrlNotAllowed(location, "a redirect may only lead to an http or https URL")
        url = location
    raise DownloadFailed(url, f"more than {MAX_REDIRECTS} redirects")


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to one vetted address, speaking to the server by its name."""

    def __init__(self, target: VettedUrl, address: str, timeout: float, connect: Connect) -> None:
        assert target.host is not None  # noqa: S101 - only web targets are connected to
        super().__init__(target.host, target.port, timeout=timeout)
        self.default_port = 443 if target.tls else 80  # the Host header leaves it out
        self._address = address
        self._seconds = timeout
        self._connect = connect
        self._tls = ssl.create_default_context() if target.tls else None

    def connect(self) -> None:
        sock = self._connect((self._address, self.port), self._seconds)
        if self._tls is not None:
            sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        self.sock = sock


def _get(
    target: VettedUrl, dest: BinaryIO, max_bytes: int, timeout: float, connect: Connect,
) -> tuple[str | None, int]:
    """GET ``target`` into ``dest``: ``(redirect's absolute URL, 0)`` or ``(None, bytes)``."""
    url = target.url
    parts = urllib.parse.urlsplit(url)
    path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
    conn = _connected(target, timeout, connect)
    try:
        conn.request("GET", path, headers={"User-Agent": "importstate", "Accept": "*/*"})
        response = conn.getresponse()
        if response.status in _REDIRECTS and response.getheader("Location"):
            return urllib.parse.urljoin(url, response.getheader("Location", "")), 0
        if not 200 <= response.status < 300:  # noqa: PLR2004 - the 2xx range
            raise DownloadFailed(url, f"HTTP {response.status} {response.reason}".rstrip())
        length = response.getheader("Content-Length")
        if length is not None and length.isdigit() and int(length) > max_bytes:
            raise DownloadFailed(url, f"larger than the limit of {max_bytes} bytes")
        written = _copy(url, response, dest, max_bytes)
    except TimeoutError:
        raise DownloadFailed(url, f"timed out after {timeout:g} s") from None
    except (OSError, http.client.HTTPException) as exc:
        raise DownloadFailed(url, _network_reason(exc)) from None
    finally:
        conn.close()
    return None, written


def _connected(target: VettedUrl, timeout: float, connect: Connect) -> _PinnedConnection:
    """A connection to the first vetted address that accepts one."""
    reason = "no address"
    for address in target.addresses:
        conn = _PinnedConnection(target, address, timeout, connect)
        try:
            conn.connect()
        except TimeoutError:
            reason = f"timed out after {timeout:g} s"
        except OSError as exc:
            reason = _network_reason(exc)
        else:
            return conn
        conn.close()
    raise DownloadFailed(target.url, reason)


def _network_reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not accepted ({exc.verify_message})"
    return " ".join(str(exc).split()) or type(exc).__name__


def _copy(url: str, source: BinaryIO | http.client.HTTPResponse, dest: BinaryIO, limit: int) -> int:
    """Copy ``source`` to ``dest`` a chunk at a time, refusing more than ``limit`` bytes."""
    written = 0
    while chunk := source.read(_CHUNK):
        written += len(chunk)
        if written > limit:
            raise DownloadFailed(url, f"larger than the limit of {limit} bytes")
        dest.write(chunk)
    return written


@attrs.frozen
class Fetcher:
    """:func:`fetch` with its rules and limits bound: ``fetcher(url, dest) -> bytes written``.

    The shape :meth:`~importstate.ImportService.download_pending` takes.
    """

    rules: UrlRules = UrlRules()
    max_bytes: int = 100 * 1024 * 1024
    timeout: float = 30.0
    resolve: Resolve = system_resolve
    connect: Connect = socket.create_connection

    def __call__(self, url: str, dest: BinaryIO) -> int:
        """Fetch ``url`` into ``dest`` by the bound rules.

        Raises:
            UrlNotAllowed, DownloadFailed: as :func:`fetch`.
        """
        return fetch(
            url, dest, self.rules, max_bytes=self.max_bytes, timeout=self.timeout,
            resolve=self.resolve, connect=self.connect,
        )
