"""Fetching by URL on a user's behalf: address rules, redirects, limits, the import directory."""

import contextlib
import io
import os
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse

import pytest
from loopback_http import QuietHandler, serving

from importstate import fetch as fetching
from importstate.errors import DownloadFailed, ImportStateError, UrlNotAllowed
from importstate.fetch import Fetcher, UrlRules, fetch, vet

PUBLIC = "93.184.216.34"  # a globally routable address, never connected to: connect is stubbed
BODY = b"0123456789" * 1000
OPEN = UrlRules(allow_private=True)


class Handler(QuietHandler):
    """Routes: /file, /big (no Content-Length), /missing, /slow, /to?url=..., /loop."""

    def do_GET(self):  # noqa: N802 - the name http.server calls
        self.server.seen.append((self.path, self.headers.get("Host")))
        route, _, query = self.path.partition("?")
        length = ("Content-Length", str(len(BODY)))
        if route == "/file":
            self.answer(200, BODY, [length])
        elif route == "/big":
            self.answer(200, BODY, [("Connection", "close")])
        elif route == "/to":
            location = urllib.parse.parse_qs(query)["url"][0]
            self.answer(302, headers=[("Location", location), ("Content-Length", "0")])
        elif route == "/loop":
            self.answer(302, headers=[("Location", "/loop"), ("Content-Length", "0")])
        elif route == "/slow":
            time.sleep(1.0)
            self.answer(200, BODY, [length])
        else:
            self.answer(404, b"no", [("Content-Length", "2")])


@pytest.fixture(scope="module")
def server():
    with serving(Handler) as httpd:
        httpd.seen = []
        yield httpd


@pytest.fixture
def base(server):
    server.seen.clear()
    return f"http://127.0.0.1:{server.server_address[1]}"


def loopback(server, dialled):
    """A ``connect`` that records the address asked for and dials the test server instead."""
    def connect(address, timeout):
        dialled.append(address)
        return socket.create_connection(("127.0.0.1", server.server_address[1]), timeout)
    return connect


def names(table, looked_up=None):
    """A ``resolve`` answering from ``table``; each look-up is recorded in ``looked_up``."""
    def resolve(host, _port):
        if looked_up is not None:
            looked_up.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]
    return resolve


def test_a_loopback_url_is_refused_without_allow_private_and_not_requested(server, base):
    with pytest.raises(UrlNotAllowed) as caught:
        fetch(f"{base}/file", io.BytesIO(), UrlRules(), max_bytes=len(BODY))
    assert caught.value.reason == "127.0.0.1 is a loopback address"
    assert str(caught.value) == f"URL not allowed: {base}/file: {caught.value.reason}"
    assert server.seen == []


def test_localhost_by_name_is_refused_too():
    with pytest.raises(UrlNotAllowed, match="a loopback address"):
        vet("http://localhost:9/x", UrlRules())


def test_allow_private_fetches_from_loopback(base):
    dest = io.BytesIO()
    assert fetch(f"{base}/file", dest, OPEN, max_bytes=len(BODY)) == len(BODY)
    assert dest.getvalue() == BODY


def test_a_fetcher_binds_the_rules_and_limits(base):
    dest = io.BytesIO()
    assert Fetcher(OPEN, max_bytes=len(BODY))(f"{base}/file", dest) == len(BODY)
    with pytest.raises(UrlNotAllowed):
        Fetcher()(f"{base}/file", io.BytesIO())


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "0.0.0.0",  # noqa: S104
    "224.0.0.1", "100.64.0.1", "240.0.0.1", "255.255.255.255", "::1", "::", "fe80::1",
    "fc00::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "192.0.2.1",
])
def test_every_non_public_address_is_refused(address):
    with pytest.raises(UrlNotAllowed, match=f"resolves to {address}, a "):
        vet("https://files.example/a.zip", UrlRules(), resolve=names({"files.example": [address]}))


def test_one_private_address_among_public_ones_is_enough_to_refuse():
    resolve = names({"files.example": [PUBLIC, "2606:4700::1111", "10.1.2.3"]})
    with pytest.raises(UrlNotAllowed, match=r"10\.1\.2\.3, a private address"):
        vet("https://files.example/a.zip", UrlRules(), resolve=resolve)


def test_public_addresses_pass_and_an_address_literal_is_not_looked_up():
    looked_up = []
    resolve = names({"files.example": [PUBLIC, "2606:4700::1111"]}, looked_up)
    vetted = vet("https://files.example/a.zip", UrlRules(), resolve=resolve)
    assert (vetted.host, vetted.port, vetted.tls) == ("files.example", 443, True)
    assert vetted.addresses == (PUBLIC, "2606:4700::1111")
    assert vet(f"http://{PUBLIC}:8080/", UrlRules(), resolve=resolve).addresses == (PUBLIC,)
    with pytest.raises(UrlNotAllowed, match="::1 is a loopback"):
        vet("http://[::1]:8080/", UrlRules(), resolve=resolve)
    assert looked_up == ["files.example"]


def test_the_vetted_address_is_dialled_with_the_name_in_the_host_header(server):
    port = server.server_address[1]
    server.seen.clear()
    looked_up, dialled = [], []
    dest = io.BytesIO()
    written = fetch(
        f"http://files.example:{port}/file", dest, UrlRules(), max_bytes=len(BODY),
        resolve=names({"files.example": [PUBLIC]}, looked_up), connect=loopback(server, dialled),
    )
    assert written == len(BODY)
    assert dest.getvalue() == BODY
    assert looked_up == ["files.example"]  # once: the connection does not look it up again
    assert dialled == [(PUBLIC, port)]
    assert server.seen == [("/file", f"files.example:{port}")]


@pytest.mark.parametrize(("target", "why"), [
    ("http://127.0.0.1:{port}/file", "127.0.0.1 is a loopback address"),
    ("http://inner.example:{port}/file", "inner.example resolves to 10.1.2.3, a private address"),
    ("http://[::ffff:192.168.0.1]/", "::ffff:192.168.0.1 is a private address"),
    ("file:///etc/passwd", "a redirect may only lead to an http or https URL"),
])
def test_a_redirect_from_a_public_host_to_a_private_one_is_refused(server, target, why):
    port = server.server_address[1]
    server.seen.clear()
    location = target.format(port=port)
    resolve = names({"files.example": [PUBLIC], "inner.example": [PUBLIC, "10.1.2.3"]})
    dialled = []
    with pytest.raises(UrlNotAllowed) as caught:
        fetch(
            f"http://files.example:{port}/to?url={urllib.parse.quote(location)}", io.BytesIO(),
            UrlRules(), max_bytes=100, resolve=resolve, connect=loopback(server, dialled),
        )
    assert why in caught.value.reason
    assert caught.value.url == location
    assert dialled == [(PUBLIC, port)]  # the private address was never dialled
    assert len(server.seen) == 1


def test_redirects_are_followed_up_to_five(base):
    dest = io.BytesIO()
    hop = f"{base}/file"
    for _ in range(fetching.MAX_REDIRECTS):
        hop = f"{base}/to?url={urllib.parse.quote(hop)}"
    assert fetch(hop, dest, OPEN, max_bytes=len(BODY)) == len(BODY)
    with pytest.raises(DownloadFailed, match="more than 5 redirects"):
        fetch(f"{base}/loop", io.BytesIO(), OPEN, max_bytes=len(BODY))


def test_a_redirect_to_another_scheme_is_refused(base):
    url = f"{base}/to?url={urllib.parse.quote('ftp://files.example/a.zip')}"
    with pytest.raises(UrlNotAllowed, match="a redirect may only lead to an http or https URL"):
        fetch(url, io.BytesIO(), OPEN, max_bytes=100)


@pytest.mark.parametrize("route", ["/file", "/big"])  # with and without Content-Length
def test_a_body_over_the_limit_is_refused(base, route):
    dest = io.BytesIO()
    with pytest.raises(DownloadFailed) as caught:
        fetch(f"{base}{route}", dest, OPEN, max_bytes=len(BODY) - 1)
    assert caught.value.reason == f"larger than the limit of {len(BODY) - 1} bytes"
    assert len(dest.getvalue()) < len(BODY)
    assert fetch(f"{base}{route}", io.BytesIO(), OPEN, max_bytes=len(BODY)) == len(BODY)


def test_an_http_error_status_fails_the_download(base):
    with pytest.raises(DownloadFailed) as caught:
        fetch(f"{base}/missing", io.BytesIO(), OPEN, max_bytes=100)
    assert str(caught.value) == f"Download failed: {base}/missing: HTTP 404 Not Found"


def test_a_slow_server_times_out(base):
    with pytest.raises(DownloadFailed, match=r"timed out after 0.2 s"):
        fetch(f"{base}/slow", io.BytesIO(), OPEN, max_bytes=len(BODY), timeout=0.2)


def test_a_closed_port_is_a_refused_connection():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DownloadFailed) as caught:
        fetch(f"http://127.0.0.1:{port}/", io.BytesIO(), OPEN, max_bytes=100)
    assert caught.value.reason == "connection refused"


def test_a_name_that_does_not_resolve_fails():
    with pytest.raises(DownloadFailed, match=r"nowhere\.example does not resolve"):
        vet("https://nowhere.example/a.zip", UrlRules(), resolve=names({}))


@pytest.mark.parametrize("url", [
    "ftp://files.example/a.zip", "gopher://files.example/1", "data:text/plain,hello",
    "javascript:alert(1)", "HTTPX://files.example/",
])
def test_only_http_https_and_local_paths_are_fetched(url, tmp_path):
    with pytest.raises(UrlNotAllowed, match=r"is not allowed \(only http, https or a path"):
        vet(url, UrlRules(allow_private=True, import_dir=tmp_path))


def test_a_password_in_the_url_is_not_shown():
    with pytest.raises(UrlNotAllowed) as caught:
        vet("http://admin:s3cret@127.0.0.1/x", UrlRules())
    assert "s3cret" not in str(caught.value)
    assert "http://admin:***@127.0.0.1/x" in str(caught.value)


@pytest.fixture
def import_dir(tmp_path):
    root = tmp_path / "imports"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "export.zip").write_bytes(b"zip bytes")
    (tmp_path / "secret.txt").write_bytes(b"secret")
    (root / "escape").symlink_to(tmp_path / "secret.txt")
    (root / "inside").symlink_to(root / "sub" / "export.zip")
    return root


def test_local_paths_need_an_import_directory(import_dir):
    with pytest.raises(UrlNotAllowed, match="none is set"):
        fetch(str(import_dir / "sub" / "export.zip"), io.BytesIO(), OPEN, max_bytes=100)


@pytest.mark.parametrize("given", [
    "{root}/sub/export.zip", "sub/export.zip", "file://{root}/sub/export.zip",
    "file://localhost{root}/sub/export.zip", "{root}/inside", "sub/../sub/export.zip",
])
def test_a_local_path_inside_the_import_directory_is_read(import_dir, given):
    dest = io.BytesIO()
    rules = UrlRules(import_dir=import_dir)
    assert fetch(given.format(root=import_dir), dest, rules, max_bytes=100) == len(b"zip bytes")
    assert dest.getvalue() == b"zip bytes"


@pytest.mark.parametrize("given", [
    "{root}/../secret.txt", "../secret.txt", "sub/../../secret.txt", "{root}/escape",
    "file://{root}/escape", "/etc/hostname", "file:///etc/hostname",
])
def test_a_local_path_leaving_the_import_directory_is_refused(import_dir, given):
    with pytest.raises(UrlNotAllowed) as caught:
        fetch(given.format(root=import_dir), io.BytesIO(), UrlRules(import_dir=import_dir),
              max_bytes=100)
    assert caught.value.reason == "the path is outside the import directory"


def test_local_files_obey_the_limit_and_must_exist(import_dir):
    rules = UrlRules(import_dir=import_dir)
    with pytest.raises(DownloadFailed, match="larger than the limit of 3 bytes"):
        fetch("sub/export.zip", io.BytesIO(), rules, max_bytes=3)
    with pytest.raises(DownloadFailed, match="no such file in the import directory"):
        fetch("sub/none.zip", io.BytesIO(), rules, max_bytes=3)
    with pytest.raises(UrlNotAllowed, match="must name no host"):
        fetch("file://elsewhere/sub/export.zip", io.BytesIO(), rules, max_bytes=3)


def test_every_refusal_is_an_import_state_error():
    assert issubclass(UrlNotAllowed, ImportStateError)
    assert issubclass(DownloadFailed, ImportStateError)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """A TLS server with a self-signed certificate, recording the SNI name each client sends."""
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",  # noqa: S607
         "-subj", "/CN=files.example", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    names_seen = []
    context.sni_callback = lambda _sock, name, _ctx: names_seen.append(name)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with contextlib.suppress(OSError, ssl.SSLError), conn:
                context.wrap_socket(conn, server_side=True)

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1], names_seen
    listener.close()


def test_https_sends_the_name_by_sni_and_checks_the_certificate(tls_server):
    port, names_seen = tls_server
    resolve = names({"files.example": [PUBLIC]})

    def connect(address, timeout):
        assert address == (PUBLIC, port)
        return socket.create_connection(("127.0.0.1", port), timeout)

    with pytest.raises(DownloadFailed, match="TLS certificate not accepted"):
        fetch(f"https://files.example:{port}/a.zip", io.BytesIO(), UrlRules(), max_bytes=100,
              resolve=resolve, connect=connect)
    assert names_seen[-1] == "files.example"


def test_the_system_resolver_answers_addresses_once_each():
    addresses = fetching.system_resolve("localhost", 80)
    assert addresses
    assert len(addresses) == len(set(addresses))
    assert all(fetching._not_public(a) == "loopback" for a in addresses)


def test_a_file_that_is_no_file_is_not_read(import_dir):
    os.mkfifo(import_dir / "pipe")
    with pytest.raises(DownloadFailed, match="no such file"):
        vet("pipe", UrlRules(import_dir=import_dir))


def test_what_is_not_a_url_is_refused_as_a_fetch_error(base):
    with pytest.raises(UrlNotAllowed, match="not a URL"):
        vet("http://[::1/x", OPEN)
    with pytest.raises(DownloadFailed, match="URL can't contain control characters"):
        fetch(f"{base}/file name", io.BytesIO(), OPEN, max_bytes=100)
