"""A real ``importstate serve`` in a subprocess on a free loopback port, for the HTTP tests."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

# Starts the command line with the built-in importer optionally slowed down
# (IMPORTSTATE_TEST_BATCH_DELAY seconds per batch), so a test can act on an
# import that is still going.
SERVE = (
    "import os, sys, time\n"
    "from importstate import users_table\n"
    "delay = float(os.environ.get('IMPORTSTATE_TEST_BATCH_DELAY', '0'))\n"
    "if delay:\n"
    "    batch = users_table.UsersTableImporter.import_batch\n"
    "    def slow(self, users):\n"
    "        time.sleep(delay)\n"
    "        return batch(self, users)\n"
    "    users_table.UsersTableImporter.import_batch = slow\n"
    "from importstate.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli(*args, db, stdin=None):
    done = subprocess.run(
        [sys.executable, "-m", "importstate", *args, "--db", str(db)],
        input=stdin, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def add_user(db, name, *permissions, password=None):
    """Create an API user with the CLI; its ``{"userId", "authToken"}``."""
    args = ["users", "add", name, "--json"]
    args += [arg for p in permissions for arg in ("--permission", p)]
    if password is not None:
        args += ["--password-stdin"]
    return json.loads(cli(*args, db=db, stdin=None if password is None else password + "\n"))


def headers(credentials):
    return {"X-User-Id": credentials["userId"], "X-Auth-Token": credentials["authToken"]}


class Server:
    """``importstate serve --db DB`` on a free port; ``url`` is its base URL."""

    def __init__(self, db, *, batch_delay=0.0, max_body=None, options=()):
        self.db = db
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.batch_delay = batch_delay
        self.max_body = max_body
        self.options = list(options)
        self.process = None
        self.log = db.parent / f"serve-{self.port}-{time.monotonic_ns()}.log"

    def start(self):
        args = ["serve", "--db", str(self.db), "--port", str(self.port)]
        if self.max_body is not None:
            args += ["--max-body", str(self.max_body)]
        args += self.options
        env = {**os.environ, "IMPORTSTATE_TEST_BATCH_DELAY": str(self.batch_delay)}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", SERVE, *args], stdout=log, stderr=subprocess.STDOUT, env=env,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            try:
                httpx.get(self.url + "/api/v1/openapi.json", timeout=1)
            except httpx.TransportError:
                time.sleep(0.05)
            else:
                return self
        raise AssertionError("the server did not start: " + self.output())

    def stop(self, sig=signal.SIGTERM):
        """Send ``sig`` and wait for the process to end; its exit status."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError("the server did not stop: " + self.output()) from None

    def memory(self, field):
        """The server process's ``VmRSS`` or ``VmHWM`` (its peak), in bytes."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith(field + ":"))
        return int(line.split()[1]) * 1024

    def reset_peak(self):
        """Make ``VmHWM`` start again from the present ``VmRSS`` (Linux's clear_refs)."""
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")

    def descriptors(self):
        return len(list(Path(f"/proc/{self.process.pid}/fd").iterdir()))

    def output(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
