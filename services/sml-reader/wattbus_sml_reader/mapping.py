"""OBIS values of any format -> the contract's MeterReading, driven by obis.toml."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any

import wattbus.messages as m

from .values import DecodedFrame, ObisValue

# Units a meter may send, as (SI unit, factor to it). Anything else for a field is rejected.
UNIT_FACTORS: dict[str, tuple[str, float]] = {
    "Wh": ("Wh", 1.0), "kWh": ("Wh", 1000.0), "MWh": ("Wh", 1e6),
    "W": ("W", 1.0), "kW": ("W", 1000.0),
    "V": ("V", 1.0), "kV": ("V", 1000.0), "A": ("A", 1.0), "mA": ("A", 0.001),
    "Hz": ("Hz", 1.0), "m3": ("m3", 1.0), "m³": ("m3", 1.0),
}
# 15.7.0 (absolute power) gets its sign from the status word. Two layouts are in the field (see
# the EMH, ISKRA and DZG captures): the FNN status word, marked by 0x04 in its low byte, has
# "energy direction -A" in bit 11; the older eHZ status byte of EMH/ISKRA has it in bit 5.
FNN_MARK, FNN_EXPORT_BIT, EHZ_EXPORT_BIT = 0x04, 0x0800, 0x0020
MBUS_GAS, MBUS_WATER = (3,), (7, 6)  # M-Bus device types: 3 gas; 7 water (6 warm water)


@dataclass(frozen=True, slots=True)
class Target:
    field: str
    unit: str
    phase: int | None = None


@dataclass(slots=True)
class ObisMap:
    values: dict[str, Target]
    fallback: dict[str, Target]
    extra: dict[str, str]

    @classmethod
    def from_toml(cls, text: str, where: str) -> ObisMap:
        data = tomllib.loads(text)
        unknown = set(data) - {"values", "fallback", "extra"}
        if unknown:
            raise ValueError(f"{where}: unknown tables {sorted(unknown)}")
        return cls(_targets(data.get("values", {}), where, "values"),
                   _targets(data.get("fallback", {}), where, "fallback"),
                   {str(k): str(v) for k, v in data.get("extra", {}).items()})

    @classmethod
    def default(cls) -> ObisMap:
        text = resources.files(__package__).joinpath("obis.toml").read_text()
        return cls.from_toml(text, "wattbus_sml_reader/obis.toml")


def _targets(table: dict[str, Any], where: str, name: str) -> dict[str, Target]:
    out: dict[str, Target] = {}
    model_fields = set(m.MeterReading.__struct_fields__) | set(m.PhaseValues.__struct_fields__)
    for code, spec in table.items():
        target = Target(str(spec["field"]), str(spec["unit"]), spec.get("phase"))
        if target.unit not in {si for si, _ in UNIT_FACTORS.values()}:
            raise ValueError(f"{where} [{name}.\"{code}\"]: unit {target.unit!r} is not an SI unit we convert to")
        if name == "values" and target.field not in model_fields:
            raise ValueError(f"{where} [{name}.\"{code}\"]: {target.field!r} is not a MeterReading field")
        out[code] = target
    return out


@dataclass(slots=True)
class Mapped:
    reading: m.MeterReading
    problems: list[str] = field(default_factory=list)  # values dropped, with the reason


def _convert(value: ObisValue, target: Target) -> float:
    if isinstance(value.value, str):
        raise ValueError(f"{value.code}: text {value.value!r} where a number in {target.unit} belongs")
    if value.unit is None:
        return float(value.value)  # IEC lines and some SML entries leave the unit out
    known = UNIT_FACTORS.get(value.unit)
    if known is None or known[0] != target.unit:
        raise ValueError(f"{value.code}: unit {value.unit!r} cannot become {target.unit}")
    return round(float(value.value) * known[1], 6)  # no binary noise from kWh -> Wh


def _lookup(table: dict[str, Any], code: str) -> Any:
    return table.get(code) or table.get(f"1-0:{code.split(':', 1)[-1]}" if code.startswith("1-") else "")


class Mapper:
    def __init__(self, obis_map: ObisMap | None = None) -> None:
        self.map = obis_map or ObisMap.default()

    def reading(self, frame: DecodedFrame, device_id: str, timestamp: datetime) -> Mapped:
        problems: list[str] = []
        top: dict[str, float] = {}
        phases: dict[int, dict[str, float]] = {}
        side: dict[str, float] = {}  # fallback values, keyed "field" or "field@phase"
        extra: dict[str, m.ExtraValue] = {}
        for code, value in frame.values.items():
            target = _lookup(self.map.values, code)
            fallback = _lookup(self.map.fallback, code)
            try:
                if target is not None:
                    number = _convert(value, target)
                    (phases.setdefault(target.phase, {}) if target.phase else top)[target.field] = number
                elif fallback is not None:
                    number = _convert(value, fallback)
                    side[f"{fallback.field}@{fallback.phase}" if fallback.phase else fallback.field] = number
            except ValueError as exc:
                problems.append(str(exc))
                continue
            if code in self.map.extra:
                extra[self.map.extra[code]] = value.value
        self._derive_power(frame, top, phases, side, extra)
        self._derive_totals(top)
        gas, water = self._mbus(frame)
        reading = m.MeterReading(
            device_id=device_id, timestamp=timestamp, extra=extra,
            phases=[m.PhaseValues(phase=n, **values) for n, values in sorted(phases.items())],
            gas_m3=gas, water_m3=water, **top,
        )
        return Mapped(reading, problems)

    @staticmethod
    def _derive_power(frame: DecodedFrame, top: dict[str, float], phases: dict[int, dict[str, float]],
                      side: dict[str, float], extra: dict[str, m.ExtraValue]) -> None:
        if "power_w" not in top:
            if "power_import_w" in side or "power_export_w" in side:
                top["power_w"] = side.get("power_import_w", 0.0) - side.get("power_export_w", 0.0)
            elif "power_abs_w" in side:
                status = _direction_status(frame)
                export = status is not None and bool(status & (FNN_EXPORT_BIT if status & 0xFF == FNN_MARK
                                                                else EHZ_EXPORT_BIT))
                top["power_w"] = -abs(side["power_abs_w"]) if export else abs(side["power_abs_w"])
                extra["power_direction_from_status"] = True
        for n in (1, 2, 3):
            imp, exp = side.get(f"power_import_w@{n}"), side.get(f"power_export_w@{n}")
            if (imp is not None or exp is not None) and "power_w" not in phases.get(n, {}):
                phases.setdefault(n, {})["power_w"] = (imp or 0.0) - (exp or 0.0)

    @staticmethod
    def _derive_totals(top: dict[str, float]) -> None:
        # DSMR meters send only the two tariff registers; their sum is the total.
        for total, t1, t2 in (("energy_import_wh", "energy_import_t1_wh", "energy_import_t2_wh"),
                              ("energy_export_wh", "energy_export_t1_wh", "energy_export_t2_wh")):
            if total not in top and t1 in top and t2 in top:
                top[total] = top[t1] + top[t2]

    @staticmethod
    def _mbus(frame: DecodedFrame) -> tuple[float | None, float | None]:
        gas = water = None
        for channel in range(1, 5):
            value = frame.values.get(f"0-{channel}:24.2.1") or frame.values.get(f"0-{channel}:24.2.3")
            if value is None or isinstance(value.value, str) or value.unit not in (None, "m3", "m³"):
                continue
            kind = frame.number(f"0-{channel}:24.1.0")
            if kind in MBUS_WATER:
                water = water if water is not None else float(value.value)
            elif kind is None or kind in MBUS_GAS:
                gas = gas if gas is not None else float(value.value)
        return gas, water


def _direction_status(frame: DecodedFrame) -> int | None:
    for code in ("1-0:15.7.0", "1-0:1.8.0", "1-0:2.8.0"):
        found = frame.values.get(code)
        if found is not None and found.status is not None:
            return found.status
    word = frame.number("1-0:96.5.0")
    return int(word) if word is not None else None
