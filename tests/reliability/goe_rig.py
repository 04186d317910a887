"""The goe-shelly-bridge as a real subprocess against go-e simulators (real HTTP on loopback) and a
real broker: what the rogue-command, flood and device-fault scenarios share."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from wattbus import codec, topics
from wattbus import messages as m
from wattbus.bus import Bus, Message
from wattbus_sim.goe import GoeFirmware, SimCharger
from wattbus_sim.goe import build_app as goe_app

SOURCE = "goe-shelly-bridge"
STATUS = topics.service_status(SOURCE, "main")


@dataclass
class Watch:
    """The bridge's topics as test-admin sees them through the broker."""

    readings: dict[str, int] = field(default_factory=dict)
    availability: dict[str, str] = field(default_factory=dict)
    meta: dict[str, m.DeviceMeta] = field(default_factory=dict)
    status: m.ServiceStatus | None = None
    service_availability: str | None = None

    def __call__(self, msg: Message[bytes]) -> None:
        parsed = topics.parse(msg.topic)
        if parsed.area == "service":
            if parsed.leaf == "status":
                self.status = codec.decode(msg.payload, m.ServiceStatus)
            elif parsed.leaf == "availability":  # not a bridge replica's lease
                self.service_availability = msg.payload.decode()
            return
        ident = parsed.ident or ""
        if parsed.leaf == "reading":
            self.readings[ident] = self.readings.get(ident, 0) + 1
        elif parsed.leaf == "availability":
            self.availability[ident] = msg.payload.decode()
        elif parsed.leaf == "meta":
            self.meta[ident] = codec.decode(msg.payload, m.DeviceMeta)

    def counter(self, name: str) -> int:
        return self.status.counters.get(name, 0) if self.status else 0

    def uptime(self) -> float:
        return self.status.uptime_s if self.status else -1.0


def watch(bus: Bus) -> Watch:
    seen = Watch()
    bus.subscribe(f"{topics.PREFIX}/device/{SOURCE}/#", bytes, seen)
    bus.subscribe(f"{topics.PREFIX}/service/{SOURCE}/main/+", bytes, seen)
    return seen


@dataclass
class SimCharger1:
    """One simulated go-e Charger (API v2) on its own loopback port."""

    firmware: GoeFirmware
    port: int
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def device_id(self) -> str:
        return f"goe-{self.firmware.serial}"

    async def start(self) -> None:
        """Listen on self.port; port 0 takes a free one from the kernel (no race between many
        simulators picking ports) and keeps it, so a restart comes back on the same port."""
        self.runner = web.AppRunner(goe_app(self.firmware, "v2"))
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        if self.port == 0:
            self.port = int(self.runner.addresses[0][1])

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


async def chargers(count: int, max_current_a: int = 32, first_serial: int = 200000) -> list[SimCharger1]:
    sims = [SimCharger1(GoeFirmware(SimCharger(ramp_delay_s=0.0), serial=str(first_serial + i),
                                    max_current_a=max_current_a), 0) for i in range(count)]
    await asyncio.gather(*(s.start() for s in sims))
    return sims


def bridge_config(tmp_path: Path, sims: list[SimCharger1], poll_s: float = 0.3, **device: Any) -> Path:
    lines = ["[goe-shelly-bridge]", f"poll_interval_s = {poll_s}", "timeout_s = 1.0", "max_backoff_s = 1.0",
             "status_interval_s = 1", "confirm_timeout_s = 5.0"]
    for sim in sims:
        lines += ["[[goe-shelly-bridge.devices]]", f'url = "{sim.url}"',
                  *(f"{k} = {v}" for k, v in device.items())]
    path = tmp_path / "goe.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")
