"""Register maps as data (data/*.toml) and the one generic adapter that reads them.

A map lists the register blocks to poll and named points (`pv1_power_w = { ir = 18 }`). The
adapter turns a register cache into {name: value}; a register the device did not send, or a
value outside the point's plausible range, is None (missing), never 0. A map may also name the
holding-register points a command may write (`writable`, the safe list) and write recipes
(`[recipes.eco]`: point = raw word, written in order) that commands use by name.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Literal

Bank = Literal["hr", "ir"]
PointType = Literal["uint16", "int16", "uint32", "bool", "serial", "hhmm"]
Value = float | int | str | bool | None
TYPE_WIDTH: dict[str, int] = {"uint16": 1, "int16": 1, "uint32": 2, "bool": 1, "serial": 5, "hhmm": 1}


class MapError(ValueError):
    """A register map data file that does not describe registers correctly."""


@dataclass(frozen=True, slots=True)
class Block:
    bank: Bank
    base: int
    count: int


@dataclass(frozen=True, slots=True)
class Point:
    name: str
    bank: Bank
    register: int
    type: PointType = "uint16"
    scale: float = 1.0
    min: float | None = None
    max: float | None = None

    @property
    def registers(self) -> range:
        return range(self.register, self.register + TYPE_WIDTH[self.type])


@dataclass(frozen=True, slots=True)
class RegisterMap:
    device: str
    blocks: tuple[Block, ...]
    points: tuple[Point, ...]
    writable: frozenset[str] = frozenset()  # holding-register points a command may write
    recipes: Mapping[str, Mapping[str, int]] = field(default_factory=lambda: MappingProxyType({}))

    def point(self, name: str) -> Point:
        for point in self.points:
            if point.name == name:
                return point
        raise MapError(f"{self.device} map: no point {name!r}")

    def recipe(self, name: str) -> dict[str, int]:
        """The writes of one named recipe, in order (a copy: callers add to it)."""
        if name not in self.recipes:
            raise MapError(f"{self.device} map: no recipe {name!r} (has {', '.join(self.recipes)})")
        return dict(self.recipes[name])

    def decode(self, cache: RegisterCache) -> dict[str, Value]:
        return {p.name: decode_point(p, cache) for p in self.points}


class RegisterCache:
    """The latest raw words per (bank, register) of one device address."""

    def __init__(self) -> None:
        self.words: dict[tuple[str, int], int] = {}
        self.version = 0  # bumped by every update: decoded values stay valid until it changes

    def update(self, bank: Bank, base: int, values: tuple[int, ...] | list[int]) -> None:
        for offset, value in enumerate(values):
            self.words[(bank, base + offset)] = value
        self.version += 1

    def get(self, bank: str, register: int) -> int | None:
        return self.words.get((bank, register))


def _hhmm(word: int) -> str | None:
    hours, minutes = divmod(word, 100)
    if hours > 23 or minutes > 59:
        return None
    return f"{hours:02d}:{minutes:02d}"


def decode_point(point: Point, cache: RegisterCache) -> Value:
    words = [cache.get(point.bank, r) for r in point.registers]
    if any(w is None for w in words):
        return None
    raw = [w for w in words if w is not None]
    match point.type:
        case "serial":
            text = b"".join(w.to_bytes(2, "big") for w in raw).decode("ascii", errors="replace").strip("\x00 ")
            return text if text.isprintable() and text else None
        case "hhmm":
            return _hhmm(raw[0])
        case "bool":
            return bool(raw[0]) if raw[0] in (0, 1) else None
        case "int16":
            number: float = raw[0] - 0x10000 if raw[0] & 0x8000 else raw[0]
        case "uint32":
            number = (raw[0] << 16) | raw[1]
        case _:
            number = raw[0]
    value = number * point.scale
    if (point.min is not None and value < point.min) or (point.max is not None and value > point.max):
        return None
    if point.scale == 1.0:
        return int(value)
    return round(value, 6)


def _point(name: str, spec: object, where: str) -> Point:
    if not isinstance(spec, dict):
        raise MapError(f"{where}: point {name!r} must be a table")
    banks = [b for b in ("hr", "ir") if b in spec]
    if len(banks) != 1:
        raise MapError(f"{where}: point {name!r} needs exactly one of hr = N or ir = N")
    unknown = set(spec) - {"hr", "ir", "type", "scale", "min", "max"}
    if unknown:
        raise MapError(f"{where}: point {name!r} has unknown keys {sorted(unknown)}")
    kind = spec.get("type", "uint16")
    if kind not in TYPE_WIDTH:
        raise MapError(f"{where}: point {name!r} type {kind!r} is not one of {sorted(TYPE_WIDTH)}")
    bank: Bank = "hr" if banks[0] == "hr" else "ir"
    register = spec[bank]
    if not isinstance(register, int) or register < 0:
        raise MapError(f"{where}: point {name!r} register {register!r} is not a register number")
    return Point(name, bank, register, kind, float(spec.get("scale", 1.0)),
                 spec.get("min"), spec.get("max"))


def parse(text: str, where: str) -> RegisterMap:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MapError(f"{where}: not valid TOML ({exc})") from exc
    blocks = tuple(Block(b["bank"], b["base"], b["count"]) for b in data.get("blocks", []))
    for block in blocks:
        if block.bank not in ("hr", "ir") or block.base % 60 or not 1 <= block.count <= 60:
            raise MapError(f"{where}: block {block} must be hr/ir, 60-aligned, 1-60 registers")
    points = tuple(_point(name, spec, where) for name, spec in data.get("points", {}).items())
    for point in points:
        if not any(b.bank == point.bank and b.base <= r < b.base + b.count
                   for b in blocks for r in point.registers):
            raise MapError(f"{where}: point {point.name!r} ({point.bank} {point.register}) is in no polled block")
    by_name = {p.name: p for p in points}
    writable = data.get("writable", [])
    if not isinstance(writable, list):
        raise MapError(f"{where}: writable must be a list of point names")
    for name in writable:
        target = by_name.get(name)
        if target is None or target.bank != "hr" or TYPE_WIDTH[target.type] != 1:
            raise MapError(f"{where}: writable {name!r} is not a one-register holding point of this map")
    recipes = {name: _recipe(name, spec, set(writable), where) for name, spec in data.get("recipes", {}).items()}
    return RegisterMap(str(data.get("device", where)), blocks, points, frozenset(writable),
                       MappingProxyType(recipes))


def _recipe(name: str, spec: object, writable: set[str], where: str) -> Mapping[str, int]:
    if not isinstance(spec, dict) or not spec:
        raise MapError(f"{where}: recipe {name!r} must be a table of point = value")
    for point, value in spec.items():
        if point not in writable:
            raise MapError(f"{where}: recipe {name!r} writes {point!r}, which is not writable")
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFFFF:
            raise MapError(f"{where}: recipe {name!r} value {point} = {value!r} is not a 16-bit word")
    return MappingProxyType(dict(spec))


def available() -> list[str]:
    """The register maps in data/ (givtcp.toml there describes the runAll document, see runall.py)."""
    files = resources.files("wattbus_giv_bridge") / "data"
    return sorted(p.name.removesuffix(".toml") for p in files.iterdir()
                  if p.name.endswith(".toml") and p.name != "givtcp.toml")


_loaded: dict[str, RegisterMap] = {}


def load(name: str) -> RegisterMap:
    """Load data/<name>.toml once per process."""
    if name not in _loaded:
        path = resources.files("wattbus_giv_bridge") / "data" / f"{name}.toml"
        _loaded[name] = parse(path.read_text(), f"data/{name}.toml")
    return _loaded[name]
