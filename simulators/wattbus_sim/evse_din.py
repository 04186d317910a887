"""An EVSE DIN / SimpleEVSE wallbox controller on Modbus (RTU on a pseudo-terminal, or TCP).

    wattbus-sim evse_din --rtu-link /tmp/evse-tty                  # unit 1 on an RS485 line
    wattbus-sim evse_din --rtu-link /tmp/evse-tty --meter sdm630   # + the wallbox's SDM630, unit 2
    wattbus-sim evse_din --port 1505                               # Modbus TCP
    wattbus-sim evse_din --port 1505 --rtu-over-tcp                # RTU frames over TCP (socket://)
    wattbus-sim evse_din --port 1505 --meter sdm630 --grid-meter sdm630 --pv-file /tmp/pv --off
                                    # + a house: its grid meter (unit 3) sees the car's draw and the PV
    wattbus-sim evse_din --rtu-link /tmp/rs485 --relay-board 4     # + a Waveshare relay board, unit 4

The register map as the EVSE DIN documentation gives it (holding registers, function 03 to read,
06/16 to write): 1000 configured current in A (write 0, or min current..80), 1001 the current
actually offered, 1002 vehicle state (1 ready, 2 EV present, 3 charging, 4 charging with
ventilation, 5 failure), 1003 the cable's (PP) limit in A, 1004 bit 0 = turn charging off, 1005
firmware, 1006 EVSE state (1 steady 12 V, 2 PWM, 3 off), 1007 RCD status; 2000 current after
boot, 2002 minimum current. A car is plugged in and, while charging, draws the offered current on
`--phases` phases at 230 V: the wallbox's meter (`--meter`, unit 2) measures that draw, a grid
meter (`--grid-meter`, unit 3) the house's `--house-w` plus the car minus the PV (`--pv-w`, or the
watts in `--pv-file` when it exists: a test dims the sun by writing it). Each accepted write is
printed (`unit 1: register 1000 = 10`, `unit 4: coil 0 = 1`), so a test sees what reached the device.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from .lifecycle import run, stop_event
from .modbus_relay import relay_board
from .modbus_units import KnownUnits, rtu_server, tcp_server
from .sdm import MODELS as SDM_MODELS
from .sdm import sdm_devices
from .sunspec_devices import Plant
from .sunspec_pty import PtyPair

BASE = 1000
CONFIGURED, ACTUAL, VEHICLE, PP_LIMIT, TURN_OFF, FIRMWARE, EVSE_STATE, RCD = range(1000, 1008)
AFTER_BOOT, MIN_CURRENT = 2000, 2002
WRITABLE = {CONFIGURED, TURN_OFF, AFTER_BOOT, MIN_CURRENT}
MAX_CURRENT = 80


class Evse:
    def __init__(self, unit: int, current_a: int = 16, off: bool = False, phases: int = 3) -> None:
        self.unit = unit
        self.phases = phases
        self.draw_a = 0  # what the car takes now (per phase)
        self.regs = [0] * (MIN_CURRENT + 16 - BASE)  # 1000..2017 in one block, the gap reads 0
        for register, value in ((CONFIGURED, current_a), (PP_LIMIT, 32), (FIRMWARE, 18), (AFTER_BOOT, 32),
                                (MIN_CURRENT, 6), (TURN_OFF, int(off))):
            self.regs[register - BASE] = value
        self._derive(self.regs)

    def _derive(self, regs: list[int]) -> None:
        """What the controller shows for its configured current and turn-off bit (a car plugged in)."""
        current, off = regs[CONFIGURED - BASE], regs[TURN_OFF - BASE] & 1
        offering = not off and current >= regs[MIN_CURRENT - BASE]
        regs[ACTUAL - BASE] = min(current, regs[PP_LIMIT - BASE]) if offering else 0
        regs[VEHICLE - BASE] = 3 if offering else 2
        regs[EVSE_STATE - BASE] = 3 if off else 2 if offering else 1
        self.draw_a = regs[ACTUAL - BASE]

    def draw_w(self) -> float:
        return self.draw_a * 230.0 * self.phases

    def device(self) -> SimDevice:
        data = SimData(BASE, values=list(self.regs), datatype=DataType.REGISTERS)
        return SimDevice(self.unit, [data], action=self.action)

    async def action(self, function: int, start: int, address: int, count: int, regs: list[int],
                     set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        if set_values is None:
            # holding registers only; a write's answer echoes them (functions 6 and 16)
            return None if function in (3, 6, 16) else ExcCodes.ILLEGAL_FUNCTION
        if function not in (6, 16) or not set(range(address, address + count)) <= WRITABLE:
            return ExcCodes.ILLEGAL_ADDRESS  # read-only state registers
        values = [int(v) for v in set_values]
        if address == CONFIGURED and values[0] != 0 and not regs[MIN_CURRENT - start] <= values[0] <= MAX_CURRENT:
            return ExcCodes.ILLEGAL_VALUE
        for offset, value in enumerate(values):
            regs[address - start + offset] = value  # pymodbus stores them too; derive from them now
            print(f"unit {self.unit}: register {address + offset} = {value}", flush=True)
        self._derive(regs)
        return None


class House(Plant):
    """A meter's view of the site: `base_w` of other load plus the car, minus the PV (`pv_file` wins
    over `pv_w` while it exists). The wallbox's own meter is a House without load and PV."""

    def __init__(self, evse: Evse, base_w: float = 0.0, pv_w: float = 0.0, pv_file: str | None = None) -> None:
        super().__init__(static=True)
        self.evse, self.base_w, self.pv, self.pv_file = evse, base_w, pv_w, pv_file

    def pv_w(self) -> float:
        if self.pv_file is not None:
            with contextlib.suppress(OSError, ValueError):
                self.pv = float(Path(self.pv_file).read_text())
        return self.pv

    def advance(self) -> None:
        self.house_w = self.base_w + self.evse.draw_w()


async def serve(args: argparse.Namespace) -> None:
    evse = Evse(args.unit, args.current, args.off, args.phases)
    devices = [evse.device()]
    if args.meter:
        devices += sdm_devices([args.meter], House(evse), args.meter_unit)
    if args.grid_meter:
        devices += sdm_devices([args.grid_meter], House(evse, args.house_w, args.pv_w, args.pv_file), args.grid_unit)
    if args.relay_board is not None:
        devices.append(relay_board(args.relay_board))
    stop = stop_event()
    async with contextlib.AsyncExitStack() as stack:
        server: ModbusTcpServer | ModbusSerialServer
        if args.rtu_link:
            pty = PtyPair(args.rtu_link)
            stack.callback(pty.close)
            pty.start(asyncio.get_running_loop())
            server, where = rtu_server(devices, pty.server_path, 9600), f"Modbus RTU on {args.rtu_link}"
        elif args.rtu_over_tcp:  # a serial server (RS485-to-Ethernet in transparent mode): RTU frames, CRC and all
            server = ModbusTcpServer(devices, address=(args.host, args.port), framer=FramerType.RTU)
            server.context = KnownUnits(devices, None)
            where = f"Modbus RTU over TCP on {args.host}:{args.port}"
        else:
            server, where = tcp_server(devices, args.host, args.port), f"Modbus TCP on {args.host}:{args.port}"
        stack.push_async_callback(server.shutdown)
        await server.serve_forever(background=True)
        print(f"evse_din simulator: {where} (units {[d.id for d in devices]})", flush=True)
        await stop.wait()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="wattbus-sim evse_din", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1505)
    parser.add_argument("--rtu-link", help="serve Modbus RTU on a pseudo-terminal; its client end is linked here")
    parser.add_argument("--rtu-over-tcp", action="store_true", help="RTU framing on the TCP port")
    parser.add_argument("--unit", type=int, default=1)
    parser.add_argument("--current", type=int, default=16, help="configured current at start (A)")
    parser.add_argument("--meter", choices=sorted(SDM_MODELS), help="an Eastron meter on the same line")
    parser.add_argument("--meter-unit", type=int, default=2)
    parser.add_argument("--off", action="store_true", help="charging turned off at start (register 1004 = 1)")
    parser.add_argument("--phases", type=int, choices=(1, 3), default=3, help="the phases the car draws on")
    parser.add_argument("--grid-meter", choices=sorted(SDM_MODELS), help="the house's grid meter on the line")
    parser.add_argument("--grid-unit", type=int, default=3)
    parser.add_argument("--house-w", type=float, default=500.0, help="the house's load besides the car (W)")
    parser.add_argument("--pv-w", type=float, default=0.0, help="PV production (W)")
    parser.add_argument("--pv-file", help="a file holding the PV production in W, read at each grid meter read")
    parser.add_argument("--relay-board", type=int, metavar="UNIT", help="a Waveshare Modbus RTU Relay (D) at UNIT")
    args = parser.parse_args(argv)
    run(serve(args))
    return 0
