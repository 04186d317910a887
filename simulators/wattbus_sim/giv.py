"""A GivEnergy hybrid inverter with LV batteries behind a dongle on TCP (default 8899).

Speaks the dongle framing on its own (independent of the bridge's code, so the two check each
other): answers 60-register reads of holding/input registers at 0x11/0x31 (inverter) and
0x32+n (battery BMS), applies single-register writes, sends a heartbeat every --heartbeat-s and
closes a client that does not echo it within --heartbeat-timeout-s. Answers are split across
TCP writes and joined with heartbeats, as real dongles do. A small house model runs every
second: PV and load, the battery charges from surplus and discharges into the house down to
its reserve, the rest goes to or comes from the grid. With a `FlowProvider` (house_devices'
`--giv-port`) the flows, SOC and energy totals come from the provider instead, and accepted
holding-register writes are passed on to it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from .lifecycle import run

MARKER = b"\x59\x59\x00\x01"
ADAPTER = "WF2345G678"
INVERTER = "SA2345G678"
WRITABLE = {20, 27, 31, 32, 35, 36, 37, 38, 39, 40, 44, 45, 56, 57, 59, 94, 95, 96, 110, 111, 112, 116, 163}
LIMITS = {110: (4, 100), 116: (4, 100), 111: (0, 50), 112: (0, 50), 20: (0, 1), 27: (0, 1), 59: (0, 1), 96: (0, 1)}


def crc16(data: bytes) -> int:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def frame(fid: int, payload: bytes) -> bytes:
    return MARKER + (len(payload) + 2).to_bytes(2, "big") + bytes((1, fid)) + payload


def transparent(body: bytes) -> bytes:
    return frame(2, ADAPTER.encode() + (0x8A).to_bytes(8, "big") + body + crc16(body).to_bytes(2, "little"))


class FlowProvider(Protocol):
    """Where a provider-driven inverter takes its values from (W with the contract's signs, Wh totals)."""

    def pv_power_w(self) -> float: ...
    def load_power_w(self) -> float: ...
    def battery_power_w(self) -> float: ...  # + discharge, - charge
    def grid_power_w(self) -> float: ...  # + import, - export
    def battery_soc_pct(self) -> float: ...
    def energy_wh(self) -> dict[str, float]: ...  # keys pv, import, export, charge, discharge
    def holding_written(self, register: int, value: int) -> None: ...


@dataclass
class Battery:
    serial: str
    capacity_ah: float = 160.0
    soc: float = 60.0
    cycles: int = 120


@dataclass
class Inverter:
    batteries: list[Battery]
    hr: dict[int, int] = field(default_factory=dict)
    ir: dict[int, int] = field(default_factory=dict)
    pv_peak_w: float = 4000.0
    load_w: float = 450.0
    energy: dict[str, float] = field(default_factory=lambda: dict.fromkeys(
        ("pv", "import", "export", "charge", "discharge"), 0.0))
    provider: FlowProvider | None = None  # None: the built-in model below

    def __post_init__(self) -> None:
        for i, word in enumerate(_words(INVERTER)):
            self.hr[13 + i] = word
        self.hr.update({0: 0x2001, 3: 0x0201, 19: 449, 21: 449, 20: 0, 27: 1, 34: 300, 54: 1, 55: 160,
                        59: 0, 94: 30, 95: 430, 96: 0, 110: 4, 111: 50, 112: 50, 116: 100})
        self.step(0.0)

    def max_power_w(self) -> float:
        return 2600.0

    def step(self, dt: float) -> None:
        """Advance the house by dt seconds and refresh the input registers."""
        if self.provider is not None:
            self.refresh()  # the provider owns the clock and the model
            return
        now = datetime.now()
        hour = now.hour + now.minute / 60
        pv = max(0.0, math.sin(math.pi * (hour - 6) / 12)) * self.pv_peak_w
        load = self.load_w + 150 * math.sin(now.minute / 9.5)
        soc = sum(b.soc for b in self.batteries) / len(self.batteries) if self.batteries else 0.0
        reserve = self.hr.get(110, 4)
        charge_limit = self.hr.get(111, 50) / 50 * self.max_power_w()
        discharge_limit = self.hr.get(112, 50) / 50 * self.max_power_w()
        surplus = pv - load
        if surplus >= 0:
            battery = -min(surplus, charge_limit) if soc < 100 else 0.0  # charge from surplus
        else:
            eco_paused = self.hr.get(110) == 100
            battery = min(-surplus, discharge_limit) if soc > reserve and not eco_paused else 0.0
        grid = load - pv - battery  # + import
        capacity_wh = sum(b.capacity_ah for b in self.batteries) * 51.2 or 1.0
        for b in self.batteries:
            b.soc = min(100.0, max(0.0, b.soc - battery * dt / 3600 / capacity_wh * 100))
        for key, value in (("pv", pv), ("import", max(grid, 0)), ("export", max(-grid, 0)),
                           ("charge", max(-battery, 0)), ("discharge", max(battery, 0))):
            self.energy[key] += value * dt / 3600
        self._fill(pv, load, battery, grid, soc)

    def refresh(self) -> None:
        """Input registers from the provider's present values (a no-op without one)."""
        p = self.provider
        if p is None:
            return
        soc = min(100.0, max(0.0, p.battery_soc_pct())) if self.batteries else 0.0
        for b in self.batteries:
            b.soc = soc  # the packs share the provider's one battery
        self.energy.update(p.energy_wh())
        battery = p.battery_power_w() if self.batteries else 0.0
        self._fill(max(0.0, p.pv_power_w()), max(0.0, p.load_power_w()), battery, p.grid_power_w(), soc)

    def _fill(self, pv: float, load: float, battery: float, grid: float, soc: float) -> None:
        # signed powers (battery, grid, inverter) are two's complement words (& 0xFFFF)
        pv1, pv2 = pv * 0.55, pv * 0.45
        e = {k: int(v / 100) for k, v in self.energy.items()}  # 0.1 kWh units
        self.ir.update({0: 1, 1: 3200 if pv else 0, 2: 3100 if pv else 0, 5: 2405, 8: int(pv1 / 32),
                        9: int(pv2 / 31), 10: int(abs(grid) / 24), 13: 5001, 17: e["pv"] // 2, 18: int(pv1),
                        19: e["pv"] - e["pv"] // 2, 20: int(pv2), 24: int(pv + battery) & 0xFFFF,
                        25: e["export"], 26: e["import"], 30: int(-grid) & 0xFFFF, 31: 0, 35: 0,
                        36: e["charge"], 37: e["discharge"], 41: 312, 42: int(load), 44: e["pv"],
                        50: 5120, 51: int(battery / 51.2 * 100) & 0xFFFF, 52: int(battery) & 0xFFFF,
                        55: 280, 56: 215, 59: round(soc), 180: e["discharge"], 181: e["charge"]})
        for base, key in ((11, "pv"), (21, "export"), (32, "import"), (45, "pv"), (6, "charge")):
            self.ir[base], self.ir[base + 1] = divmod(e[key], 0x10000)

    def battery_block(self, index: int) -> list[int]:
        words = [0] * 60
        if index >= len(self.batteries):
            return words  # an empty slot answers zeros
        b = self.batteries[index]
        cell_mv = int(3200 + b.soc * 1.5)
        for i in range(16):
            words[i] = cell_mv + (i % 3)
        words[16:20] = [210, 212, 214, 211]
        words[20] = min(cell_mv * 16, 0xFFFF)
        words[21] = 230
        design = int(b.capacity_ah * 100)
        words[26], words[27] = divmod(design, 0x10000)
        words[28], words[29] = divmod(int(design * b.soc / 100), 0x10000)
        words[36], words[37], words[38] = b.cycles, 16, 3007
        words[40] = round(b.soc)
        words[43], words[44] = 215, 208
        for i, word in enumerate(_words(b.serial)):
            words[50 + i] = word
        return words

    def read(self, address: int, function: int, base: int, count: int) -> list[int] | None:
        self.refresh()  # a provider's values as they are when the request arrives
        if base % 60 + count > 60 or count == 0:
            return None
        if address >= 0x32 and function == 4 and base == 60:
            return self.battery_block(address - 0x32)
        if address in (0x11, 0x31, 0x32):
            bank = self.hr if function == 3 else self.ir
            return [bank.get(base + i, 0) for i in range(count)]
        return None

    def write(self, register: int, value: int) -> bool:
        low, high = LIMITS.get(register, (0, 0xFFFF))
        if register not in WRITABLE or not low <= value <= high:
            return False
        self.hr[register] = value
        if self.provider is not None:
            self.provider.holding_written(register, value)
        return True


def _words(text: str) -> list[int]:
    raw = text.encode().ljust(10, b"\x00")
    return [int.from_bytes(raw[i:i + 2], "big") for i in range(0, 10, 2)]


class Dongle:
    def __init__(self, inverter: Inverter, heartbeat_s: float, heartbeat_timeout_s: float, split: bool) -> None:
        self.inverter = inverter
        self.heartbeat_s = heartbeat_s
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.split = split
        self.clients = 0
        self.dropped_for_heartbeat = 0

    async def send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        if self.split and len(data) > 20 and random.random() < 0.5:
            cut = random.randint(1, len(data) - 1)
            writer.write(data[:cut])
            await writer.drain()
            await asyncio.sleep(0.01)
            data = data[cut:]
        writer.write(data)
        await writer.drain()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.clients += 1
        echoed = asyncio.Event()
        beat = asyncio.create_task(self.heartbeats(writer, echoed))
        buffer = b""
        try:
            while not beat.done():
                data = await reader.read(4096)
                if not data:
                    break
                buffer += data
                while (start := buffer.find(MARKER)) >= 0 and len(buffer) >= start + 6:
                    total = int.from_bytes(buffer[start + 4:start + 6], "big") + 6
                    if len(buffer) < start + total:
                        break
                    raw, buffer = buffer[start:start + total], buffer[start + total:]
                    if raw[7] == 1:
                        echoed.set()
                    elif raw[7] == 2 and len(raw) >= 34:
                        answer = self.answer(raw[26:-2], raw[-2:])
                        if answer:
                            await self.send(writer, answer)
        except (ConnectionError, OSError):
            pass
        finally:
            beat.cancel()
            self.clients -= 1
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def heartbeats(self, writer: asyncio.StreamWriter, echoed: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            echoed.clear()
            writer.write(frame(1, ADAPTER.encode() + b"\x01"))
            await writer.drain()
            try:
                await asyncio.wait_for(echoed.wait(), self.heartbeat_timeout_s)
            except TimeoutError:
                self.dropped_for_heartbeat += 1
                writer.close()  # what a real dongle does to a client that stops echoing
                return

    def answer(self, body: bytes, crc: bytes) -> bytes | None:
        if crc16(body).to_bytes(2, "little") != crc or len(body) != 6:
            return None  # real dongles stay silent on a corrupt request
        address, function = body[0], body[1]
        first, second = int.from_bytes(body[2:4], "big"), int.from_bytes(body[4:6], "big")
        serial = INVERTER.encode()
        if function in (3, 4):
            values = self.inverter.read(address, function, first, second)
            if values is None:
                return transparent(bytes((address, function | 0x80)) + serial + body[2:6])
            return transparent(bytes((address, function)) + serial + body[2:6]
                               + b"".join(v.to_bytes(2, "big") for v in values))
        if function == 6:
            if not self.inverter.write(first, second):
                return transparent(bytes((address, 0x86)) + serial + body[2:6])
            return transparent(bytes((address, 6)) + serial + body[2:6])
        return None


async def serve(host: str, port: int, batteries: int, heartbeat_s: float, heartbeat_timeout_s: float,
                split: bool = True, ready: asyncio.Event | None = None,
                holder: list[Dongle] | None = None) -> None:
    serials = ["BG2345G001", "DZ2345G002", "BE2345G003", "BJ2345G004", "AC2345G005", "BG2345G006"]
    inverter = Inverter([Battery(serials[i], soc=55.0 + 10 * i) for i in range(batteries)])
    dongle = Dongle(inverter, heartbeat_s, heartbeat_timeout_s, split)
    if holder is not None:
        holder.append(dongle)
    server = await asyncio.start_server(dongle.handle, host, port)
    print(f"GivEnergy dongle simulator on {host}:{port} ({batteries} batteries)", flush=True)
    if ready is not None:
        ready.set()
    async with server:
        while True:
            await asyncio.sleep(1.0)
            inverter.step(1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wattbus-sim giv", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8899)
    parser.add_argument("--batteries", type=int, default=2, choices=range(0, 7))
    parser.add_argument("--heartbeat-s", type=float, default=180.0)
    parser.add_argument("--heartbeat-timeout-s", type=float, default=5.0)
    parser.add_argument("--no-split", action="store_true", help="send every answer in one TCP write")
    args = parser.parse_args(argv)
    run(serve(args.host, args.port, args.batteries, args.heartbeat_s, args.heartbeat_timeout_s, not args.no_split))
    return 0
