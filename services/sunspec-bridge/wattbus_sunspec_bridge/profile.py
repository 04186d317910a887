"""Register profiles: a non-SunSpec meter described by a TOML file, read by one generic adapter.

Adding a meter is writing `profiles/<name>.toml` (or one in `profiles_dir`): per contract field
(`power_w`, `l1.voltage_v`, `extra.<key>`) a register point in the shared schema
(wattbus.registers: address, table, type, word order, scale), with the file's `defaults` for what
its points share. Older profiles spell the table `function = 3 | 4` and the word order at the top
and leave `type` out for float32; they load unchanged. Reads are merged into as few requests as
the device's `max_read` allows (Modbus: 125).

Power factors leave as the contract defines them: the magnitude |P|/S, 0..1. Meters sign it by
their own rules (Eastron: with the direction of the current, negative while exporting), and the
direction is already in the sign of the phase's `power_w`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import msgspec
from wattbus import messages as m
from wattbus import registers
from wattbus.registers import Point

from .link import MAX_READ, Link

SHIPPED = Path(__file__).parent / "profiles"
MAX_GAP = 16  # read across small gaps rather than send another request
METER_FIELDS = {"power_w", "energy_import_wh", "energy_export_wh", "frequency_hz", "energy_import_t1_wh",
                "energy_import_t2_wh", "energy_export_t1_wh", "energy_export_t2_wh"}
PHASE_FIELDS = {"voltage_v", "current_a", "power_factor", "power_w"}
FUNCTION: dict[str, int] = {"holding": 3, "input": 4}
TOP_KEYS = {"manufacturer", "model", "kind", "function", "word_order", "defaults", "max_read", "serial", "points"}


class ProfileError(ValueError):
    """A profile file that does not describe a readable device; the message names file and key."""


@dataclass(frozen=True)
class Profile:
    name: str
    manufacturer: str
    model: str
    points: Mapping[str, Point]  # contract key -> where its value is
    serial: Point | None = None
    max_read: int = MAX_READ  # registers per request the device accepts

    def ranges(self) -> list[registers.Block]:
        return registers.plan(list(self.points.values()), self.max_read, MAX_GAP)


def _check_key(where: str, key: str) -> None:
    field = key.split(".", 1)
    if not (key in METER_FIELDS or key.startswith("extra.") or
            (len(field) == 2 and field[0] in ("l1", "l2", "l3") and field[1] in PHASE_FIELDS)):
        raise ProfileError(f"{where}: point {key!r} is not a meter field, lN.<phase field> or extra.<name>")


def _table(where: str, raw: dict[str, Any], default: str) -> dict[str, Any]:
    """A table's older `function = 3 | 4` as the schema's `table`."""
    if "function" not in raw:
        return {"table": default, **raw}
    function = raw.pop("function")
    if function not in (3, 4):
        raise ProfileError(f"{where}: function = {function!r}, expected 3 or 4")
    if raw.get("table", {3: "holding", 4: "input"}[function]) != {3: "holding", 4: "input"}[function]:
        raise ProfileError(f"{where}: function = {function} and table = {raw['table']!r} disagree")
    return {**raw, "table": {3: "holding", 4: "input"}[function]}


def _parse(name: str, path: Path, data: dict[str, Any]) -> Profile:
    where = f"register profile {path}"
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise ProfileError(f"{where}: unknown keys {sorted(unknown)}; known: {', '.join(sorted(TOP_KEYS))}")
    max_read = data.get("max_read", MAX_READ)
    if not isinstance(max_read, int) or isinstance(max_read, bool) or not 2 <= max_read <= MAX_READ:
        raise ProfileError(f"{where}: max_read = {max_read!r}, expected 2..{MAX_READ} registers")
    top: dict[str, Any] = {k: data[k] for k in ("function", "word_order") if k in data}
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise ProfileError(f"{where}: defaults must be a table (table, word_order, type)")
    try:  # a profile's points are float32 input registers unless it says otherwise
        shared = msgspec.convert({"type": "float32", **_table(where, {**top, **defaults}, "input")}, registers.Defaults)
        raw_points = data.get("points")
        points = registers.points(raw_points, where, shared)
        serial_raw = data.get("serial")
        serial = None if serial_raw is None else registers.point(
            _table(f"{where} [serial]", dict(serial_raw), "holding") if isinstance(serial_raw, dict) else serial_raw,
            f"{where} [serial]", registers.Defaults(type="uint32"))
    except registers.RegisterError as exc:
        raise ProfileError(str(exc)) from None
    except msgspec.ValidationError as exc:
        raise ProfileError(f"{where} defaults: {exc}") from None
    for key, point in points.items():
        _check_key(where, key)
        if point.type in ("text", "hhmm", "bool") and not key.startswith("extra."):
            raise ProfileError(f"{where}: point {key!r} is a number; type {point.type!r} fits extra.<name> only")
    return Profile(name, str(data.get("manufacturer", "unknown")), str(data.get("model", name)),
                   MappingProxyType(points), serial, max_read)


def load_profile(name: str, extra_dir: str | None = None) -> Profile:
    candidates = ([Path(extra_dir) / f"{name}.toml"] if extra_dir else []) + [SHIPPED / f"{name}.toml"]
    path = next((p for p in candidates if p.exists()), None)
    if path is None:
        raise ProfileError(f"register profile {name!r}: no file {' or '.join(str(c) for c in candidates)}")
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"register profile {path}: {exc}") from exc
    return _parse(name, path, data)


async def read_profile(link: Link, unit: int, profile: Profile) -> dict[str, registers.Decoded]:
    image: dict[tuple[str, int], int] = {}
    for block in profile.ranges():  # each within max_read: Link splits only at 125
        regs = await link.read(unit, block.address, block.count, function=FUNCTION[block.table])
        image.update(((block.table, a), w) for a, w in zip(range(block.address, block.address + block.count), regs,
                                                          strict=True))
    return registers.decode_all(profile.points, image)


async def read_serial(link: Link, unit: int, profile: Profile) -> str | None:
    if profile.serial is None:
        return None
    serial = profile.serial
    regs = await link.read(unit, serial.address, serial.size, function=FUNCTION[serial.table])
    value = registers.decode(serial, regs)
    return str(value if isinstance(value, str) else int(value)) if value is not None else None


def meter_reading(dev_id: str, ts: datetime, values: Mapping[str, registers.Decoded]) -> m.MeterReading:
    top = {k: float(v) for k, v in values.items() if k in METER_FIELDS and isinstance(v, int | float)}
    extra: dict[str, m.ExtraValue] = {k[6:]: v for k, v in values.items() if k.startswith("extra.")}
    phases = []
    for n in (1, 2, 3):
        # text/hhmm/bool points are refused outside extra.* at load, so phase values are numbers
        fields = {k.split(".", 1)[1]: float(v) for k, v in values.items()
                  if k.startswith(f"l{n}.") and isinstance(v, int | float)}
        if "power_factor" in fields:
            fields["power_factor"] = abs(fields["power_factor"])
        if fields:
            phases.append(m.PhaseValues(phase=n, **fields))
    return m.MeterReading(device_id=dev_id, timestamp=ts, phases=phases, extra=extra, **top)
