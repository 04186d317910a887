"""One Modbus connection (TCP or RTU serial) shared by every unit id behind it.

A gateway or an RS485 line answers one request at a time, so requests to its units are
serialised with a lock; separate hosts have separate links and never wait for each other.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

MAX_READ = 125  # Modbus limit for one read of holding/input registers


class LinkError(Exception):
    """A request that failed: timeout, connection refused, Modbus exception, short answer."""

    def __init__(self, message: str, exception_code: int | None = None) -> None:
        super().__init__(message)
        self.exception_code = exception_code


@dataclass(frozen=True)
class Endpoint:
    host: str | None = None
    port: int = 502
    serial_port: str | None = None
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1

    def __str__(self) -> str:
        if self.serial_port:
            return f"serial://{self.serial_port}"
        return f"tcp://{self.host}:{self.port}"


class Link:
    def __init__(self, endpoint: Endpoint, timeout_s: float = 2.0) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.lock = asyncio.Lock()
        self.requests = 0
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None

    def _make(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        ep = self.endpoint
        if ep.serial_port:
            return AsyncModbusSerialClient(ep.serial_port, baudrate=ep.baudrate, parity=ep.parity,
                                           stopbits=ep.stopbits, timeout=self.timeout_s, retries=0)
        return AsyncModbusTcpClient(ep.host or "127.0.0.1", port=ep.port, timeout=self.timeout_s, retries=0,
                                    reconnect_delay=0)

    async def _connected(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        if self._client is None or not self._client.connected:
            if self._client is not None:
                self._client.close()
            self._client = self._make()
            try:
                ok = await asyncio.wait_for(self._client.connect(), self.timeout_s + 1)
            except TimeoutError as exc:
                raise LinkError(f"{self.endpoint}: connect timed out after {self.timeout_s:g} s") from exc
            if not ok:
                raise LinkError(f"{self.endpoint}: cannot connect")
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def read(self, unit: int, address: int, count: int, function: int = 3,
                   timeout_s: float | None = None) -> list[int]:
        """Read `count` registers (any count: split into requests of at most 125)."""
        out: list[int] = []
        async with self.lock:
            while count > 0:
                step = min(count, MAX_READ)
                out.extend(await self._read_once(unit, address, step, function, timeout_s))
                address += step
                count -= step
        return out

    async def _read_once(self, unit: int, address: int, count: int, function: int,
                         timeout_s: float | None) -> list[int]:
        client = await self._connected()
        self.requests += 1
        call = client.read_input_registers if function == 4 else client.read_holding_registers
        where = f"{self.endpoint} unit {unit} fc{function} @{address}+{count}"
        try:
            response = await asyncio.wait_for(call(address, count=count, device_id=unit),
                                              (timeout_s or self.timeout_s) + 0.5)
        except TimeoutError as exc:
            self.close()  # a late answer would otherwise be taken for the next request's
            raise LinkError(f"{where}: no answer") from exc
        except ModbusException as exc:
            self.close()
            raise LinkError(f"{where}: {exc}") from exc
        if response.isError():
            code = getattr(response, "exception_code", None)
            raise LinkError(f"{where}: Modbus exception {code}", code)
        registers = list(getattr(response, "registers", []))
        if len(registers) < count:
            raise LinkError(f"{where}: short answer ({len(registers)} registers)")
        return registers[:count]

    async def write(self, unit: int, address: int, values: list[int]) -> None:
        async with self.lock:
            client = await self._connected()
            self.requests += 1
            where = f"{self.endpoint} unit {unit} write @{address}+{len(values)}"
            try:
                response = await asyncio.wait_for(client.write_registers(address, values, device_id=unit),
                                                  self.timeout_s + 0.5)
            except TimeoutError as exc:
                self.close()
                raise LinkError(f"{where}: no answer") from exc
            except ModbusException as exc:
                self.close()
                raise LinkError(f"{where}: {exc}") from exc
            if response.isError():
                code = getattr(response, "exception_code", None)
                raise LinkError(f"{where}: Modbus exception {code}", code)
