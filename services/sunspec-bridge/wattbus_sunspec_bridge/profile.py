"""Register profiles: a non-SunSpec meter described by a TOML file, read by one generic adapter.

Adding a meter is writing `profiles/<name>.toml` (or one in `profiles_dir`): the function code,
and per contract field (`power_w`, `l1.voltage_v`, `extra.<key>`) an address, a type and a
scale. Reads are merged into as few requests as the device's `max_read` allows (Modbus: 125).

Power factors leave as the contract defines them: the magnitude |P|/S, 0..1. Meters sign it by
their own rules (Eastron: with the direction of the current, negative while exporting), and the
direction is already in the sign of the phase's `power_w`.
"""

from __future__ import annotations

import math
import struct
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from wattbus import messages as m

from .decode import shortest_float32
from .link import MAX_READ, Link

TYPES = {"float32": 2, "uint16": 1, "int16": 1, "uint32": 2, "int32": 2}
SHIPPED = Path(__file__).parent / "profiles"
MAX_GAP = 16  # read across small gaps rather than send another request
METER_FIELDS = {"power_w", "energy_import_wh", "energy_export_wh", "frequency_hz", "energy_import_t1_wh",
                "energy_import_t2_wh", "energy_export_t1_wh", "energy_export_t2_wh"}
PHASE_FIELDS = {"voltage_v", "current_a", "power_w", "power_factor"}


class ProfileError(ValueError):
    """A profile file that does not describe a readable device; the message names file and key."""


@dataclass(frozen=True)
class ProfilePoint:
    key: str
    address: int
    type: str
    scale: float = 1.0

    @property
    def size(self) -> int:
        return TYPES[self.type]


@dataclass(frozen=True)
class Profile:
    name: str
    manufacturer: str
    model: str
    function: int
    points: tuple[ProfilePoint, ...]
    word_order: str = "big"
    serial: ProfilePoint | None = None
    serial_function: int = 3
    max_read: int = MAX_READ  # registers per request the device accepts

    def ranges(self) -> list[tuple[int, int]]:
        spans: list[list[int]] = []
        for point in sorted(self.points, key=lambda p: p.address):
            end = point.address + point.size
            if spans and point.address - spans[-1][1] <= MAX_GAP and end - spans[-1][0] <= self.max_read:
                spans[-1][1] = max(spans[-1][1], end)
            else:
                spans.append([point.address, end])
        return [(a, b - a) for a, b in spans]


def _point(where: str, key: str, raw: Any) -> ProfilePoint:
    if not isinstance(raw, dict) or "address" not in raw:
        raise ProfileError(f"{where}: point {key!r} needs an address")
    ptype = raw.get("type", "float32")
    if ptype not in TYPES:
        raise ProfileError(f"{where}: point {key!r} type {ptype!r} is not one of {sorted(TYPES)}")
    field = key.split(".", 1)
    if not (key in METER_FIELDS or key.startswith("extra.") or
            (len(field) == 2 and field[0] in ("l1", "l2", "l3") and field[1] in PHASE_FIELDS)):
        raise ProfileError(f"{where}: point {key!r} is not a meter field, lN.<phase field> or extra.<name>")
    return ProfilePoint(key, int(raw["address"]), ptype, float(raw.get("scale", 1.0)))


def load_profile(name: str, extra_dir: str | None = None) -> Profile:
    candidates = ([Path(extra_dir) / f"{name}.toml"] if extra_dir else []) + [SHIPPED / f"{name}.toml"]
    path = next((p for p in candidates if p.exists()), None)
    if path is None:
        raise ProfileError(f"register profile {name!r}: no file {' or '.join(str(c) for c in candidates)}")
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"register profile {path}: {exc}") from exc
    raw_points = data.get("points")
    if not isinstance(raw_points, dict) or not raw_points:
        raise ProfileError(f"register profile {path}: [points] is missing or empty")
    function = data.get("function", 4)
    if function not in (3, 4):
        raise ProfileError(f"register profile {path}: function = {function!r}, expected 3 or 4")
    max_read = data.get("max_read", MAX_READ)
    if not isinstance(max_read, int) or isinstance(max_read, bool) or not 2 <= max_read <= MAX_READ:
        raise ProfileError(f"register profile {path}: max_read = {max_read!r}, expected 2..{MAX_READ} registers")
    serial_raw = data.get("serial")
    serial = None
    if isinstance(serial_raw, dict):
        serial = ProfilePoint("serial", int(serial_raw["address"]), serial_raw.get("type", "uint32"))
    return Profile(name, str(data.get("manufacturer", "unknown")), str(data.get("model", name)), function,
                   tuple(_point(str(path), k, v) for k, v in raw_points.items()),
                   str(data.get("word_order", "big")), serial,
                   int(serial_raw.get("function", 3)) if isinstance(serial_raw, dict) else 3, max_read)


def value_of(point: ProfilePoint, regs: list[int], word_order: str = "big") -> float | int | None:
    if word_order == "little" and len(regs) == 2:
        regs = [regs[1], regs[0]]  # e.g. elgris: low word first
    packed = b"".join(r.to_bytes(2, "big") for r in regs)
    if point.type == "float32":
        number = struct.unpack(">f", packed)[0]
        if math.isnan(number) or math.isinf(number):
            return None
        short = shortest_float32(number)
        return round(short * point.scale, 6) if point.scale != 1.0 else short  # kWh -> Wh without float dust
    code = {"uint16": ">H", "int16": ">h", "uint32": ">I", "int32": ">i"}[point.type]
    raw = int(struct.unpack(code, packed)[0])
    return raw * point.scale if point.scale != 1.0 else raw


async def read_profile(link: Link, unit: int, profile: Profile) -> dict[str, float | int | None]:
    image: dict[int, int] = {}
    for start, count in profile.ranges():  # each within max_read: Link splits only at 125
        regs = await link.read(unit, start, count, function=profile.function)
        image.update(zip(range(start, start + count), regs, strict=True))
    return {p.key: value_of(p, [image[a] for a in range(p.address, p.address + p.size)], profile.word_order)
            for p in profile.points}


async def read_serial(link: Link, unit: int, profile: Profile) -> str | None:
    if profile.serial is None:
        return None
    regs = await link.read(unit, profile.serial.address, profile.serial.size, function=profile.serial_function)
    value = value_of(profile.serial, regs)
    return str(int(value)) if value is not None else None


def meter_reading(dev_id: str, ts: datetime, values: dict[str, float | int | None]) -> m.MeterReading:
    top = {k: float(v) for k, v in values.items() if k in METER_FIELDS and v is not None}
    extra: dict[str, m.ExtraValue] = {k[6:]: v for k, v in values.items() if k.startswith("extra.")}
    phases = []
    for n in (1, 2, 3):
        fields = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith(f"l{n}.") and v is not None}
        if "power_factor" in fields:
            fields["power_factor"] = abs(fields["power_factor"])
        if fields:
            phases.append(m.PhaseValues(phase=n, **fields))
    return m.MeterReading(device_id=dev_id, timestamp=ts, phases=phases, extra=extra, **top)
