"""Faults on real processes: a device that hangs or vanishes, the broker killed mid-stream.

The goe-shelly-bridge runs as a subprocess; go-e simulators answer real HTTP on loopback.
Expected: the device goes offline and comes back, the service never exits, its heartbeat goes on.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web
from wattbus import messages as m
from wattbus import topics

from tests.reliability.goe_rig import SOURCE, bridge_config, chargers, watch
from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto


async def _hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept the connection, read the request, never answer (a device whose HTTP task froze)."""
    try:
        await reader.read(65536)
        await asyncio.sleep(3600)
    finally:
        writer.close()


async def _serve_garbage(port: int) -> web.AppRunner:
    async def junk(request: web.Request) -> web.Response:
        body = b'{"sse": "200000", "car": "charging?", "nrg": {"not": "a list"}, "amp": [' if "api" in request.path \
            else b"\x00\xff<html>502 Bad Gateway"
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", junk)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def test_device_hangs_then_vanishes_then_returns(broker: Mosquitto, start_service: Any,
                                                       tmp_path: Path) -> None:
    sims = await chargers(2)
    sick, healthy = sims
    admin = await started_bus(broker, "test-admin", "faults")
    seen = watch(admin)
    proc = start_service("wattbus_goe_shelly_bridge", "--config", str(bridge_config(tmp_path, sims)),
                         env=broker.env(SOURCE))
    try:
        await until(lambda: all(seen.availability.get(s.device_id) == "online" for s in sims), 30, "both online")

        await sick.stop()
        hung = await asyncio.start_server(_hang, "127.0.0.1", sick.port)
        await until(lambda: seen.availability.get(sick.device_id) == "offline", 30, "hung device offline")
        count = seen.readings.get(healthy.device_id, 0)
        await until(lambda: seen.readings.get(healthy.device_id, 0) >= count + 3, 20,
                    "the healthy device keeps publishing while the other hangs")

        hung.close()
        await hung.wait_closed()
        # Garbage: the port answers HTTP 200 with bytes that are not a go-e document.
        rejected = seen.counter("responses_rejected")
        garbage = await _serve_garbage(sick.port)
        await until(lambda: seen.counter("responses_rejected") >= rejected + 2, 30, "garbage answers counted")
        assert seen.availability.get(sick.device_id) == "offline"
        await garbage.cleanup()  # now nothing listens: connection refused
        uptime = seen.uptime()
        await until(lambda: seen.uptime() > uptime + 2, 20, "heartbeat goes on with the device gone")
        assert seen.availability.get(sick.device_id) == "offline"

        await sick.start()
        await until(lambda: seen.availability.get(sick.device_id) == "online", 30, "device back online")
        assert proc.proc.poll() is None, proc.output()[-2000:]
        assert seen.counter("poll_failures") >= 2
        assert seen.service_availability == m.ONLINE
    finally:
        await admin.stop()
        for sim in sims:
            await sim.stop()


async def test_broker_killed_mid_stream(private_broker: Mosquitto, start_service: Any, tmp_path: Path) -> None:
    sims = await chargers(1)
    dev = sims[0].device_id
    admin = await started_bus(private_broker, "test-admin", "restart")
    seen = watch(admin)
    proc = start_service("wattbus_goe_shelly_bridge", "--config", str(bridge_config(tmp_path, sims)),
                         env=private_broker.env(SOURCE))
    try:
        await until(lambda: seen.readings.get(dev, 0) >= 3, 30, "readings before the broker dies")
        private_broker.stop(kill=True)
        await asyncio.sleep(2)  # the outage itself (not a wait for a condition)
        private_broker.start()
        # test-admin reconnects too; the broker had no persistence, so meta/availability it now
        # holds were re-published by the bridge after its reconnect.
        seen.meta.clear()
        seen.availability.clear()
        count = seen.readings.get(dev, 0)
        await until(lambda: seen.readings.get(dev, 0) >= count + 3, 40, "readings after the broker restart")
        await until(lambda: dev in seen.meta and seen.availability.get(dev) == "online", 20,
                    "retained meta and availability restored")
        await until(lambda: seen.counter("reconnects") >= 1, 20, "bridge counted its reconnect")
        assert proc.proc.poll() is None
        # Commands work over the new connection.
        result = await admin.request(topics.device_command(SOURCE, dev), m.SetChargeCurrent(current_a=8), timeout=20)
        assert result.status == "ok", result
    finally:
        await admin.stop()
        await sims[0].stop()
