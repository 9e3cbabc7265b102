"""REST benchmark: ``GET /api/v1/import.status`` of ``importstate serve`` against bare Starlette.

Both servers run as uvicorn subprocesses with the same settings (access
log on, written to /dev/null); the bare one answers a constant JSON body of
exactly the size importstate's status answer has. One client (raw HTTP/1.1
keep-alive over several connections, so the client is not the bottleneck)
drives both, alternating rounds; the best round of each counts.

Target (issue "importstate serve"): importstate >= 0.5x the bare endpoint.

Then ``uploadImportFile`` of a generated CSV zip (about 50 MB): the time from
sending the upload to ``getImportFileData`` offering the selection, against
``ImportService.load_file`` of the same file in this process (target <= 1.5x),
and the server's peak memory growth while it takes and loads the upload
(``VmHWM`` after Linux's ``clear_refs``; target <= 3x the request body).

Usage: python benchmarks/bench_http.py [--seconds S] [--rounds N] [--connections C]
                                       [--upload-messages N] [--only-upload]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from importstate import ImportService, SQLiteStore
from importstate.loaders.samples import write_csv_export

TARGET = 0.5
UPLOAD_TIME_TARGET = 1.5
UPLOAD_MEMORY_TARGET = 3.0
#: The uploaded export's users and channels; its messages make up its size.
UPLOAD_USERS, UPLOAD_CHANNELS = 20_000, 500

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


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def upload(messages: int) -> None:
    """Report ``uploadImportFile`` of a CSV zip against ``load_file`` in process."""
    with tempfile.TemporaryDirectory(prefix="importstate-bench-") as scratch:
        folder = Path(scratch)
        export = write_csv_export(folder / "export.zip", users=UPLOAD_USERS,
                                  channels=UPLOAD_CHANNELS, messages=messages)
        size = Path(export.path).stat().st_size
        service = ImportService(SQLiteStore(folder / "local.db"), {"csv": lambda _user: None})
        started = time.perf_counter()
        loaded = service.load_file(export.path, "csv")
        local = time.perf_counter() - started
        assert loaded.status == "importer_user_selection", loaded
        service.store.close()

        db = folder / "served.db"
        headers = prepare(db)
        body = json.dumps({
            "binaryContent": base64.b64encode(Path(export.path).read_bytes()).decode(),
            "contentType": "application/zip", "fileName": "export.zip", "importerKey": "csv",
        }).encode()
        port = free_port()
        server = start([sys.executable, "-m", "importstate", "serve", "--db", str(db),
                        "--port", str(port), "--max-body", str(2 * len(body))], port)
        try:
            api = f"http://127.0.0.1:{port}/api/v1/"
            before = _kib(server.pid, "VmRSS")
            Path(f"/proc/{server.pid}/clear_refs").write_text("5")
            with httpx.Client(headers=headers, timeout=600) as client:
                started = time.perf_counter()
                answer = client.post(api + "uploadImportFile", content=body,
                                     headers={"Content-Type": "application/json"})
                assert answer.json() == {"success": True}, answer.text
                while (data := client.get(api + "getImportFileData").json()).get("waiting"):
                    loading = (_kib(server.pid, "VmHWM") - before) / 1024
                    time.sleep(0.25)
                served = time.perf_counter() - started
            assert data["message_count"] == export.messages, data.get("message_count")
            growth = (_kib(server.pid, "VmHWM") - before) / 1024
        finally:
            server.terminate()
            server.wait()
    ratio = served / local
    body_mib = len(body) / 2**20
    print(f"\nuploadImportFile of a {size / 2**20:,.1f} MiB CSV zip ({export.records:,} records;"
          f" a {body_mib:,.1f} MiB body): selection ready in {served:.1f}s, load_file in"
          f" process {local:.1f}s: {ratio:.2f}x (target <= {UPLOAD_TIME_TARGET}x)"
          f" {'met' if ratio <= UPLOAD_TIME_TARGET else 'MISSED'}")
    print(f"server peak memory growth: {growth:,.0f} MiB ({loading:,.0f} MiB while loading),"
          f" {growth / body_mib:.2f}x the body"
          f" (target <= {UPLOAD_MEMORY_TARGET}x)"
          f" {'met' if growth <= UPLOAD_MEMORY_TARGET * body_mib else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="length of one round")
    parser.add_argument("--rounds", type=int, default=6, help="rounds per server")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections")
    parser.add_argument("--upload-messages", type=int, default=6_300_000,
                        help="messages of the uploaded CSV zip (6,300,000: about 50 MB)")
    parser.add_argument("--only-upload", action="store_true", help="the upload alone")
    args = parser.parse_args()
    if args.only_upload:
        upload(args.upload_messages)
        return

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
    upload(args.upload_messages)


if __name__ == "__main__":
    main()
