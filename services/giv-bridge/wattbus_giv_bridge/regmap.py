"""Register maps as data (data/*.toml) and the one generic adapter that reads them.

A map lists the register blocks to poll and named points in the shared register schema
(wattbus.registers: `pv1_power_w = { address = 18, max = 50000 }` with `defaults = { table =
"input" }`). The adapter turns a register cache into {name: value}; a register the device did not
send, or a value outside the point's plausible range, is None (missing), never 0. A map may also
name the holding-register points a command may write (`writable`, the safe list) and write
recipes (`[recipes.eco]`: point = raw word, written in order) that commands use by name.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Literal

import msgspec
from wattbus import registers
from wattbus.registers import Point

Bank = Literal["hr", "ir"]
Value = float | int | str | bool | None
BANK: dict[str, Bank] = {"holding": "hr", "input": "ir"}  # the dongle's names of the two tables


class MapError(ValueError):
    """A register map data file that does not describe registers correctly."""


@dataclass(frozen=True, slots=True)
class Block:
    bank: Bank
    base: int
    count: int


class _File(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A map file's top level (its points are checked one by one by wattbus.registers)."""

    blocks: list[registers.Block]
    device: str = ""  # the map's name in errors (default: the file's)
    points: dict[str, object]
    defaults: registers.Defaults = registers.NO_DEFAULTS
    writable: list[str] = []
    recipes: dict[str, dict[str, int]] = {}


@dataclass(frozen=True, slots=True)
class RegisterMap:
    device: str
    blocks: tuple[Block, ...]
    points: Mapping[str, Point]
    writable: frozenset[str] = frozenset()  # holding-register points a command may write
    recipes: Mapping[str, Mapping[str, int]] = field(default_factory=lambda: MappingProxyType({}))

    def point(self, name: str) -> Point:
        if name not in self.points:
            raise MapError(f"{self.device} map: no point {name!r}")
        return self.points[name]

    def recipe(self, name: str) -> dict[str, int]:
        """The writes of one named recipe, in order (a copy: callers add to it)."""
        if name not in self.recipes:
            raise MapError(f"{self.device} map: no recipe {name!r} (has {', '.join(self.recipes)})")
        return dict(self.recipes[name])

    def decode(self, cache: RegisterCache) -> dict[str, Value]:
        return {name: decode_point(p, cache) for name, p in self.points.items()}


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


def decode_point(point: Point, cache: RegisterCache) -> Value:
    words = [cache.get(BANK[point.table], r) for r in point.registers]
    if any(w is None for w in words):
        return None
    return registers.decode(point, [w for w in words if w is not None])


def parse(text: str, where: str) -> RegisterMap:
    try:
        data = msgspec.convert(tomllib.loads(text), _File)
    except tomllib.TOMLDecodeError as exc:
        raise MapError(f"{where}: not valid TOML ({exc})") from exc
    except msgspec.ValidationError as exc:
        raise MapError(f"{where}: {exc}") from None
    for block in data.blocks:
        if block.address % 60 or not 1 <= block.count <= 60:
            raise MapError(f"{where}: block {block} must be 60-aligned, 1-60 registers (the dongle's reads)")
    blocks = tuple(Block(BANK[b.table], b.address, b.count) for b in data.blocks)
    try:
        points = registers.points(data.points, where, data.defaults)
    except registers.RegisterError as exc:
        raise MapError(str(exc)) from None
    for name, point in points.items():
        if point.type not in ("uint16", "int16", "uint32", "bool", "text", "hhmm") or point.word_order != "big":
            raise MapError(f"{where} [points] {name}: GivEnergy registers are 16-bit words, high word first: "
                           f"type {point.type!r} (word order {point.word_order}) is not one of them")
        if not any(b.bank == BANK[point.table] and b.base <= r < b.base + b.count
                   for b in blocks for r in point.registers):
            raise MapError(f"{where}: point {name!r} ({point.table} {point.address}) is in no polled block")
    for name in data.writable:
        target = points.get(name)
        if target is None or target.table != "holding" or target.size != 1:
            raise MapError(f"{where}: writable {name!r} is not a one-register holding point of this map")
    recipes = {name: _recipe(name, spec, set(data.writable), where) for name, spec in data.recipes.items()}
    return RegisterMap(data.device or where, blocks, MappingProxyType(points), frozenset(data.writable),
                       MappingProxyType(recipes))


def _recipe(name: str, spec: dict[str, int], writable: set[str], where: str) -> Mapping[str, int]:
    if not spec:
        raise MapError(f"{where}: recipe {name!r} must be a table of point = value")
    for point, value in spec.items():
        if point not in writable:
            raise MapError(f"{where}: recipe {name!r} writes {point!r}, which is not writable")
        if isinstance(value, bool) or not 0 <= value <= 0xFFFF:
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
