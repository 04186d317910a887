"""A GivEnergy hybrid inverter with LV batteries behind a dongle on TCP (default 8899).

Speaks the dongle framing on its own (independent of the bridge's code, so the two check each
other): answers 60-register reads of holding/input registers at 0x11/0x31 (inverter) and
0x32+n (battery BMS), applies single-register writes, sends a heartbeat every --heartbeat-s and
closes a client that does not echo it within --heartbeat-timeout-s. Answers are split across
TCP writes and joined with heartbeats, as real dongles do. A small house model runs every
second (`--speed` times faster for the energy model only): PV and load, the battery charges
from surplus (and from the grid inside an enabled charge slot, up to the charge target),
discharges into the house down to its reserve (or exports inside a timed-export slot), the
rest goes to or comes from the grid. Like a commissioned inverter it has a running clock
(HR 35-40, host local time, settable by writing them), lifetime counters that start from a
plausible history and rise, today's counters that restart at local midnight, and batteries
with a calibrated capacity. With a `FlowProvider` (house_devices'
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
from datetime import date, datetime, timedelta
from typing import Protocol

from .lifecycle import run

MARKER = b"\x59\x59\x00\x01"
ADAPTER = "WF2345G678"
INVERTER = "SA2345G678"
WRITABLE = {20, 27, 31, 32, 35, 36, 37, 38, 39, 40, 44, 45, 50, 56, 57, 59, 94, 95, 96, 110, 111, 112, 114, 116, 163}
LIMITS = {110: (4, 100), 116: (4, 100), 111: (0, 50), 112: (0, 50), 20: (0, 1), 27: (0, 1), 59: (0, 1), 96: (0, 1),
          50: (0, 100), 114: (4, 100), 35: (0, 99), 36: (1, 12), 37: (1, 31), 38: (0, 23), 39: (0, 59), 40: (0, 59)}
CLOCK = range(35, 41)  # year-2000, month, day, hour, minute, second
# Lifetime totals (Wh) the inverter has counted before the simulator starts: a commissioned
# unit never reports zeros (GivTCP refuses an all-zero total as a bad read).
HISTORY_WH = {"pv": 8_123_400.0, "import": 3_456_700.0, "export": 2_345_600.0, "charge": 1_500_200.0,
              "discharge": 1_400_100.0, "ac_charge": 312_300.0}
KEYS = tuple(HISTORY_WH)
# A typical day (Wh): started mid-day, today's counters show the part of it already gone by.
DAY_WH = {"pv": 9_000.0, "import": 6_000.0, "export": 3_000.0, "charge": 4_000.0, "discharge": 3_500.0,
          "ac_charge": 1_000.0}
BATTERY_HEALTH = 0.982  # calibrated / design capacity of the packs


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
    energy: dict[str, float] = field(default_factory=lambda: dict.fromkeys(KEYS, 0.0))  # Wh since start
    provider: FlowProvider | None = None  # None: the built-in model below
    speed: float = 1.0  # simulated seconds of energy flow per real second (the clock stays real)
    clock_offset: timedelta = timedelta(0)  # set by writes to HR 35-40
    midnight: dict[str, float] = field(default_factory=dict)  # totals at the start of the local day
    day: date | None = None

    def __post_init__(self) -> None:
        for i, word in enumerate(_words(INVERTER)):
            self.hr[13 + i] = word
        self.hr.update({0: 0x2001, 3: 0x0201, 19: 449, 21: 449, 20: 0, 27: 1, 34: 300, 50: 100, 54: 1,
                        55: round(sum(b.capacity_ah for b in self.batteries)),
                        59: 0, 94: 30, 95: 430, 96: 0, 110: 4, 111: 50, 112: 50, 114: 4, 116: 100})
        self.step(0.0)

    def now(self) -> datetime:
        """The inverter's own clock: host local time plus what writes to HR 35-40 moved it by."""
        return datetime.now() + self.clock_offset

    def totals_wh(self) -> dict[str, float]:
        return {k: HISTORY_WH[k] + self.energy.get(k, 0.0) for k in KEYS}

    def today_wh(self) -> dict[str, float]:
        totals, now = self.totals_wh(), self.now()
        if now.date() != self.day:  # local midnight: today's counters restart
            gone = 0.0 if self.day else (now - datetime.combine(now.date(), datetime.min.time())).seconds / 86400
            self.day, self.midnight = now.date(), {k: totals[k] - DAY_WH[k] * gone for k in KEYS}
        return {k: totals[k] - self.midnight[k] for k in KEYS}

    def max_power_w(self) -> float:
        return 2600.0

    def step(self, dt: float) -> None:
        """Advance the house by dt seconds and refresh the input registers."""
        if self.provider is not None:
            self.refresh()  # the provider owns the clock and the model
            return
        now = self.now()
        dt *= self.speed
        hour = now.hour + now.minute / 60
        pv = max(0.0, math.sin(math.pi * (hour - 6) / 12)) * self.pv_peak_w
        load = self.load_w + 150 * math.sin(now.minute / 9.5)
        soc = sum(b.soc for b in self.batteries) / len(self.batteries) if self.batteries else 0.0
        reserve = self.hr.get(110, 4)
        # HR 111/112 cap the rate in C/100 of the pack (50 = 0.5 C), within the inverter's limit
        capacity_wh = sum(b.capacity_ah for b in self.batteries) * 51.2
        charge_limit = min(self.hr.get(111, 50) / 100 * capacity_wh, self.max_power_w())
        discharge_limit = min(self.hr.get(112, 50) / 100 * capacity_wh, self.max_power_w())
        surplus = pv - load
        target = self.hr.get(116, 100) if self.hr.get(20) == 1 else 100
        if self.hr.get(96) == 1 and _in_slot(now, self.hr.get(94, 0), self.hr.get(95, 0)) and soc < target:
            battery = -charge_limit  # AC charge: the slot charges from PV and grid at the set rate
        elif self.hr.get(59) == 1 and self.hr.get(27) == 0 and soc > reserve \
                and _in_slot(now, self.hr.get(56, 0), self.hr.get(57, 0)):
            battery = discharge_limit  # timed export: full rate, the surplus goes to the grid
        elif surplus >= 0:
            battery = -min(surplus, charge_limit) if soc < 100 else 0.0  # charge from surplus
        else:
            eco_paused = self.hr.get(110) == 100
            battery = min(-surplus, discharge_limit) if soc > reserve and not eco_paused else 0.0
        grid = load - pv - battery  # + import
        for b in self.batteries:
            b.soc = min(100.0, max(0.0, b.soc - battery * dt / 3600 / (capacity_wh or 1.0) * 100))
        ac_charge = max(-battery - max(surplus, 0.0), 0.0)  # the part of charging that came from the grid
        for key, value in (("pv", pv), ("import", max(grid, 0)), ("export", max(-grid, 0)),
                           ("charge", max(-battery, 0)), ("discharge", max(battery, 0)), ("ac_charge", ac_charge)):
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
        e = {k: int(v / 100) for k, v in self.totals_wh().items()}  # 0.1 kWh units
        d = {k: min(int(v / 100), 0xFFFF) for k, v in self.today_wh().items()}
        self.ir.update({0: 1, 1: 3200 if pv else 0, 2: 3100 if pv else 0, 5: 2405, 8: int(pv1 / 32),
                        9: int(pv2 / 31), 10: int(abs(grid) / 24), 13: 5001, 17: d["pv"] // 2, 18: int(pv1),
                        19: d["pv"] - d["pv"] // 2, 20: int(pv2), 24: int(pv + battery) & 0xFFFF,
                        25: d["export"], 26: d["import"], 30: int(-grid) & 0xFFFF, 31: 0, 35: d["ac_charge"],
                        36: d["charge"], 37: d["discharge"], 41: 312, 42: int(load), 44: d["pv"],
                        50: 5120, 51: int(battery / 51.2 * 100) & 0xFFFF, 52: int(battery) & 0xFFFF, 54: 5001,
                        55: 280, 56: 215, 58: int(abs(grid) / 2.4), 59: round(soc),
                        180: e["discharge"] & 0xFFFF, 181: e["charge"] & 0xFFFF,
                        182: d["discharge"], 183: d["charge"]})
        e["throughput"] = e["charge"] + e["discharge"]
        for base, key in ((6, "throughput"), (11, "pv"), (21, "export"), (27, "ac_charge"), (32, "import"),
                          (45, "pv")):
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
        design = int(b.capacity_ah * 100)  # 0.01 Ah
        calibrated = int(design * BATTERY_HEALTH)
        words[24], words[25] = divmod(calibrated, 0x10000)
        words[26], words[27] = divmod(design, 0x10000)
        words[28], words[29] = divmod(int(calibrated * b.soc / 100), 0x10000)
        words[36], words[37], words[38] = b.cycles, 16, 3007
        words[40] = round(b.soc)
        words[43], words[44] = 215, 208
        share = self.totals_wh()  # each pack's own lifetime counters (IR 105/106, 0.1 kWh)
        words[45] = min(int(share["discharge"] / len(self.batteries) / 100), 0xFFFF)
        words[46] = min(int(share["charge"] / len(self.batteries) / 100), 0xFFFF)
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
            bank = self.ir
            if function == 3:  # the clock is read as it runs, never stored (a read changes nothing)
                now = self.now()
                bank = {**self.hr, **dict(zip(CLOCK, (now.year - 2000, now.month, now.day, now.hour, now.minute,
                                                      now.second), strict=True))}
            return [bank.get(base + i, 0) for i in range(count)]
        return None

    def write(self, register: int, value: int) -> bool:
        low, high = LIMITS.get(register, (0, 0xFFFF))
        if register not in WRITABLE or not low <= value <= high:
            return False
        if register in CLOCK:
            return self.set_clock_field(register - CLOCK.start, value)
        self.hr[register] = value
        if self.provider is not None:
            self.provider.holding_written(register, value)
        return True


    def set_clock_field(self, index: int, value: int) -> bool:
        """One of year/month/day/hour/minute/second replaced; the clock runs on from there."""
        now = self.now()
        fields = [now.year, now.month, now.day, now.hour, now.minute, now.second]
        fields[index] = value + 2000 if index == 0 else value
        # A day the month lacks (31 written before the month) becomes the month's last day.
        for day in (fields[2], *range(min(fields[2], 31) - 1, 27, -1)):
            try:
                wanted = datetime(fields[0], fields[1], day, fields[3], fields[4], fields[5])  # local time
            except ValueError:
                continue
            self.clock_offset = wanted - datetime.now()
            return True
        return False


def _in_slot(now: datetime, start: int, end: int) -> bool:
    """Whether now is inside an HHMM slot (one that ends before it starts runs over midnight)."""
    hhmm = now.hour * 100 + now.minute
    if start == end:
        return False
    return start <= hhmm < end if start < end else hhmm >= start or hhmm < end


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
                holder: list[Dongle] | None = None, speed: float = 1.0) -> None:
    serials = ["BG2345G001", "DZ2345G002", "BE2345G003", "BJ2345G004", "AC2345G005", "BG2345G006"]
    inverter = Inverter([Battery(serials[i], soc=55.0 + 10 * i) for i in range(batteries)], speed=speed)
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
    parser.add_argument("--speed", type=float, default=1.0,
                        help="energy model time factor (600: ten minutes of flows per second; the clock stays real)")
    args = parser.parse_args(argv)
    if not 0 < args.speed <= 3600:
        parser.error(f"--speed {args.speed:g}: between 0 (exclusive) and 3600")
    run(serve(args.host, args.port, args.batteries, args.heartbeat_s, args.heartbeat_timeout_s, not args.no_split,
              speed=args.speed))
    return 0
