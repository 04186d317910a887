"""Adoption figures: how fast a bridge polls a device after its discovery announcement, and how fast
it follows the device to a new address (DHCP), next to the same bridge starting with the device
configured (process start to first reading).

Real parts: Mosquitto with the project's ACL, the bridges as subprocesses, their simulators on
loopback; the announcement is published by the `discovery` broker user.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Message
from wattbus_sim.goe import GoeFirmware, SimCharger
from wattbus_sim.goe import build_app as goe_app

from tests.goe_shelly_bridge.conftest import serve_app
from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto, free_port, wait_port


@dataclass
class Case:
    bridge: str
    module: str
    protocol: m.Protocol
    device_id: str
    serial: str
    unit_id: int | None
    start_sim: Callable[[], Awaitable[tuple[int, Callable[[], Awaitable[None]]]]]
    section: str  # config section body without devices
    configured: Callable[[int], str]  # config lines for the device at a port


def _subprocess_sim(*args: str) -> Callable[[], Awaitable[tuple[int, Callable[[], Awaitable[None]]]]]:
    async def start() -> tuple[int, Callable[[], Awaitable[None]]]:
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "wattbus_sim", *args, "--port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port)

        async def stop() -> None:
            proc.terminate()
            proc.wait(10)
        return port, stop
    return start


async def _goe_sim() -> tuple[int, Callable[[], Awaitable[None]]]:
    served = await serve_app(goe_app(GoeFirmware(SimCharger(ramp_delay_s=0.0), serial="300001"), "v2"))
    return served.port, served.stop


CASES = [
    Case("sunspec-bridge", "wattbus_sunspec_bridge", "sunspec", "sma-3004512345", "3004512345", 126,
         _subprocess_sim("sunspec", "--profile", "sma", "--static"), "poll_interval_s = 1\n",
         lambda port: f'[[sunspec-bridge.devices]]\nhost = "127.0.0.1"\nport = {port}\nunit_ids = [126]\n'),
    Case("giv-bridge", "wattbus_giv_bridge", "givenergy", "givenergy-sa2345g678", "SA2345G678", None,
         _subprocess_sim("giv", "--batteries", "1"), "poll_interval_s = 1\nadopted_batteries = 1\n",
         lambda port: f'inverters = [{{ host = "127.0.0.1", port = {port}, batteries = 1 }}]\n'),
    Case("goe-shelly-bridge", "wattbus_goe_shelly_bridge", "goe", "goe-300001", "300001", None, _goe_sim,
         "poll_interval_s = 1\n", lambda port: f'[[goe-shelly-bridge.devices]]\nurl = "http://127.0.0.1:{port}"\n'),
]


async def _measure(broker: Mosquitto, case: Case, work: Path) -> tuple[float, float, float]:
    """(configured start to first reading, announcement to first reading, move to first reading) in s."""
    watcher = await started_bus(broker, "test-admin", instance=f"bench-{case.bridge}")
    discovery = await started_bus(broker, "discovery", instance=f"bench-{case.bridge}")
    readings: list[float] = []
    online = asyncio.Event()

    def on_reading(msg: Message[m.ReadingBase]) -> None:
        if msg.payload.device_id == case.device_id:
            readings.append(time.perf_counter())

    def on_availability(msg: Message[bytes]) -> None:
        if msg.payload == b"online" and not msg.retained:
            online.set()

    watcher.subscribe(f"{topics.PREFIX}/device/{case.bridge}/+/reading", m.Reading, on_reading)
    watcher.subscribe(topics.service_availability(case.bridge, "main"), bytes, on_availability)
    first_port, stop_first = await case.start_sim()
    second_port, stop_second = await case.start_sim()
    env = {**os.environ, **broker.env(case.bridge), "PYTHONUNBUFFERED": "1"}

    def run(config_text: str, name: str) -> subprocess.Popen[bytes]:
        path = work / f"{case.bridge}-{name}.toml"
        path.write_text(f"[{case.bridge}]\nstatus_interval_s = 1\n{case.section}{config_text}")
        return subprocess.Popen([sys.executable, "-m", case.module, "--config", str(path)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def announce(port: int) -> None:
        discovery.publish(topics.discovery(case.device_id), m.DeviceAnnouncement(
            device_id=case.device_id, protocol=case.protocol, address="127.0.0.1", port=port, unit_id=case.unit_id,
            serial=case.serial), retain=True)

    try:
        t0 = time.perf_counter()
        proc = run(case.configured(first_port), "configured")
        await until(lambda: bool(readings), 60, "configured reading")
        configured_s = readings[0] - t0
        proc.terminate()
        proc.wait(10)
        readings.clear()
        online.clear()
        proc = run("adopt = true\n", "adopt")
        await asyncio.wait_for(online.wait(), 30)
        await asyncio.sleep(1.0)  # settled: the bridge is subscribed and idle
        t0 = time.perf_counter()
        announce(first_port)
        await until(lambda: bool(readings), 60, "adopted reading")
        adopt_s = readings[0] - t0
        await stop_first()
        await asyncio.sleep(1.5)  # the old address is dead
        count = len(readings)
        t0 = time.perf_counter()
        announce(second_port)
        await until(lambda: len(readings) > count, 60, "reading after the move")
        move_s = readings[count] - t0
        proc.terminate()
        proc.wait(10)
    finally:
        discovery.publish(topics.discovery(case.device_id), b"", retain=True)
        await stop_second()
        await discovery.stop()
        await watcher.stop()
    return configured_s, adopt_s, move_s


async def _run() -> list[tuple[str, float, float, float]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-adoption-") as tmp:
        broker = Mosquitto(Path(tmp))
        broker.start()
        try:
            for case in CASES:
                rows.append((case.bridge, *await _measure(broker, case, Path(tmp))))
        finally:
            broker.stop()
    return rows


def main() -> str:
    rows = asyncio.run(_run())
    lines = ["| bridge | configured: process start to 1st reading | announcement to 1st reading "
             "| DHCP move: new announcement to 1st reading |", "|---|---|---|---|"]
    lines += [f"| {bridge} | {c * 1000:.0f} ms | {a * 1000:.0f} ms | {mv * 1000:.0f} ms |" for bridge, c, a, mv in rows]
    table = "\n".join(lines)
    print(table)
    return table


if __name__ == "__main__":
    main()
