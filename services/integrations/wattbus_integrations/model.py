"""The simple measurement model templates and Home Assistant entities are built on.

A reading becomes one flat mapping of names to values: every scalar field of the contract
(`power_w`, `soc_pct`), per-phase values as `l1_voltage_v`, vendor extras as `extra_<key>`, the
device's identity from its meta (`manufacturer`, `serial`, ...) and a few derived values
(`timestamp_utc`, `timestamp_ms`). Missing values stay None.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import msgspec
from wattbus import messages as m

PHASE_FIELDS = ("voltage_v", "current_a", "power_w", "power_factor")
META_FIELDS = ("manufacturer", "model", "serial", "firmware", "name", "protocol", "parent_id")
BUILTINS = ("device_id", "kind", "source", "timestamp_utc", "timestamp_ms", "timestamp_s", "values_json")
# Names that are not measurements: never sent as one value each, never a Home Assistant sensor.
NOT_VALUES = frozenset({"device_id", "timestamp", "extra", "phases", "kind", "inverter_id", "index", "channel"})

# The unit follows from the suffix of the field name (units in names, SI at the boundary).
_UNITS = (("_wh", "Wh"), ("_w", "W"), ("_v", "V"), ("_a", "A"), ("_hz", "Hz"), ("_c", "°C"), ("_pct", "%"),
          ("_m3", "m³"), ("_s", "s"))

KIND_TYPES: dict[str, type[m.ReadingBase]] = {
    str(t.__struct_config__.tag): t for t in m.READING_TYPES
}


def unit_of(field: str) -> str:
    for suffix, unit in _UNITS:
        if field.endswith(suffix):
            return unit
    return ""


def kind_of(reading: m.ReadingBase) -> str:
    return str(type(reading).__struct_config__.tag)


def value_names(kind: str) -> list[str]:
    """Every measurement name a reading of this kind can carry (without extras), in contract order."""
    reading_type = KIND_TYPES[kind]
    names: list[str] = []
    for name in reading_type.__struct_fields__:
        if name == "phases":
            names += [f"l{n}_{f}" for n in (1, 2, 3) for f in PHASE_FIELDS]
        elif name not in NOT_VALUES and not _is_list_field(reading_type, name):
            names.append(name)
    return names


def _is_list_field(reading_type: type[m.ReadingBase], name: str) -> bool:
    info = next((f for f in msgspec.structs.fields(reading_type) if f.name == name), None)
    return info is not None and typing.get_origin(info.type) is list


def known_names(kinds: Iterable[str]) -> set[str]:
    """Placeholders a template may use for readings of these kinds (extras are open-ended)."""
    names = set(BUILTINS) | set(META_FIELDS) | {"inverter_id", "index", "channel"}
    for kind in kinds:
        names.update(value_names(kind))
        names.update(n for n in KIND_TYPES[kind].__struct_fields__ if _is_list_field(KIND_TYPES[kind], n))
    return names


def values_of(reading: m.ReadingBase) -> dict[str, Any]:
    """The measurements of one reading, flat, None where the device did not report a value."""
    values: dict[str, Any] = {}
    for name in reading.__struct_fields__:
        value = getattr(reading, name)
        if name == "phases":
            for phase in value:
                for field in PHASE_FIELDS:
                    values[f"l{phase.phase}_{field}"] = getattr(phase, field)
        elif name == "extra":
            values.update({f"extra_{key}": extra for key, extra in value.items()})
        elif name not in NOT_VALUES and not isinstance(value, list):
            values[name] = None if isinstance(value, float) and not math.isfinite(value) else value
    return values


def flatten(reading: m.ReadingBase, source: str, meta: m.DeviceMeta | None) -> dict[str, Any]:
    """The whole model of one reading: builtins, identity, lists as they are, and the values."""
    ts = reading.timestamp if reading.timestamp.tzinfo else reading.timestamp.replace(tzinfo=UTC)
    values = values_of(reading)
    model: dict[str, Any] = {
        "device_id": reading.device_id, "kind": kind_of(reading), "source": source,
        "timestamp_utc": ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "timestamp_ms": int(ts.timestamp() * 1000), "timestamp_s": int(ts.timestamp()),
        "values_json": {k: v for k, v in values.items() if v is not None},
    }
    for name in META_FIELDS:
        model[name] = getattr(meta, name, None) if meta else None
    for name in ("inverter_id", "index", "channel"):
        if name in reading.__struct_fields__:
            model[name] = getattr(reading, name)
    for name in reading.__struct_fields__:
        value = getattr(reading, name)
        if isinstance(value, list) and name != "phases":
            model[name] = value
    model.update(values)
    return model


def utc_text(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
