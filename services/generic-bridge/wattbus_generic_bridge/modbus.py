"""Modbus TCP register lists: one read per run of nearby registers, decoded by type and word order."""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from .spec import REGISTER_WORDS, ModbusSource, Value

MAX_GAP = 8  # read across a gap this small rather than send another request
FORMATS = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "int64": ">q", "uint64": ">Q",
           "float32": ">f", "float64": ">d"}


class ModbusError(OSError):
    """The device did not answer, or answered with an exception code."""


@dataclass(frozen=True, slots=True)
class Block:
    table: str
    start: int
    count: int


def plan(values: list[Value], max_span: int = 120) -> list[Block]:
    """Group the values' registers into as few reads as the span (registers per request, the
    protocol allows 125) and gap limits allow."""
    spans = sorted({(v.table, v.register or 0, REGISTER_WORDS[v.type]) for v in values})
    blocks: list[Block] = []
    for table, start, words in spans:
        last = blocks[-1] if blocks else None
        end = start + words
        if last and last.table == table and start - (last.start + last.count) <= MAX_GAP \
                and end - last.start <= max_span:
            blocks[-1] = Block(table, last.start, max(last.count, end - last.start))
        else:
            blocks.append(Block(table, start, words))
    return blocks


def decode(registers: list[int], value: Value) -> float:
    """A value from its registers: 16-bit words, big-endian bytes in each word (the Modbus rule)."""
    words = registers[:REGISTER_WORDS[value.type]]
    if value.word_order == "little":
        words = list(reversed(words))
    raw = b"".join(word.to_bytes(2, "big") for word in words)
    number: float = struct.unpack(FORMATS[value.type], raw)[0]
    return float(number)


class ModbusReader:
    def __init__(self, source: ModbusSource, values: list[Value]) -> None:
        self.source = source
        self.values = values
        self.blocks = plan(values, source.max_registers)
        self._client: AsyncModbusTcpClient | None = None

    @property
    def address(self) -> str:
        return f"tcp://{self.source.host}:{self.source.port}/{self.source.unit_id}"

    async def _connected(self) -> AsyncModbusTcpClient:
        if self._client is None or not self._client.connected:
            self.close()
            self._client = AsyncModbusTcpClient(self.source.host, port=self.source.port,
                                                timeout=self.source.timeout_s, retries=0, reconnect_delay=0)
            try:
                ok = await asyncio.wait_for(self._client.connect(), self.source.timeout_s + 1)
            except TimeoutError:
                ok = False
            if not ok:
                raise ModbusError(f"{self.address}: cannot connect")
        return self._client

    async def read(self) -> dict[int, float]:
        """value index -> decoded raw number (before scale and unit)."""
        client = await self._connected()
        registers: dict[tuple[str, int], int] = {}
        for block in self.blocks:
            call = client.read_input_registers if block.table == "input" else client.read_holding_registers
            try:
                response = await call(block.start, count=block.count, device_id=self.source.unit_id)
            except ModbusException as exc:  # pymodbus' own: timeout, connection lost
                self.close()
                raise ModbusError(f"{self.address}: {block.table} registers {block.start}+{block.count}: "
                                  f"{exc}") from None
            if response.isError():
                raise ModbusError(f"{self.address}: {block.table} registers {block.start}+{block.count}: "
                                  f"exception code {getattr(response, 'exception_code', '?')}")
            for offset, word in enumerate(response.registers):
                registers[(block.table, block.start + offset)] = word
        out: dict[int, float] = {}
        for index, value in enumerate(self.values):
            start = value.register or 0
            words = [registers[(value.table, start + i)] for i in range(REGISTER_WORDS[value.type])]
            out[index] = decode(words, value)
        return out

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
