"""Decoders for the ECU's real-time and signal answers, in SI units (the info answer, the ECU's
identity, is decoded in wattbus.apsystems, which discovery shares). Record layouts come from
inverter_types.toml.

Real ECUs send short records for inverters without data (type "00", 9 bytes), offline records full
of zeros, and answers cut off mid-record; a decoder never reads past the answer and reports what it
had to skip in `problems` instead of inventing values.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from importlib import resources
from statistics import fmean

from wattbus.apsystems import (
    CMD_INFO,
    CMD_REALTIME,
    CMD_SIGNAL,
    EcuFrameError,
    EcuInfo,
    Frame,
    decode_info,
    u16,
    validate,
)

RECORD_START = 26
RECORD_HEAD = 13


@dataclass(frozen=True, slots=True)
class InverterType:
    code: str
    model: str
    record_length: int
    phases: int
    panel_power: tuple[int, ...]
    panel_voltage: tuple[int, ...]
    ac_voltage: tuple[int, ...]


@cache
def inverter_types() -> dict[str, InverterType]:
    raw = tomllib.loads(resources.files(__package__).joinpath("inverter_types.toml").read_text())
    types: dict[str, InverterType] = {}
    for code, spec in raw["types"].items():
        kind = InverterType(code, str(spec["model"]), int(spec["record_length"]), int(spec["phases"]),
                            tuple(spec["panel_power"]), tuple(spec["panel_voltage"]), tuple(spec["ac_voltage"]))
        top = max((*kind.panel_power, *kind.panel_voltage, *kind.ac_voltage), default=0)
        if top + 2 > kind.record_length:
            raise ValueError(f"inverter_types.toml type {code}: offset {top} runs past "
                             f"record_length {kind.record_length}")
        types[code] = kind
    return types


@dataclass(frozen=True, slots=True)
class Panel:
    index: int
    power_w: float | None
    voltage_v: float | None


@dataclass(frozen=True, slots=True)
class InverterData:
    uid: str
    online: bool
    type_code: str
    model: str
    frequency_hz: float | None = None
    temperature_c: float | None = None
    ac_voltages_v: tuple[float, ...] = ()  # one per phase for three-phase types, else one
    panels: tuple[Panel, ...] = ()

    @property
    def power_w(self) -> float | None:
        powers = [p.power_w for p in self.panels if p.power_w is not None]
        return float(sum(powers)) if powers and self.online else None


@dataclass(frozen=True, slots=True)
class RealtimeData:
    count: int
    timestamp: datetime | None  # ECU local time, naive
    inverters: tuple[InverterData, ...]
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SignalData:
    strength_pct: dict[str, int] = field(default_factory=dict)
    problems: tuple[str, ...] = ()


def decode_realtime(data: bytes) -> RealtimeData:
    frame = validate(data, CMD_REALTIME)
    d = frame.data
    end = len(d) - 4
    if end < RECORD_START:
        raise EcuFrameError(f"real-time answer is {len(d)} bytes, too short for its 26-byte header")
    count = u16(d, 17)
    stamp = _bcd_time(d[19:26])
    problems: list[str] = [] if stamp else [f"timestamp bytes 19-25 are not a BCD date: {d[19:26].hex()}"]
    types = inverter_types()
    inverters: list[InverterData] = []
    pos = RECORD_START
    for n in range(1, count + 1):
        if pos + 9 > end:
            problems.append(f"record {n} of {count} missing: answer ends at byte {end}")
            break
        uid = d[pos:pos + 6].hex()
        code = d[pos + 7:pos + 9].decode("ascii", "replace")
        kind = types.get(code)
        if kind is None:
            # The record length depends on the type; without it the rest cannot be located.
            problems.append(f"record {n} (inverter {uid}) at byte {pos}: unknown type code {code!r}, "
                            f"{count - n + 1} record(s) skipped")
            break
        if pos + kind.record_length > end:
            problems.append(f"record {n} (inverter {uid}, type {code}) needs {kind.record_length} bytes at "
                            f"byte {pos}, only {end - pos} left")
            break
        inverters.append(_record(d, pos, uid, kind))
        pos += kind.record_length
    if pos < end and len(inverters) == count:
        problems.append(f"{end - pos} unexpected byte(s) after the last record at byte {pos}")
    return RealtimeData(count, stamp, tuple(inverters), tuple(problems))


def _record(d: bytes, pos: int, uid: str, kind: InverterType) -> InverterData:
    online = d[pos + 6] != 0
    if not online or kind.record_length <= 9:
        return InverterData(uid, False, kind.code, kind.model)
    volts = [float(u16(d, pos + o)) for o in kind.ac_voltage]
    if kind.phases == 1 and volts:
        volts = [round(fmean(volts), 1)]
    panels = []
    for i, off in enumerate(kind.panel_power):
        voltage = float(u16(d, pos + kind.panel_voltage[i])) if i < len(kind.panel_voltage) else None
        panels.append(Panel(i + 1, float(u16(d, pos + off)), voltage))
    return InverterData(uid, True, kind.code, kind.model, frequency_hz=u16(d, pos + 9) / 10,
                        temperature_c=float(u16(d, pos + 11) - 100), ac_voltages_v=tuple(volts),
                        panels=tuple(panels))


def decode_signal(data: bytes) -> SignalData:
    d = validate(data, CMD_SIGNAL).data
    end = len(d) - 4
    strengths: dict[str, int] = {}
    pos = 15
    while pos + 7 <= end:
        # Truncated, not rounded, as aps2mqtt publishes it (raw 201 -> 78 %, not 79).
        strengths[d[pos:pos + 6].hex()] = d[pos + 6] * 100 // 255
        pos += 7
    problems = (f"{end - pos} trailing byte(s) after the last 7-byte signal record",) if pos < end else ()
    return SignalData(strengths, problems)


def decode_any(data: bytes) -> tuple[Frame, EcuInfo | RealtimeData | SignalData]:
    """Decode whichever answer this is (by its echoed command), for `decode FILE`."""
    frame = validate(data)
    if frame.command == CMD_INFO:
        return frame, decode_info(data)
    if frame.command == CMD_REALTIME:
        return frame, decode_realtime(data)
    if frame.command == CMD_SIGNAL:
        return frame, decode_signal(data)
    raise EcuFrameError(f"answer to command {frame.command}: not an info, real-time or signal answer")


def _bcd_time(raw: bytes) -> datetime | None:
    text = raw.hex()
    if len(text) != 14 or not text.isdigit():
        return None
    try:
        return datetime.strptime(text, "%Y%m%d%H%M%S")
    except ValueError:
        return None
