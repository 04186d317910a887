"""Decode a SunSpec model's registers with its official definition.

Registers in, SI-ish values out: scale factors applied, not-implemented sentinels (0x8000, 0xFFFF,
0x80000000, NaN, acc 0) returned as None, strings trimmed, enums and bitfields named by the
model's own symbols. Garbage (a scale factor outside ±10, a model shorter than its definition)
becomes an entry in `errors`, never an exception from a poll loop.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any

from wattbus.registers import shortest_float32  # also this module's name for it (tests)

from .models import GroupDef, ModelDef, PointDef

# A value in a decoded model: a number, a name, a list of names (bitfield), a nested group.
Value = Any

_UNSIGNED_NA = {1: 0xFFFF, 2: 0xFFFFFFFF, 4: 0xFFFFFFFFFFFFFFFF}
_SIGNED_NA = {1: 0x8000, 2: 0x80000000, 4: 0x8000000000000000}
SF_LIMIT = 10  # |sf| beyond this is garbage on the wire, not a real exponent


@dataclass
class DecodedModel:
    model_id: int
    name: str
    address: int  # register address of the model's ID register
    length: int  # L as announced by the device
    values: dict[str, Value]
    errors: list[str] = field(default_factory=list)


def join(regs: list[int]) -> int:
    value = 0
    for reg in regs:
        value = (value << 16) | (reg & 0xFFFF)
    return value


def raw_point(point: PointDef, regs: list[int]) -> int | float | str | None:
    """The unscaled value of one point, or None for the type's not-implemented sentinel."""
    ptype, size = point.type, len(regs)
    if ptype == "string":
        text = b"".join(r.to_bytes(2, "big") for r in regs).split(b"\0", 1)[0]
        decoded = text.decode("utf-8", errors="replace").strip()
        return decoded or None
    if ptype in ("float32", "float64"):
        packed = b"".join(r.to_bytes(2, "big") for r in regs)
        number = struct.unpack(">f" if size == 2 else ">d", packed)[0]
        if math.isnan(number) or math.isinf(number):
            return None
        return shortest_float32(number) if size == 2 else float(number)
    value = join(regs)
    if ptype in ("int16", "int32", "int64", "sunssf"):
        if value == _SIGNED_NA[size]:
            return None
        return value - (1 << (16 * size)) if value & (1 << (16 * size - 1)) else value
    if ptype.startswith("acc"):
        return None if value == 0 else value  # SunSpec: an accumulator of 0 means "not implemented"
    if ptype == "pad":
        return None
    if ptype == "ipaddr":
        return None if value == 0 else ".".join(str((value >> s) & 0xFF) for s in (24, 16, 8, 0))
    if ptype in ("ipv6addr", "eui48"):
        return None if value == 0 else f"{value:0{size * 4}x}"
    # uint*, enum*, bitfield*, count
    return None if value == _UNSIGNED_NA.get(size) and ptype != "count" else value


def _scale(value: float | int, sf: int) -> float | int:
    if sf == 0:
        return value
    if sf < 0:
        return value / float(10 ** (-sf))  # divide by an exact power of ten: 2301/10 == 230.1, no float dust
    return value * int(10 ** sf)


class _Walker:
    def __init__(self, regs: list[int], errors: list[str]) -> None:
        self.regs = regs
        self.pos = 0
        self.errors = errors

    def group(self, group: GroupDef, scopes: list[dict[str, Value]], end: int) -> dict[str, Value]:
        raw: dict[str, Value] = {}
        points: list[PointDef] = []
        for point in group.points:
            chunk = self.regs[self.pos:self.pos + point.size]
            self.pos += point.size
            if len(chunk) < point.size:
                self.errors.append(f"point {point.name}: model ends before it")
                raw[point.name] = None
                continue
            raw[point.name] = raw_point(point, chunk)
            points.append(point)
        chain = [raw, *scopes]
        values: dict[str, Value] = {}
        for point in points:
            if point.type == "pad":
                continue
            values[point.name] = self._value(point, raw[point.name], chain)
        for sub in group.groups:
            repeats = self._count(sub, chain, end)
            if sub.count == 1:
                values[sub.name] = self.group(sub, chain, end)
            else:
                values[sub.name] = [self.group(sub, chain, end) for _ in range(repeats)]
        return values

    def _count(self, sub: GroupDef, chain: list[dict[str, Value]], end: int) -> int:
        if isinstance(sub.count, str):
            found = next((s[sub.count] for s in chain if sub.count in s), None)
            count = found if isinstance(found, int) else 0
        elif sub.count == 0:  # repeat to the end of the model
            size = max(sub.fixed_size, 1)
            count = max(0, (end - self.pos) // size)
        else:
            count = sub.count
        room = max(0, (end - self.pos) // max(sub.fixed_size, 1))
        if count > room:
            self.errors.append(f"group {sub.name}: count {count} does not fit the model, reading {room}")
            count = room
        return count

    def _value(self, point: PointDef, raw: Value, chain: list[dict[str, Value]]) -> Value:
        if raw is None:
            return None
        if point.symbols and point.type.startswith("enum"):
            return point.symbols.get(int(raw), int(raw))
        if point.type.startswith("bitfield"):
            return [point.symbols.get(bit, f"bit{bit}") for bit in range(point.size * 16) if int(raw) >> bit & 1]
        if point.sf is None or not isinstance(raw, (int, float)) or point.type == "sunssf":
            return raw
        if isinstance(point.sf, int):
            sf: Any = point.sf
        else:
            sf = next((s[point.sf] for s in chain if point.sf in s), None)
        if not isinstance(sf, int):
            return None  # the scale factor is not implemented, so the value cannot be read
        if abs(sf) > SF_LIMIT:
            self.errors.append(f"point {point.name}: scale factor {point.sf}={sf} out of range")
            return None
        return _scale(raw, sf)


def decode_model(mdef: ModelDef, address: int, regs: list[int]) -> DecodedModel:
    """Decode a model; `regs` starts at its ID register and holds L + 2 registers."""
    errors: list[str] = []
    length = regs[1] if len(regs) > 1 else 0
    if len(regs) < 2 or regs[0] != mdef.model_id:
        errors.append(f"model {mdef.model_id} at {address}: header {regs[:2]} does not match")
    if length < mdef.fixed_length:
        errors.append(f"model {mdef.model_id} at {address}: length {length} < definition {mdef.fixed_length}")
    walker = _Walker(regs, errors)
    values = walker.group(mdef.group, [], len(regs))
    values.pop("ID", None)
    values.pop("L", None)
    return DecodedModel(mdef.model_id, mdef.name, address, length, values, errors)


def point_offsets(mdef: ModelDef) -> dict[str, tuple[int, PointDef]]:
    """Offsets (from the ID register) of a model's top-level points, for writes."""
    offsets: dict[str, tuple[int, PointDef]] = {}
    pos = 0
    for point in mdef.group.points:
        offsets[point.name] = (pos, point)
        pos += point.size
    return offsets
