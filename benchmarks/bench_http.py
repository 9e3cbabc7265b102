"""REST benchmark: ``GET /api/v1/import.status`` of ``importstate serve`` against bare Starlette.

Both servers run as uvicorn subprocesses with the same settings (access
log on, written to /dev/null); the bare one answers a constant JSON body of
exactly the size importstate's status answer has. One client (raw HTTP/1.1
keep-alive over several connections, so the client is not the bottleneck)
drives both, alternating rounds; the best round of each counts.

Target (issue "importstate serve"): importstate >= 0.5x the bare endpoint.

Usage: python benchmarks/bench_http.py [--seconds S] [--rounds N] [--connections C]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

TARGET = 0.5

BARE_SERVER = """
import sys
import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

body = open(sys.argv[2], "rb").read()

async def status(request):
    return Response(body, media_type="application/json")

app = Starlette(routes=[Route("/api/v1/import.status", status)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="info")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(args: list[str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(  # noqa: S603 - this Python running our own servers
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    msg = f"server on port {port} did not start"
    raise RuntimeError(msg)


def importstate(*args: str) -> str:
    """Run the ``importstate`` command line; its standard output."""
    return subprocess.run(  # noqa: S603 - this Python running our own command line
        [sys.executable, "-m", "importstate", *args], capture_output=True, check=True, text=True,
    ).stdout


def prepare(db: Path) -> dict[str, str]:
    """An API user and a ready operation with users staged; the user's headers."""
    out = importstate("users", "add", "bench", "--permission", "run-import", "--json",
                      "--db", str(db))
    credentials = json.loads(out)
    users = [{"username": f"u{n}", "emails": [f"u{n}@example.com"], "importIds": [str(n)]}
             for n in range(100)]
    users_file = db.with_name("users.json")
    users_file.write_text(json.dumps(users))
    importstate("new", "--db", str(db))
    importstate("add-users", str(users_file), "--db", str(db))
    return {"X-User-Id": credentials["userId"], "X-Auth-Token": credentials["authToken"]}


async def _connection(request: bytes, port: int, until: float) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done = 0
    try:
        while time.monotonic() < until:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                msg = f"unexpected answer: {head[:60]!r}"
                raise RuntimeError(msg)
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            done += 1
    finally:
        writer.close()
    return done


async def _load(request: bytes, port: int, seconds: float, connections: int) -> float:
    started = time.monotonic()
    counts = await asyncio.gather(*(
        _connection(request, port, started + seconds) for _ in range(connections)))
    return sum(counts) / (time.monotonic() - started)


def load(port: int, headers: dict[str, str], seconds: float, connections: int) -> float:
    """Requests per second on ``port`` over ``connections`` keep-alive connections."""
    lines = ["GET /api/v1/import.status HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return asyncio.run(_load(request, port, seconds, connections))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="length of one round")
    parser.add_argument("--rounds", type=int, default=6, help="rounds per server")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="importstate-bench-") as scratch:
        db = Path(scratch) / "bench.db"
        headers = prepare(db)
        ours_port, bare_port = free_port(), free_port()
        ours = start([sys.executable, "-m", "importstate", "serve", "--db", str(db),
                      "--port", str(ours_port)], ours_port)
        try:
            body = httpx.get(f"http://127.0.0.1:{ours_port}/api/v1/import.status",
                             headers=headers).content
            constant = Path(scratch) / "body.json"
            constant.write_bytes(body)
            bare = start([sys.executable, "-c", BARE_SERVER, str(bare_port), str(constant)],
                         bare_port)
            try:
                assert httpx.get(f"http://127.0.0.1:{bare_port}/api/v1/import.status") \
                    .content == body
                best = {"importstate": 0.0, "bare Starlette": 0.0}
                for round_ in range(args.rounds):
                    for name, port, sent in (("importstate", ours_port, headers),
                                             ("bare Starlette", bare_port, {})):
                        rate = load(port, sent, args.seconds, args.connections)
                        best[name] = max(best[name], rate)
                        print(f"round {round_ + 1}: {name:15} {rate:8,.0f} requests/s")
            finally:
                bare.terminate()
                bare.wait()
        finally:
            ours.terminate()
            ours.wait()

    ratio = best["importstate"] / best["bare Starlette"]
    print(f"\nimport.status body: {len(body)} bytes; {args.connections} connections;"
          f" best of {args.rounds} rounds of {args.seconds:g}s; {os.cpu_count()} CPUs")
    print(f"importstate    {best['importstate']:8,.0f} requests/s")
    print(f"bare Starlette {best['bare Starlette']:8,.0f} requests/s")
    print(f"ratio {ratio:.2f}x (target >= {TARGET}x): {'met' if ratio >= TARGET else 'MISSED'}")


if __name__ == "__main__":
    main()
