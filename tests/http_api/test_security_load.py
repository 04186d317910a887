"""Issue #21, item 7 (http-api): 1100 slow partial requests (slowloris) made every request time out
for 85 s with `Too many open files` and 257 MB of log in 90 s. The http-api runs here as a real
process under the soft open-files limit of a default systemd service (1024), on a real broker."""

from __future__ import annotations

import contextlib
import re
import resource
import socket
import statistics
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.http_api.conftest import HttpApi
from tests.http_api.raw import OTHER, send
from tests.support.servers import Mosquitto, free_port, wait_port

SLOW = 1100
TOKEN = "load-token"


@pytest.fixture
def limited_api(broker: Mosquitto, tmp_path: Path, start_service: Any) -> tuple[int, Any]:
    """The http-api under a soft limit of 1024 open files (inherited: lowered only while it starts)."""
    port = free_port()
    config = tmp_path / "wattbus.toml"
    config.write_text(f'[http-api]\nports = [{port}]\ntoken = "{TOKEN}"\nstatus_interval_s = 1\n')
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
    try:
        proc = start_service("wattbus_http_api", "--config", str(config), env=broker.env("http-api"))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    wait_port(port, 30)
    limits = Path(f"/proc/{proc.proc.pid}/limits").read_text()
    assert re.search(r"Max open files\s+1024\s", limits), limits
    return port, proc


def open_slow(port: int, count: int, into: list[socket.socket]) -> None:
    """Connections that send the start of a request and never finish its headers."""
    for _ in range(count):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        except OSError:
            continue  # the server closed it under us: the attacker just opens the next one
        into.append(sock)


def timed_get(port: int, path: str) -> tuple[int, float]:
    started = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        resp.read()
        return resp.status, time.monotonic() - started


def test_slowloris_does_not_starve_a_normal_request(limited_api: tuple[int, Any],
                                                   record_property: Callable[[str, object], None]) -> None:
    port, proc = limited_api
    slow: list[socket.socket] = []
    try:
        open_slow(port, SLOW, slow)
        # More keep coming while a person uses the API (the attacker reopens what gets closed).
        churn = threading.Thread(target=open_slow, args=(port, SLOW, slow), daemon=True)
        churn.start()
        latencies = []
        for n in range(40):
            path = "/api/v1/status" if n % 2 else "/"
            status, seconds = timed_get(port, path)
            assert status == 200, path
            latencies.append(seconds)
            for sock in slow[:50]:  # the attack trickles on; closed sockets just fail
                with contextlib.suppress(OSError):
                    sock.send(b"a")
            time.sleep(0.1)
        config_read = send(port, "GET", "/api/v1/setup/sections/http-api", token=TOKEN)
        assert config_read.status == 200 and config_read.doc["values"]["token"] == "set", config_read
        churn.join(60)
        opened = len(slow)
    finally:
        for sock in slow:
            sock.close()
    text = proc.output()
    assert "Too many open files" not in text
    record_property("slowloris", f"{opened} slow connections opened; normal requests: median "
                                 f"{statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms; "
                                 f"log {len(text.encode())} bytes")
    assert max(latencies) < 1.0, [round(x, 3) for x in latencies]
    assert len(text.encode()) < 64 * 1024, "the attack filled the log"
    evicted = [line for line in text.splitlines() if "connection cap reached" in line]
    assert evicted and len(evicted) <= 4, evicted


def open_stream(port: int, source: str = "127.0.0.1") -> tuple[socket.socket, bytes]:
    """An event stream (the live view's connection, never evicted): the socket and its status line."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    sock.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return sock, sock.recv(4096).split(b"\r\n", 1)[0]


def test_event_streams_cannot_fill_the_connection_cap(http_api: Callable[..., HttpApi]) -> None:
    """A stream holds its slot (never evicted): 8 per address and a quarter of all slots at most."""
    api = http_api("[http-api.limits]\nmax_connections = 40\n")  # streams: 10 in all
    streams: list[socket.socket] = []
    try:
        for _ in range(8):
            sock, status = open_stream(api.port)
            streams.append(sock)
            assert status == b"HTTP/1.1 200 OK", status
        sock, status = open_stream(api.port)
        streams.append(sock)
        assert status.startswith(b"HTTP/1.1 429"), status
        for expected in (b"HTTP/1.1 200", b"HTTP/1.1 200", b"HTTP/1.1 503"):  # 10 open: the rest wait
            sock, status = open_stream(api.port, OTHER)
            streams.append(sock)
            assert status.startswith(expected), status
        assert timed_get(api.port, "/api/v1/status")[0] == 200  # the slots left serve requests
    finally:
        for sock in streams:
            sock.close()
    # Closed streams give their places back.
    time.sleep(1.0)  # the server notices a closed stream at its next write (push_interval_s)
    sock, status = open_stream(api.port)
    sock.close()
    assert status == b"HTTP/1.1 200 OK", status
