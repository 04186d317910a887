"""An EVSE DIN / SimpleEVSE wallbox controller on Modbus (RTU on a pseudo-terminal, or TCP).

    wattbus-sim evse_din --rtu-link /tmp/evse-tty                  # unit 1 on an RS485 line
    wattbus-sim evse_din --rtu-link /tmp/evse-tty --meter sdm630   # + the wallbox's SDM630, unit 2
    wattbus-sim evse_din --port 1505                               # Modbus TCP
    wattbus-sim evse_din --port 1505 --rtu-over-tcp                # RTU frames over TCP (socket://)

The register map as the EVSE DIN documentation gives it (holding registers, function 03 to read,
06/16 to write): 1000 configured current in A (write 0, or min current..80), 1001 the current
actually offered, 1002 vehicle state (1 ready, 2 EV present, 3 charging, 4 charging with
ventilation, 5 failure), 1003 the cable's (PP) limit in A, 1004 bit 0 = turn charging off, 1005
firmware, 1006 EVSE state (1 steady 12 V, 2 PWM, 3 off), 1007 RCD status; 2000 current after
boot, 2002 minimum current. A car is plugged in. Each accepted write is printed
(`unit 1: register 1000 = 10`), so a test sees what reached the device.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from .lifecycle import run, stop_event
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
    def __init__(self, unit: int, current_a: int = 16) -> None:
        self.unit = unit
        self.regs = [0] * (MIN_CURRENT + 16 - BASE)  # 1000..2017 in one block, the gap reads 0
        for register, value in ((CONFIGURED, current_a), (PP_LIMIT, 32), (FIRMWARE, 18), (AFTER_BOOT, 32),
                                (MIN_CURRENT, 6)):
            self.regs[register - BASE] = value
        self._derive(self.regs)

    def _derive(self, regs: list[int]) -> None:
        """What the controller shows for its configured current and turn-off bit (a car plugged in)."""
        current, off = regs[CONFIGURED - BASE], regs[TURN_OFF - BASE] & 1
        offering = not off and current >= regs[MIN_CURRENT - BASE]
        regs[ACTUAL - BASE] = min(current, regs[PP_LIMIT - BASE]) if offering else 0
        regs[VEHICLE - BASE] = 3 if offering else 2
        regs[EVSE_STATE - BASE] = 3 if off else 2 if offering else 1

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


async def serve(args: argparse.Namespace) -> None:
    devices = [Evse(args.unit, args.current).device()]
    if args.meter:
        devices += sdm_devices([args.meter], Plant(static=True), args.meter_unit)
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
    args = parser.parse_args(argv)
    run(serve(args))
    return 0
