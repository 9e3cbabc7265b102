"""The server's limits under load: slow clients, connections, large bodies, the event loop.

Each test runs a real ``importstate serve`` and measures it from outside:
its open connections, its peak resident memory (``/proc/PID/status``), the
latency of status polls.
"""

import asyncio
import json
import socket
import statistics
import threading
import time

import httpx
import pytest
from http_server import Server, add_user, headers


def user(n):
    return {"username": f"user{n:07d}", "emails": [f"user{n:07d}@example.com"],
            "importIds": [f"import-{n:07d}"], "name": f"User number {n}", "type": "user",
            "roles": ["user"]}


def users_body(count):
    return json.dumps({"users": [user(n) for n in range(count)]}).encode()


@pytest.fixture
def admin(tmp_path):
    db = tmp_path / "limits.db"
    return db, add_user(db, "admin", "run-import", "view-import-operations")


def half_sent(port, count):
    """``count`` connections that send half a request head and then nothing."""
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"GET /api/v1/import.status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sockets.append(sock)
    return sockets


def closed_by_server(sock):
    try:
        return sock.recv(1) == b""
    except OSError:
        return True


def test_slow_clients_are_cut_off_and_the_others_served(admin):
    """Finding 8: 300 half-sent requests neither hold their connections nor the server.

    With a header timeout of 1 s (10 s by default) the server closes each;
    a request sent meanwhile is answered at once.
    """
    db, credentials = admin
    with Server(db, options=["--header-timeout", "1"]) as server:
        sockets = half_sent(server.port, 300)
        started = time.monotonic()
        answer = httpx.get(server.url + "/api/v1/import.status", headers=headers(credentials),
                           timeout=10)
        assert answer.status_code == 200
        assert time.monotonic() - started < 1.0
        time.sleep(1.5)
        for sock in sockets:
            sock.settimeout(5)
        assert all(closed_by_server(sock) for sock in sockets)
        for sock in sockets:
            sock.close()
        assert server.descriptors() < 100


def test_a_connection_beyond_the_limit_gets_a_json_503(admin):
    db, credentials = admin
    with Server(db, options=["--max-connections", "20", "--header-timeout", "1"]) as server:
        sockets = half_sent(server.port, 20)
        refused = httpx.get(server.url + "/api/v1/import.status", headers=headers(credentials),
                            timeout=10)
        assert refused.status_code == 503
        assert refused.json()["success"] is False
        assert refused.headers["retry-after"] == "1"
        time.sleep(1.5)  # the half-sent ones are closed by now
        again = httpx.get(server.url + "/api/v1/import.status", headers=headers(credentials),
                          timeout=10)
        assert again.status_code == 200
        for sock in sockets:
            sock.close()


def staged_peak(server, api, body):
    """The server's peak resident memory while it stages ``body``, above what it held before."""
    api.post("import.new").raise_for_status()
    server.reset_peak()
    before = server.memory("VmRSS")
    api.post("import.addUsers", content=body).raise_for_status()
    return server.memory("VmHWM") - before


def test_a_ten_megabyte_body_costs_at_most_three_times_its_size(admin):
    """Finding 7: a 10 MB addUsers body cost about 195 MB of the server's memory."""
    db, credentials = admin
    body = users_body(58_000)
    assert 9.5e6 < len(body) < 10 * 1024 * 1024
    with Server(db) as server, httpx.Client(base_url=server.url + "/api/v1/",
                                            headers=headers(credentials), timeout=60) as api:
        api.post("import.new").raise_for_status()
        api.post("import.addUsers", content=users_body(2000)).raise_for_status()  # warm up
        grown = staged_peak(server, api, body)
        assert api.get("import.status").json()["operation"]["count"]["total"] == 58_000
    assert grown <= 3 * len(body), f"{grown / 1e6:.0f} MB for a {len(body) / 1e6:.0f} MB body"


def test_sixteen_large_bodies_at_once_are_bounded_by_the_body_slots(admin):
    """Finding 7: 16 bodies of 10 MB at once reached 3.3 GB; two are read at a time now."""
    db, credentials = admin
    body = users_body(58_000)
    with Server(db) as server:
        with httpx.Client(base_url=server.url + "/api/v1/", headers=headers(credentials),
                          timeout=60) as api:
            api.post("import.new").raise_for_status()
            api.post("import.addUsers", content=users_body(2000)).raise_for_status()
        server.reset_peak()
        before = server.memory("VmRSS")

        async def sixteen():
            async with httpx.AsyncClient(base_url=server.url + "/api/v1/",
                                         headers=headers(credentials), timeout=120) as client:
                return await asyncio.gather(*(client.post("import.addUsers", content=body)
                                              for _ in range(16)))

        answers = asyncio.run(sixteen())
        grown = server.memory("VmHWM") - before
    assert {a.status_code for a in answers} <= {200, 503}
    assert sum(a.status_code == 200 for a in answers) >= 2
    assert grown <= 8 * len(body), f"{grown / 1e6:.0f} MB for 16 bodies of {len(body) / 1e6:.0f} MB"


def test_status_polls_stay_fast_while_a_large_body_is_staged(admin):
    """Finding 7: status p99 <= 100 ms while a body of 300,000 users (50 MB) is staged.

    The report's 1M-user body stalled polls for 7 s; 300,000 users show the
    same stall on the old server (the parse held the interpreter for seconds)
    in a fraction of the time. The body is sent from a thread of its own, so
    that the polls measure the server, not this process's event loop.
    """
    db, credentials = admin
    body = users_body(300_000)
    options = ["--max-body", str(len(body) + 1)]
    with Server(db, options=options) as server, httpx.Client(
        base_url=server.url + "/api/v1/", headers=headers(credentials), timeout=120,
    ) as api:
        api.post("import.new").raise_for_status()
        staged = []
        sender = threading.Thread(target=lambda: staged.append(httpx.post(
            server.url + "/api/v1/import.addUsers", headers=headers(credentials),
            content=body, timeout=120)))
        sender.start()
        latencies = []
        while sender.is_alive():
            started = time.perf_counter()
            api.get("import.status").raise_for_status()
            latencies.append(time.perf_counter() - started)
            time.sleep(0.01)
        assert staged[0].status_code == 200
        assert api.get("import.status").json()["operation"]["count"]["total"] == 300_000
    assert len(latencies) >= 20
    p99 = statistics.quantiles(latencies, n=100)[98]
    assert p99 <= 0.100, f"p99 {p99 * 1000:.0f} ms over {len(latencies)} polls"


def test_a_kept_alive_request_is_not_held_for_a_delayed_ack(admin):
    """The listening socket is made before the database is opened, and asyncio turns
    Nagle's algorithm off only on sockets it made itself: each response's body waited
    for the client's delayed ACK, about 40 ms a request."""
    db, credentials = admin
    with Server(db) as server, httpx.Client(base_url=server.url + "/api/v1/",
                                            headers=headers(credentials), timeout=10) as api:
        api.get("import.status").raise_for_status()
        latencies = []
        for _ in range(30):
            started = time.perf_counter()
            api.get("import.status").raise_for_status()
            latencies.append(time.perf_counter() - started)
            time.sleep(0.005)
    assert statistics.median(latencies) < 0.020, f"{statistics.median(latencies) * 1000:.0f} ms"
