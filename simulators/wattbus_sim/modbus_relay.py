"""A Waveshare "Modbus RTU Relay (D)" board: 8 relays as coils, 8 opto-isolated inputs as discrete inputs.

As Waveshare's wiki gives its development protocol (V2 firmware, standard Modbus since 2021): coils
0x0000-0x0007 are relays CH1-CH8, read with function 01 and switched with 05 (one relay) or 15
(several); the inputs DI1-DI8 are discrete inputs 0x0000-0x0007, read with 02. Registers are not
served here (the board's address and baud rate settings are not simulated). Input n starts as
relay n's state would, so a test reads a known pattern: DI1 on, the rest off. Each accepted coil
write is printed (`unit 4: coil 0 = 1`).
"""

from __future__ import annotations

from pymodbus.constants import ExcCodes
from pymodbus.simulator import DataType, SimData, SimDevice

CHANNELS = 8
INPUTS = [True] + [False] * (CHANNELS - 1)


def relay_board(unit: int) -> SimDevice:
    """The board at `unit`: all relays off, DI1 on."""

    async def action(function: int, start: int, address: int, count: int, regs: list[int],
                     set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        if function not in (1, 2, 5, 15):
            return ExcCodes.ILLEGAL_FUNCTION  # a relay board: bits only
        if set_values is not None:
            if address + len(set_values) > CHANNELS:
                return ExcCodes.ILLEGAL_ADDRESS
            for offset, value in enumerate(set_values):
                print(f"unit {unit}: coil {address + offset} = {int(value)}", flush=True)
        return None

    coils = [SimData(0, values=[False] * CHANNELS, datatype=DataType.BITS)]
    inputs = [SimData(0, values=list(INPUTS), datatype=DataType.BITS)]
    unused = [SimData(0, values=[0], datatype=DataType.REGISTERS)]  # pymodbus wants all four tables
    return SimDevice(unit, (coils, inputs, unused, unused), action=action)
