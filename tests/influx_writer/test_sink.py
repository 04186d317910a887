"""The sink on influxdb-client against the real servers: gzip bodies on both APIs, retries that
honour (and cap) a server's Retry-After, refusals that are not retried. The throttling answer
comes from a small gate in front of a real VictoriaMetrics: it answers the first request(s)
503 + Retry-After and passes the rest through unchanged."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import pytest
from wattbus_influx_writer import lineproto
from wattbus_influx_writer.config import Config
from wattbus_influx_writer.sink import Outcome, Sink

from tests.influx_writer.helpers import (
    PUBLISHER,
    StatusWatch,
    influx_count,
    meter_readings,
    publish,
    victoria_count,
    write_config,
    writer_env,
)
from tests.support.bus_helpers import started_bus, until
from tests.support.servers import InfluxDB1, Mosquitto, VictoriaMetrics, free_port


def _config(**values: Any) -> Config:
    return msgspec.convert({"spool_dir": "/nonexistent", "dead_letter_file": "/nonexistent", **values}, Config)


def _body(device: str, count: int) -> bytes:
    return "".join(line for r in meter_readings(count, device) for line in lineproto.encode(r, "sink-test")).encode()


@pytest.mark.parametrize("api", ["v1", "v2"])
async def test_gzip_bodies_are_stored(api: str, influxdb: InfluxDB1, victoria: VictoriaMetrics) -> None:
    device = f"gzip-{api}"
    if api == "v1":
        config = _config(url=influxdb.url, api="v1", database="gzip", create_database=True, gzip=True)
    else:
        config = _config(url=victoria.url, api="v2", bucket="gzip", org="home", gzip=True)
    async with Sink(config) as sink:
        if api == "v1":
            assert (await sink.create_database()).outcome is Outcome.OK
        result = await sink.write(_body(device, 300))
    assert result.outcome is Outcome.OK, result
    stored = (influx_count(influxdb, "gzip", device) if api == "v1"
              else victoria_count(victoria, "meter_power_w", device_id=device))
    assert stored == 300


class _Gate(http.server.BaseHTTPRequestHandler):
    """503 + Retry-After for the first `refuse` requests, then a pass-through to `upstream`."""

    upstream = ""
    url = ""
    refuse = 0
    retry_after = "1"
    seen: ClassVar[list[float]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen.append(time.monotonic())
        if len(self.seen) <= self.refuse:
            self.send_response(503)
            self.send_header("Retry-After", self.retry_after)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        request = urllib.request.Request(self.upstream + self.path, data=body, method="POST",
                                         headers={k: v for k, v in self.headers.items() if k.lower() != "host"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            status, answer = resp.status, resp.read()
        self.send_response(status)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def gate(victoria: VictoriaMetrics) -> Iterator[type[_Gate]]:
    handler = type("Gate", (_Gate,), {"upstream": victoria.url, "seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield handler
    server.shutdown()
    server.server_close()


async def test_retry_after_is_honoured_then_the_write_lands(gate: type[_Gate], victoria: VictoriaMetrics) -> None:
    gate.refuse, gate.retry_after = 1, "1"
    retries: list[int] = []
    config = _config(url=gate.url, api="v2", bucket="b", org="home", retry_min_s=0.1, retry_max_s=5)
    async with Sink(config, on_retry=lambda: retries.append(1)) as sink:
        result = await sink.write(_body("throttled", 50))
    assert result.outcome is Outcome.OK, result
    assert len(gate.seen) == 2 and gate.seen[1] - gate.seen[0] >= 0.95  # waited the server's second
    assert retries == [1]
    assert victoria_count(victoria, "meter_power_w", device_id="throttled") == 50


async def test_a_long_retry_after_is_capped_and_then_spooled(gate: type[_Gate]) -> None:
    """Retry-After: 3600 waits retry_max_s, not an hour; once the retries are used up (timeout_s
    bounds them) the write is UNAVAILABLE, for the pipeline to spool."""
    gate.refuse, gate.retry_after = 100, "3600"
    config = _config(url=gate.url, api="v2", bucket="b", org="home", retry_min_s=0.1, retry_max_s=0.5,
                     timeout_s=2)
    async with Sink(config) as sink:
        started = time.monotonic()
        result = await sink.write(_body("capped", 5))
        took = time.monotonic() - started
    assert result.outcome is Outcome.UNAVAILABLE and result.status == 503, result
    assert 2 <= len(gate.seen) <= 6 and took < 5, (len(gate.seen), took)


async def test_no_retry_when_asked_and_nothing_listens() -> None:
    config = _config(url=f"http://127.0.0.1:{free_port()}", api="v1", database="x", retry_min_s=1, retry_max_s=2)
    async with Sink(config) as sink:
        started = time.monotonic()
        result = await sink.write(b"m v=1 1\n", retry=False)
        assert time.monotonic() - started < 1
    assert result.outcome is Outcome.UNAVAILABLE and result.status is None
    assert "Connection refused" in result.message or "NewConnectionError" in result.message, result.message


async def test_v1_login_refused_is_unavailable_not_rejected(tmp_path: Path) -> None:
    """401/403 are not the data's fault: the batch waits in the spool (not split, not dead-lettered)."""
    (tmp_path / "auth").mkdir()
    server = InfluxDB1(tmp_path / "auth")
    server.conf.write_text(server.conf.read_text().replace("[http]\n", "[http]\n  auth-enabled = true\n"))
    server.start()
    try:
        # The first admin user may be created without credentials; from then on every request needs them.
        create = urllib.parse.urlencode({"q": "CREATE USER admin WITH PASSWORD 'secret' WITH ALL PRIVILEGES"})
        request = urllib.request.Request(f"{server.url}/query?{create}", method="POST")
        urllib.request.urlopen(request, timeout=10).close()
        config = _config(url=server.url, api="v1", database="x", username="admin", password="wrong")
        async with Sink(config) as sink:
            result = await sink.write(b"m v=1 1\n", retry=False)
        assert result.outcome is Outcome.UNAVAILABLE and result.status in (401, 403), result
    finally:
        server.stop()


async def test_stop_ends_the_retries_of_the_write_under_way(gate: type[_Gate]) -> None:
    """A server that keeps answering 503 + Retry-After: the write would retry for a while; the stop
    (from the event loop, while the write runs in its thread) ends it after the current attempt."""
    gate.refuse, gate.retry_after = 100, "3600"
    config = _config(url=gate.url, api="v2", bucket="b", org="home", retry_min_s=5, retry_max_s=20, timeout_s=60)
    async with Sink(config) as sink:
        started = time.monotonic()
        writing = asyncio.ensure_future(sink.write(_body("stopping", 5)))
        await asyncio.sleep(0.5)
        assert not writing.done()
        sink.stop_retrying()
        result = await writing
        took = time.monotonic() - started
        again = await sink.write(_body("stopping", 5))  # after the stop: one attempt
    assert result.outcome is Outcome.UNAVAILABLE and took < 2, (result, took)
    assert again.outcome is Outcome.UNAVAILABLE and len(gate.seen) <= 3, len(gate.seen)


async def test_writer_stops_promptly_while_the_database_refuses(broker: Mosquitto, gate: type[_Gate], tmp_path: Path,
                                                               start_service: Callable[..., Any]) -> None:
    """The whole service: readings in memory while every write is refused; SIGTERM spools them
    (acknowledged from disk) and the process ends in seconds, not after its retries."""
    gate.refuse, gate.retry_after = 10**6, "3600"
    conf = write_config(tmp_path, "w", url=gate.url, api="v2", bucket="b", org="home", instance="refused",
                        retry_min_s=5, retry_max_s=20, timeout_s=60)
    watch = StatusWatch()
    admin = await started_bus(broker, "test-admin", "watch-refused")
    watch.attach(admin)
    writer = start_service("wattbus_influx_writer", "--config", str(conf), env=writer_env(broker))
    pub = await started_bus(broker, PUBLISHER, "refused")
    try:
        await until(lambda: "ingest connected" in writer.output(), 30, "the writer connected")
        publish(pub, meter_readings(200, "meter-refused"))
        await until(lambda: watch.counter("received", "refused") >= 200 and len(gate.seen) >= 1, 30,
                    "readings in the writer, a write under way")
        started = time.monotonic()
        writer.proc.terminate()
        assert writer.proc.wait(15) == 0, writer.output()
        assert time.monotonic() - started < 8, writer.output()[-3000:]
        spooled = sum(p.read_bytes().count(b"\n") for p in (tmp_path / "w" / "spool").glob("*.lp"))
        assert spooled == 200  # every reading's point waits on disk, once
    finally:
        await pub.stop()
        await admin.stop()
