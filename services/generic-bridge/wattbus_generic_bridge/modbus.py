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


def plan(values: list[Value], max_span: int = 120) -> list[registers.Block]:
    """The values' registers as few reads as the span (registers per request, the protocol allows
    125) and the gap limit allow: the shared schema's planning (wattbus.registers)."""
    return registers.plan([v.point() for v in values], max_span, MAX_GAP)


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
    """One device (a unit id) on a line: its register list read, its registers written."""

    def __init__(self, source: ModbusSource, values: list[Value], transport: Transport,
                 timeout_s: float | None = None) -> None:
        self.source = source
        self.values = values
        self.unit = source.unit_id
        self.timeout_s = timeout_s or source.timeout_s
        self.points = [v.point() for v in values]
        self.blocks = plan(values, source.max_registers)
        self.line = open_line(transport)
        self._released = False

    @property
    def address(self) -> str:
        return f"{self.line.transport.address}/{self.unit}"

    async def _call(self, what: str, request: str, *args: object, **kwargs: object) -> Any:
        """One request under the line's lock; a missing or error answer is a ModbusError naming `what`."""
        async with self.line.lock:
            client = await self.line.client(self.timeout_s)
            try:
                response = await asyncio.wait_for(getattr(client, request)(*args, device_id=self.unit, **kwargs),
                                                  self.timeout_s + 0.5)
            except TimeoutError:
                self.line.close()  # a late answer would otherwise be taken for the next request's
                raise ModbusError(f"{self.address}: {what}: no answer within {self.timeout_s:g} s") from None
            except ModbusException as exc:  # pymodbus' own: timeout, connection lost, bad CRC
                self.line.close()
                raise ModbusError(f"{self.address}: {what}: {exc}") from None
        if response.isError():
            raise ModbusError(f"{self.address}: {what}: exception code {getattr(response, 'exception_code', '?')}")
        return response

    async def read(self) -> dict[int, registers.Decoded]:
        """value index -> its number, scaled (wattbus.registers.decode); None where the device has none
        (a float register holding NaN). An integer register stays an int: a state code maps as "3"."""
        image: dict[tuple[str, int], int] = {}
        for block in self.blocks:
            request = "read_input_registers" if block.table == "input" else "read_holding_registers"
            response = await self._call(f"{block.table} registers {block.address}+{block.count}", request,
                                        block.address, count=block.count)
            words = list(getattr(response, "registers", []))
            if len(words) < block.count:
                raise ModbusError(f"{self.address}: {block.table} registers {block.address}+{block.count}: "
                                  f"short answer ({len(words)} registers)")
            for offset, word in enumerate(words):
                image[(block.table, block.address + offset)] = word
        return {index: registers.decode(point, [image[(point.table, r)] for r in point.registers])
                for index, point in enumerate(self.points)}

    async def write(self, register: int, words: list[int]) -> None:
        """Holding registers from `register` on: function 06 for one word, 16 for more."""
        what = f"write holding register {register}" + (f"+{len(words)}" if len(words) > 1 else f" = {words[0]}")
        if len(words) == 1:
            await self._call(what, "write_register", register, words[0])
        else:
            await self._call(what, "write_registers", register, words)

    def close(self) -> None:
        if not self._released:
            self._released = True
            release_line(self.line)
