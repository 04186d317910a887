"""Units a device description may name, converted to the SI unit the contract field carries.

The contract puts the unit in the field name (`power_w`, `energy_import_wh`, `water_m3`); a value's
`unit` says what the device sends, and is refused at start-up when it does not fit the field
(`kWh` for `water_m3`). Factors are exact definitions (1 kWh = 1000 Wh, 1 l = 0.001 m³).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Unit:
    dimension: str
    factor: float  # SI = raw * factor + offset
    offset: float = 0.0


# The contract's SI unit per field-name suffix, and the dimension it measures.
SUFFIX_DIMENSION: dict[str, str] = {
    "_w": "power", "_wh": "energy", "_v": "voltage", "_a": "current", "_hz": "frequency",
    "_c": "temperature", "_pct": "percent", "_m3": "volume", "_m": "length",
}

UNITS: dict[str, Unit] = {
    "W": Unit("power", 1.0), "kW": Unit("power", 1e3), "MW": Unit("power", 1e6), "mW": Unit("power", 1e-3),
    "Wh": Unit("energy", 1.0), "kWh": Unit("energy", 1e3), "MWh": Unit("energy", 1e6),
    "Wmin": Unit("energy", 1 / 60),  # Shelly Gen1 counters: watt-minutes
    "J": Unit("energy", 1 / 3600), "kJ": Unit("energy", 1 / 3.6), "MJ": Unit("energy", 1e6 / 3600),
    "V": Unit("voltage", 1.0), "mV": Unit("voltage", 1e-3), "kV": Unit("voltage", 1e3),
    "A": Unit("current", 1.0), "mA": Unit("current", 1e-3),
    "Hz": Unit("frequency", 1.0), "mHz": Unit("frequency", 1e-3),
    "C": Unit("temperature", 1.0), "°C": Unit("temperature", 1.0), "K": Unit("temperature", 1.0, -273.15),
    "dC": Unit("temperature", 0.1),  # tenths of a degree, common in Modbus registers
    "%": Unit("percent", 1.0), "pct": Unit("percent", 1.0), "permille": Unit("percent", 0.1),
    "m3": Unit("volume", 1.0), "m³": Unit("volume", 1.0), "l": Unit("volume", 1e-3), "L": Unit("volume", 1e-3),
    "dm3": Unit("volume", 1e-3), "hl": Unit("volume", 0.1), "ft3": Unit("volume", 0.028316846592),
    "m": Unit("length", 1.0), "km": Unit("length", 1e3), "mi": Unit("length", 1609.344),  # a vehicle's range
}


def dimension_of(field: str) -> str | None:
    """The dimension a contract field measures, from its suffix; None for unitless fields (cos phi)."""
    for suffix, dimension in sorted(SUFFIX_DIMENSION.items(), key=lambda item: -len(item[0])):
        if field.endswith(suffix):
            return dimension
    return None


def check(field: str, unit: str | None) -> str:
    """'' when `unit` fits `field`, else what is wrong (for the start-up error)."""
    if unit is None:
        return ""
    known = UNITS.get(unit)
    if known is None:
        return f"unknown unit {unit!r}; known: {', '.join(UNITS)}"
    wanted = dimension_of(field)
    if field.startswith("extra."):
        return ""  # vendor values keep any unit; the factor still applies
    if wanted != known.dimension:
        fits = [name for name, u in UNITS.items() if u.dimension == wanted]
        hint = f"use one of {', '.join(fits)}" if fits else f"{field} takes no unit"
        return f"{unit!r} measures {known.dimension}, but {field} is {wanted or 'unitless'}; {hint}"
    return ""


def to_si(value: float, unit: str | None) -> float:
    if unit is None:
        return value
    known = UNITS[unit]
    return value * known.factor + known.offset
