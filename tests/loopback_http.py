"""A quiet HTTP server on a free loopback port, in a thread, for the tests that fetch by URL."""

import contextlib
import http.server
import threading


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A request handler that logs nothing and answers with :meth:`answer`."""

    def answer(self, status, body=b"", headers=()):
        """Send ``status``, ``headers`` (pairs) and ``body``; a client gone away is ignored."""
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serving(handler):
    """A threading HTTP server on 127.0.0.1 with ``handler``, shut down on leaving."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
