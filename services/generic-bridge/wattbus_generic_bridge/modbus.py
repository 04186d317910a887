"""Modbus register lists over TCP or RTU: one read per run of nearby registers, decoded by type and word order.

Planning the reads and decoding the words is the shared register schema's (wattbus.registers): a
value's `point()` is read exactly as giv-bridge and sunspec-bridge read theirs.

A transport is a *line*: a TCP connection to a host:port (an RS485 gateway, a meter with Ethernet) or
a serial port (RS485 RTU, or `socket://host:port` for RTU frames over TCP, as pyserial names it).
Several devices on one line (unit ids 1, 2, ... on one RS485 bus) share one pymodbus client, and
their requests are serialised by the line's lock: a bus carries one request at a time, and two
clients opening one serial port would garble each other's frames.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from wattbus import registers

from .spec import ModbusSource, Value

MAX_GAP = 8  # read across a gap this small rather than send another request
# Coils (function 01, a relay's state) and discrete inputs (02): one bit per address, up to 2000 a read
BIT_READS = {"coil": "read_coils", "discrete": "read_discrete_inputs"}
MAX_BITS = 2000
Client = AsyncModbusTcpClient | AsyncModbusSerialClient


class ModbusError(OSError):
    """The device did not answer, or answered with an exception code."""


@dataclass(frozen=True, slots=True)
class Transport:
    """Where a device's line is: host + port (Modbus TCP) or a serial port (Modbus RTU)."""

    host: str | None = None
    port: int = 502
    serial_port: str | None = None  # /dev/ttyUSB0, or socket://host:port (RTU frames over TCP)
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1

    @property
    def address(self) -> str:
        """The line's name (no secrets: Modbus has none): tcp://host:port or rtu:<port>."""
        return f"rtu:{self.serial_port}" if self.serial_port else f"tcp://{self.host}:{self.port}"

    @property
    def local(self) -> bool:
        """A serial port on this host: only the replica whose config names it can reach it."""
        return self.serial_port is not None and not self.serial_port.startswith(("socket://", "rfc2217://"))


def in_registers(value: Value) -> bool:
    """A value held in 16-bit registers (not a coil or discrete input, not the installation's const)."""
    return value.const is None and value.table not in BIT_READS


def plan(values: list[Value], max_span: int = 120) -> list[registers.Block]:
    """The values' registers as few reads as the span (registers per request, the protocol allows
    125) and the gap limit allow: the shared schema's planning (wattbus.registers)."""
    return registers.plan([v.point() for v in values if in_registers(v)], max_span, MAX_GAP)


def plan_bits(bits: list[tuple[str, int]]) -> list[tuple[str, int, int]]:
    """(table, first address, count) reads covering the (table, address) bits, nearby ones in one read."""
    reads: list[tuple[str, int, int]] = []
    for table, address in sorted(set(bits)):
        if reads and reads[-1][0] == table and address - sum(reads[-1][1:]) <= MAX_GAP \
                and address - reads[-1][1] < MAX_BITS:
            reads[-1] = (table, reads[-1][1], address - reads[-1][1] + 1)
        else:
            reads.append((table, address, 1))
    return reads


def encode(number: float, kind: str, word_order: str = "big") -> list[int]:
    """The registers holding `number` as `kind` (the inverse of wattbus.registers.decode); an integer type takes a
    whole number in its range, else ValueError with what does not fit."""
    fmt = registers.FORMATS[kind]
    value: float | int = number
    if not kind.startswith("float"):
        if number != int(number):
            raise ValueError(f"{number:g} is not a whole number ({kind} register)")
        value = int(number)
    try:
        raw = struct.pack(fmt, value)
    except struct.error:
        raise ValueError(f"{number:g} does not fit a {kind} register") from None
    words = [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)]
    return list(reversed(words)) if word_order == "little" else words


class Line:
    """One pymodbus client for every device on a TCP host:port or a serial port, one request at a time."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.lock = asyncio.Lock()
        self.users = 0
        self._client: Client | None = None

    def _make(self, timeout_s: float) -> Client:
        t = self.transport
        if t.serial_port:
            return AsyncModbusSerialClient(t.serial_port, baudrate=t.baudrate, parity=t.parity, stopbits=t.stopbits,
                                           timeout=timeout_s, retries=0, reconnect_delay=0)
        return AsyncModbusTcpClient(t.host or "127.0.0.1", port=t.port, timeout=timeout_s, retries=0,
                                    reconnect_delay=0)

    async def client(self, timeout_s: float) -> Client:
        """The connected client (call with the lock held)."""
        if self._client is None or not self._client.connected:
            self.close()
            self._client = self._make(timeout_s)
            try:
                ok = await asyncio.wait_for(self._client.connect(), timeout_s + 1)
            except TimeoutError:
                ok = False
            if not ok:
                self.close()
                raise ModbusError(f"{self.transport.address}: cannot connect")
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


_LINES: dict[Transport, Line] = {}  # open lines, shared by the devices on them (one event loop: the service's)


def open_line(transport: Transport) -> Line:
    line = _LINES.get(transport)
    if line is None:
        line = _LINES[transport] = Line(transport)
    line.users += 1
    return line


def release_line(line: Line) -> None:
    line.users -= 1
    if line.users <= 0:
        line.close()
        if _LINES.get(line.transport) is line:
            del _LINES[line.transport]


class ModbusReader:
    """One device (a unit id) on a line: its register list read, its registers written. A value may
    name another unit on the same line (`unit_id`: the wallbox's own meter); it is read from there."""

    def __init__(self, source: ModbusSource, values: list[Value], transport: Transport,
                 timeout_s: float | None = None) -> None:
        self.source = source
        self.values = values
        self.unit = source.unit_id
        self.timeout_s = timeout_s or source.timeout_s
        unit_of = [self.unit if v.unit_id is None else v.unit_id for v in values]
        # value index -> (its unit, its point); coils and discrete inputs -> (unit, table, address)
        self.points = {i: (unit_of[i], v.point()) for i, v in enumerate(values) if in_registers(v)}
        self.bits = {i: (unit_of[i], str(v.table), v.register or 0) for i, v in enumerate(values)
                     if v.const is None and v.table in BIT_READS}
        units = sorted({unit_of[i] for i in [*self.points, *self.bits]})
        self.blocks = [(u, block) for u in units
                       for block in plan([v for i, v in enumerate(values) if unit_of[i] == u], source.max_registers)]
        self.bit_reads = [(u, *read) for u in units
                          for read in plan_bits([(t, a) for unit, t, a in self.bits.values() if unit == u])]
        self.line = open_line(transport)
        self._released = False

    @property
    def address(self) -> str:
        return f"{self.line.transport.address}/{self.unit}"

    async def _call(self, what: str, request: str, *args: object, unit: int | None = None, **kwargs: object) -> Any:
        """One request under the line's lock; a missing or error answer is a ModbusError naming `what`."""
        unit = self.unit if unit is None else unit
        where = f"{self.line.transport.address}/{unit}"
        async with self.line.lock:
            client = await self.line.client(self.timeout_s)
            try:
                response = await asyncio.wait_for(getattr(client, request)(*args, device_id=unit, **kwargs),
                                                  self.timeout_s + 0.5)
            except TimeoutError:
                self.line.close()  # a late answer would otherwise be taken for the next request's
                raise ModbusError(f"{where}: {what}: no answer within {self.timeout_s:g} s") from None
            except ModbusException as exc:  # pymodbus' own: timeout, connection lost, bad CRC
                self.line.close()
                raise ModbusError(f"{where}: {what}: {exc}") from None
        if response.isError():
            raise ModbusError(f"{where}: {what}: exception code {getattr(response, 'exception_code', '?')}")
        return response

    async def read(self) -> dict[int, registers.Decoded]:
        """value index -> its number, scaled (wattbus.registers.decode); None where the device has none
        (a float register holding NaN). An integer register stays an int: a state code maps as "3";
        a coil or discrete input is 0 or 1."""
        image: dict[tuple[int, str, int], int] = {}
        for unit, block in self.blocks:
            request = "read_input_registers" if block.table == "input" else "read_holding_registers"
            what = f"{block.table} registers {block.address}+{block.count}"
            response = await self._call(what, request, block.address, count=block.count, unit=unit)
            words = list(getattr(response, "registers", []))
            if len(words) < block.count:
                raise ModbusError(f"{self.line.transport.address}/{unit}: {what}: short answer "
                                  f"({len(words)} registers)")
            for offset, word in enumerate(words):
                image[(unit, block.table, block.address + offset)] = word
        for unit, table, start, count in self.bit_reads:
            what = f"{table}s {start}+{count}"
            bits = list(getattr(await self._call(what, BIT_READS[table], start, count=count, unit=unit), "bits", []))
            if len(bits) < count:  # pymodbus pads the answer to whole bytes: more is normal, fewer is not
                raise ModbusError(f"{self.line.transport.address}/{unit}: {what}: short answer ({len(bits)} bits)")
            image.update({(unit, table, start + offset): int(bits[offset]) for offset in range(count)})
        out: dict[int, registers.Decoded] = {i: image[bit] for i, bit in self.bits.items()}
        for index, (unit, point) in self.points.items():
            out[index] = registers.decode(point, [image[(unit, point.table, r)] for r in point.registers])
        return out

    async def write(self, register: int, words: list[int]) -> None:
        """Holding registers from `register` on: function 06 for one word, 16 for more."""
        what = f"write holding register {register}" + (f"+{len(words)}" if len(words) > 1 else f" = {words[0]}")
        if len(words) == 1:
            await self._call(what, "write_register", register, words[0])
        else:
            await self._call(what, "write_registers", register, words)

    async def write_coil(self, coil: int, on: bool) -> None:
        """A relay's coil: function 05."""
        await self._call(f"write coil {coil} = {int(on)}", "write_coil", coil, on)

    def close(self) -> None:
        if not self._released:
            self._released = True
            release_line(self.line)
