"""Eastron SDM meters (SDM630, SDM120, SDM72D-M) as Eastron's Modbus protocol documents them.

Facts from Eastron's SDM630/SDM120/SDM72 Modbus protocol documents that real clients depend on:
- Measurements are float32 (big-endian, high word first) in input registers (function 04), each
  quantity in two registers at the documented hex address; the serial number is a uint32 in the
  holding registers (function 03) at 0xFC00, next to the float32 set-up registers.
- One request may ask for at most 40 values, i.e. 80 registers; more draws an exception. Eastron's
  exception table gives 02 (illegal data address) for an invalid address or for reading part of a
  floating point value, and field reports of SDMs refusing long reads name the same code, so both
  a read over 80 registers and an odd start or count are answered with 02.
- The power factor "has its sign adjusted to indicate the direction of the current": positive
  while importing, negative while exporting (per phase with that phase's power). Phase powers are
  signed the same way; currents and apparent powers are magnitudes.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from pymodbus.constants import ExcCodes
from pymodbus.simulator import DataType, SimData, SimDevice

from .sunspec_devices import Plant

MAX_REGISTERS = 80  # 40 float32 values per request
SERIAL_REGISTER = 0xFC00
INPUT_END = 0x158  # one past the last register the simulated meters serve (total kWh at 0x156)
PHASE_SHARE = (0.4, 0.35, 0.25)
PHASE_VOLTS = (230.2, 231.0, 229.5)
PHASE_PF = (0.97, 0.96, 0.98)  # magnitudes; the sign follows the current direction

# Input register (hex address) -> quantity, per meter. Names: v1 volts, i1 amps, p1 watts, s1 VA,
# q1 VAr, pf1 power factor of phase 1; p/s/q/pf the totals; kWh counters imp/exp/tot.
_THREE_PHASE_BASE = {0x00: "v1", 0x02: "v2", 0x04: "v3", 0x06: "i1", 0x08: "i2", 0x0A: "i3", 0x0C: "p1",
                     0x0E: "p2", 0x10: "p3", 0x34: "p", 0x46: "hz", 0x48: "imp", 0x4A: "exp", 0x156: "tot"}


@dataclass(frozen=True)
class SdmModel:
    name: str
    serial: int
    phases: int
    system_type: float  # holding register 0x0A: 1 = 1P2W, 3 = 3P4W
    inputs: dict[int, str]


MODELS: dict[str, SdmModel] = {
    "sdm630": SdmModel("SDM630", 21_003_456, 3, 3.0, {
        **_THREE_PHASE_BASE, 0x12: "s1", 0x14: "s2", 0x16: "s3", 0x18: "q1", 0x1A: "q2", 0x1C: "q3",
        0x1E: "pf1", 0x20: "pf2", 0x22: "pf3", 0x2A: "v_avg", 0x2E: "i_avg", 0x30: "i_sum", 0x38: "s",
        0x3C: "q", 0x3E: "pf"}),
    "sdm120": SdmModel("SDM120", 12_004_567, 1, 1.0, {
        0x00: "v1", 0x06: "i1", 0x0C: "p1", 0x12: "s1", 0x18: "q1", 0x1E: "pf1", 0x46: "hz", 0x48: "imp",
        0x4A: "exp", 0x156: "tot"}),
    "sdm72": SdmModel("SDM72", 72_005_678, 3, 3.0, dict(_THREE_PHASE_BASE)),
}


def _signed(magnitude: float, power: float) -> float:
    return -magnitude if power < 0 else magnitude


def quantities(model: SdmModel, plant: Plant) -> dict[str, float]:
    """What the meter measures at the grid connection of the simulated plant (+ import, - export)."""
    grid = plant.house_w - plant.pv_w()
    shares = PHASE_SHARE if model.phases == 3 else (1.0,)
    out: dict[str, float] = {"hz": 50.02, "imp": plant.import_wh / 1000, "exp": plant.export_wh / 1000,
                             "tot": (plant.import_wh + plant.export_wh) / 1000}
    for n, share in enumerate(shares, start=1):
        power, volts, pf = grid * share, PHASE_VOLTS[n - 1], PHASE_PF[n - 1]
        apparent = abs(power) / pf
        out |= {f"v{n}": volts, f"i{n}": apparent / volts, f"p{n}": power, f"s{n}": apparent,
                f"q{n}": math.sqrt(apparent ** 2 - power ** 2), f"pf{n}": _signed(pf, power)}
    phases = range(1, len(shares) + 1)
    out["p"] = grid
    out["s"] = sum(out[f"s{n}"] for n in phases)
    out["q"] = sum(out[f"q{n}"] for n in phases)
    out["pf"] = grid / out["s"] if out["s"] else 1.0
    out["v_avg"] = sum(out[f"v{n}"] for n in phases) / len(shares)
    out["i_sum"] = sum(out[f"i{n}"] for n in phases)
    out["i_avg"] = out["i_sum"] / len(shares)
    return out


def _float_words(value: float) -> tuple[int, int]:
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return hi, lo


class SdmUnit:
    """One Eastron meter: measurements in input registers, set-up and serial in holding registers."""

    def __init__(self, model: SdmModel, plant: Plant, unit: int) -> None:
        self.model, self.plant, self.unit = model, plant, unit

    def inputs(self) -> list[int]:
        regs = [0] * INPUT_END  # undocumented registers in between read 0
        values = quantities(self.model, self.plant)
        for address, key in self.model.inputs.items():
            regs[address], regs[address + 1] = _float_words(values[key])
        return regs

    def setup(self) -> list[int]:
        """Holding registers 0x00-0x1D: demand period 60 min, system type, parity 0 (none, 1 stop
        bit), node address, baud rate code 2 (9600)."""
        regs = [0] * 0x1E
        for address, value in ((0x02, 60.0), (0x0A, self.model.system_type), (0x12, 0.0),
                               (0x14, float(self.unit)), (0x1C, 2.0)):
            regs[address], regs[address + 1] = _float_words(value)
        return regs

    def device(self) -> SimDevice:
        serial = [self.model.serial >> 16, self.model.serial & 0xFFFF]
        holding = [SimData(0, values=self.setup(), datatype=DataType.REGISTERS),
                   SimData(SERIAL_REGISTER, values=serial, datatype=DataType.REGISTERS)]
        inputs = [SimData(0, values=self.inputs(), datatype=DataType.REGISTERS)]
        # Separate spaces for the four tables: an input register read never sees a holding register.
        # pymodbus wants a block for coils and discrete inputs too; action() refuses their functions.
        bits = [SimData(0, values=False, datatype=DataType.BITS)]
        return SimDevice(self.unit, (bits, bits, holding, inputs), action=self.action)

    async def action(self, function: int, start: int, address: int, count: int, regs: list[int],
                     set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        if set_values is not None or function not in (3, 4):
            return ExcCodes.ILLEGAL_FUNCTION  # no coils, no discrete inputs; the set-up is not writable here
        if count > MAX_REGISTERS or address % 2 or count % 2:
            return ExcCodes.ILLEGAL_ADDRESS
        if function == 4:
            self.plant.advance()
            regs[0:INPUT_END] = self.inputs()
        return None


def sdm_devices(profiles: list[str], plant: Plant, first_unit: int) -> list[SimDevice]:
    """The SDM meters among `profiles`, on unit ids first_unit, first_unit + 1, ... in that order."""
    names = [p for p in profiles if p in MODELS]
    return [SdmUnit(MODELS[name], plant, first_unit + n).device() for n, name in enumerate(names)]
