"""SunSpec inverters/meters and Eastron SDM meters on Modbus TCP (and SDM on Modbus RTU).

    wattbus-sim sunspec --port 1502 --profile fronius --profile sma --profile float
    wattbus-sim sunspec --port 1503 --profile sdm630 --sdm-unit 1
    wattbus-sim sunspec --port 1504 --profile sdm120 --profile sdm72 --sdm-unit 5   # units 5 and 6
    wattbus-sim sunspec --rtu-link /tmp/sdm-tty --profile sdm630     # RTU over a pseudo-terminal pair

Registers are built from the official SunSpec model definitions (sunspec_image), served by a
pymodbus server; values are refreshed from the simulated plant when a client reads. Model 123
(immediate controls) is writable and throttles or disconnects the simulated inverter.
A unit id the host does not have gets exception 0x0B over TCP and no answer over RTU (modbus_units).
"""

from __future__ import annotations

import argparse
import asyncio
import time

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from .lifecycle import stop_event
from .modbus_units import rtu_server, tcp_server
from .sdm import MODELS as SDM_MODELS
from .sdm import sdm_devices
from .sunspec_devices import BASE, PROFILES, Plant, models_for
from .sunspec_image import definition, encode_device, offset_of
from .sunspec_pty import PtyPair


class SunSpecUnit:
    """One SunSpec device (unit id) and the action that keeps its registers current."""

    def __init__(self, kind: str, serial: str, plant: Plant) -> None:
        self.kind, self.serial, self.plant = kind, serial, plant
        self.regs, self.where = encode_device(models_for(kind, serial, plant))
        self.refreshed = 0.0
        self.writable = self._writable()

    def _writable(self) -> set[int]:
        start = self.where.get(123)
        if start is None:
            return set()
        offsets: set[int] = set()
        pos = start
        for point in definition(123)["points"]:
            size = int(point.get("size", 1))
            if point.get("access") == "RW":
                offsets.update(range(pos, pos + size))
            pos += size
        return offsets

    def device(self, unit: int) -> SimDevice:
        data = SimData(BASE, values=list(self.regs), datatype=DataType.REGISTERS)
        return SimDevice(unit, [data], action=self.action)

    def _apply_controls(self, regs: list[int]) -> None:
        start = self.where.get(123)
        if start is None:
            return
        conn, pct_raw = regs[start + offset_of(123, "Conn")], regs[start + offset_of(123, "WMaxLimPct")]
        ena = regs[start + offset_of(123, "WMaxLim_Ena")]
        sf_raw = regs[start + offset_of(123, "WMaxLimPct_SF")]
        sf = sf_raw - 0x10000 if sf_raw & 0x8000 else sf_raw
        self.plant.connected = conn != 0
        self.plant.limit_pct = pct_raw * 10 ** sf if ena == 1 else 100.0

    async def action(self, function: int, start: int, address: int, count: int, regs: list[int],
                     set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        if set_values is not None and function in (6, 16):
            offsets = range(address - start, address - start + count)
            if not set(offsets) <= self.writable:
                return ExcCodes.ILLEGAL_ADDRESS  # like a real inverter: only control points accept writes
            sf_at = self.where[123] + offset_of(123, "WMaxLimPct_SF")
            pct_at = self.where[123] + offset_of(123, "WMaxLimPct")
            if address - start <= pct_at < address - start + count:
                pct = int(set_values[pct_at - (address - start)])
                sf = regs[sf_at] - 0x10000 if regs[sf_at] & 0x8000 else regs[sf_at]
                if pct * 10 ** sf > 100:
                    return ExcCodes.ILLEGAL_VALUE
            return None
        now = time.monotonic()
        if now - self.refreshed > 0.2:
            self.refreshed = now
            self._apply_controls(regs)
            self.plant.advance()
            fresh, _ = encode_device(models_for(self.kind, self.serial, self.plant))
            keep = self.writable
            for offset, value in enumerate(fresh):
                if offset not in keep:
                    regs[offset] = value
        return None


def build_devices(profiles: list[str], plant: Plant, sdm_unit: int) -> list[SimDevice]:
    devices: list[SimDevice] = []
    for profile in profiles:
        for unit, (kind, serial) in PROFILES.get(profile, {}).items():
            devices.append(SunSpecUnit(kind, serial, plant).device(unit))
    devices += sdm_devices(profiles, plant, sdm_unit)
    ids = [d.id for d in devices]
    if len(ids) != len(set(ids)):
        raise SystemExit(f"profiles {profiles} use the same unit id twice ({ids})")
    return devices


async def serve(args: argparse.Namespace) -> None:
    plant = Plant(static=args.static)
    devices = build_devices(args.profile or ["fronius"], plant, args.sdm_unit)
    stop = stop_event()
    pty: PtyPair | None = None
    server: ModbusTcpServer | ModbusSerialServer
    if args.rtu_link:
        pty = PtyPair(args.rtu_link)
        pty.start(asyncio.get_running_loop())
        server = rtu_server(devices, pty.server_path, 9600)
        where = f"Modbus RTU on {args.rtu_link}"
    else:
        server = tcp_server(devices, args.host, args.port)
        where = f"Modbus TCP on {args.host}:{args.port}"
    try:
        # Listening before the banner: a client that waits for the banner can connect at once.
        await server.serve_forever(background=True)
    except RuntimeError as exc:  # pymodbus: "Could not start listen, please check address."
        if pty:
            pty.close()
        raise SystemExit(f"sunspec simulator: {where}: {exc}") from exc
    print(f"sunspec simulator: {where} (units {[d.id for d in devices]})", flush=True)
    try:
        await stop.wait()
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]
        if pty:
            pty.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="wattbus-sim sunspec", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1502)
    parser.add_argument("--profile", action="append", choices=[*PROFILES, *SDM_MODELS])
    parser.add_argument("--sdm-unit", type=int, default=1,
                        help="unit id of the first Eastron meter; further ones take the next ids")
    parser.add_argument("--rtu-link", help="serve Modbus RTU on a pseudo-terminal; its client end is linked here")
    parser.add_argument("--static", action="store_true", help="fixed values (tests)")
    args = parser.parse_args(argv)
    asyncio.run(serve(args))
    return 0


