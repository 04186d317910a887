"""pymodbus servers that treat a request for a unit id they do not have the way real hardware does.

pymodbus's simulator core hands a request for an unknown unit id to device 0, which no simulator
defines: every such request logged a KeyError traceback and was answered with exception 04. A LAN
sweep asks many unit ids, so each discovery run left tracebacks in the simulators' logs.

What the imitated hardware does instead:
- Modbus TCP: the simulated host is a gateway in front of its units (the Fronius Datamanager in
  front of the inverters and meters on its Solar Net, an RS485-to-Ethernet converter in front of an
  SDM630). A gateway that gets no answer from the target unit replies exception 0x0B, "gateway target
  device failed to respond" (Modbus Application Protocol v1.1b3, section 7), and our discovery reads
  0x0A/0x0B as "no device behind this unit id".
- Modbus RTU: a node on a serial line ignores frames addressed to another unit, so the master hears
  nothing and times out.
"""

from __future__ import annotations

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import SimDevice
from pymodbus.simulator.simcore import SimCore


class KnownUnits(SimCore):
    """The server's devices; a request for any other unit id gets `absent` (None: no answer at all)."""

    def __init__(self, devices: list[SimDevice], absent: ExcCodes | None) -> None:
        super().__init__(devices)
        self.absent = absent

    def _refusal(self, device_id: int) -> ExcCodes | None:
        if device_id in self.devices:
            return None
        if self.absent is None:
            # The request handler drops the request without a log line when the server was built
            # with ignore_missing_devices (rtu_server below).
            raise NoSuchIdException(f"unit {device_id}")
        return self.absent

    async def async_getValues(self, device_id: int, func_code: int, address: int,
                              count: int = 1) -> list[int] | list[bool] | ExcCodes:
        refusal = self._refusal(device_id)
        if refusal is not None:
            return refusal
        return await super().async_getValues(device_id, func_code, address, count)

    async def async_setValues(self, device_id: int, func_code: int, address: int,
                              values: list[int] | list[bool]) -> ExcCodes | None:
        refusal = self._refusal(device_id)
        if refusal is not None:
            return refusal
        return await super().async_setValues(device_id, func_code, address, values)


def tcp_server(devices: list[SimDevice], host: str, port: int) -> ModbusTcpServer:
    """A Modbus TCP gateway for these units: any other unit id is answered with exception 0x0B."""
    server = ModbusTcpServer(devices, address=(host, port))
    server.context = KnownUnits(devices, ExcCodes.GATEWAY_NO_RESPONSE)  # replaces pymodbus's own SimCore
    return server


def rtu_server(devices: list[SimDevice], port: str, baudrate: int) -> ModbusSerialServer:
    """These units on a Modbus RTU line: a frame for any other unit id goes unanswered."""
    server = ModbusSerialServer(devices, port=port, baudrate=baudrate, ignore_missing_devices=True)
    server.context = KnownUnits(devices, None)
    return server
