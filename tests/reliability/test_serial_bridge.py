"""Fault: a network serial bridge (ser2net / WiFi IR head, `socket://host:port`) that drops.

The sml-reader reads a real DSMR telegram streamed by a TCP server on loopback; the server then
closes every connection and stops listening. Expected: the meter goes offline, the service keeps
running, and readings resume once the bridge is back on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from wattbus import topics
from wattbus.bus import Message

from tests.support.bus_helpers import started_bus, until
from tests.support.servers import ROOT, Mosquitto, free_port

TELEGRAM = (ROOT / "tests" / "sml_reader" / "data" / "dsmr" / "iskra_v5.txt").read_bytes()


class SerialBridge:
    """Streams the telegram to every client every 0.5 s, like ser2net with a P1 port behind it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

    async def _client(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            while True:
                writer.write(TELEGRAM)
                await writer.drain()
                await asyncio.sleep(0.5)
        except (ConnectionError, RuntimeError):
            return  # the reader went away or we closed the connection: the bridge just stops
        finally:
            self.writers.discard(writer)

    async def drop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.transport.abort()  # RST, like a WiFi bridge losing power
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.server.wait_closed(), 5)
        self.server = None


async def test_network_serial_bridge_drops(broker: Mosquitto, start_service: Any, tmp_path: Path) -> None:
    bridge = SerialBridge(free_port())
    await bridge.start()
    config = tmp_path / "sml.toml"
    config.write_text(f'[sml-reader]\nstatus_interval_s = 1\n[[sml-reader.meters]]\nkey = "p1"\nformat = "dsmr"\n'
                      f'port = "socket://127.0.0.1:{bridge.port}"\noffline_after_s = 2\n')
    admin = await started_bus(broker, "test-admin", "ser2net")
    readings: dict[str, int] = {}
    availability: dict[str, str] = {}

    def seen(msg: Message[bytes]) -> None:
        parsed = topics.parse(msg.topic)
        if parsed.leaf == "reading":
            readings[parsed.ident or ""] = readings.get(parsed.ident or "", 0) + 1
        elif parsed.leaf == "availability":
            availability[parsed.ident or ""] = msg.payload.decode()

    admin.subscribe(f"{topics.PREFIX}/device/sml-reader/+/+", bytes, seen)
    proc = start_service("wattbus_sml_reader", "--config", str(config), env=broker.env("sml-reader"))
    try:
        await until(lambda: any(n >= 2 for n in readings.values()), 30, "readings through the serial bridge")
        meter = max(readings, key=lambda k: readings[k])
        await bridge.drop()
        await until(lambda: availability.get(meter) == "offline", 30, "meter offline after the drop")
        assert proc.proc.poll() is None, proc.output()[-2000:]
        await bridge.start()
        count = readings[meter]
        await until(lambda: readings[meter] >= count + 2 and availability.get(meter) == "online", 60,
                    "readings again after the bridge returned")
        assert proc.proc.poll() is None
    finally:
        await admin.stop()
        if bridge.server is not None:
            await bridge.drop()
