"""One register-point schema for every Modbus-style device description, and the decode of raw words.

A point is where one value lives in a device's 16-bit registers: the address, the table (holding
registers, Modbus function 3, or input registers, function 4), the type, the word order of a
multi-word value, a scale (the value is raw * scale), its unit after scaling and, optionally, the
range a healthy device can report (a value outside reads as missing). Data files name their points:

    [points]
    pv1_power_w = { address = 18, table = "input", max = 50000 }
    energy_import_wh = { address = 0x48, table = "input", type = "float32", scale = 1000, unit = "Wh" }

A file may set `table`, `word_order` and `type` once for all its points (`defaults`). giv-bridge's register
maps, sunspec-bridge's register profiles and generic-bridge's Modbus values all use this schema;
decoding is one function, so a float32 or a scaled uint16 reads the same in every bridge.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

Table = Literal["holding", "input"]
WordOrder = Literal["big", "little"]  # big: the high word comes first (the Modbus convention)
NumberType = Literal["int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"]
# bool: 0 or 1 (anything else is missing); hhmm: a time of day as hours * 100 + minutes;
# text: ASCII, two characters per register (`words` of them), NULs and spaces trimmed
RegisterType = NumberType | Literal["bool", "hhmm", "text"]
WORDS: dict[str, int] = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "int64": 4, "uint64": 4,
                         "float32": 2, "float64": 4, "bool": 1, "hhmm": 1}
FORMATS = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "int64": ">q", "uint64": ">Q",
           "float32": ">f", "float64": ">d"}
TABLE_OF_FUNCTION: dict[int, Table] = {3: "holding", 4: "input"}
Decoded = float | int | str | bool | None


class RegisterError(ValueError):
    """Register points that do not describe registers; the message names the file and the point."""


class Point(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One value in a device's registers."""

    address: Annotated[int, Meta(ge=0, le=0xFFFF)]
    table: Table = "holding"
    type: RegisterType = "uint16"
    words: Annotated[int, Meta(ge=1, le=125)] | None = None  # text only: its length in registers
    word_order: WordOrder = "big"
    scale: float = 1.0
    unit: str | None = None  # the unit after scaling (informative: names such as power_w carry it too)
    min: float | None = None  # a value below or above what a healthy device reports reads as missing
    max: float | None = None

    @property
    def size(self) -> int:
        """How many registers the value takes."""
        return self.words or 1 if self.type == "text" else WORDS[self.type]

    @property
    def registers(self) -> range:
        return range(self.address, self.address + self.size)


class Defaults(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a file sets once for the points that do not say."""

    table: Table = "holding"
    word_order: WordOrder = "big"
    type: RegisterType = "uint16"


NO_DEFAULTS = Defaults()


class Block(msgspec.Struct, frozen=True):
    """One read: `count` registers of `table` from `address`."""

    table: Table
    address: int
    count: int


def point(raw: object, where: str, defaults: Defaults = NO_DEFAULTS) -> Point:
    """One point from its TOML table, checked; `where` names it in errors ("x.toml [points] power_w")."""
    if isinstance(raw, dict):
        raw = {"table": defaults.table, "word_order": defaults.word_order, "type": defaults.type, **raw}
    try:
        found = msgspec.convert(raw, Point)
    except msgspec.ValidationError as exc:
        raise RegisterError(f"{where}: {exc}") from None
    if (found.type == "text") != (found.words is not None):
        raise RegisterError(f"{where}: `words` (the length in registers) goes with type = \"text\" and only there")
    if found.address + found.size > 0x10000:
        raise RegisterError(f"{where}: {found.size} registers from {found.address} run past register 65535")
    if found.min is not None and found.max is not None and found.min > found.max:
        raise RegisterError(f"{where}: min {found.min:g} is above max {found.max:g}")
    return found


def points(raw: object, where: str, defaults: Defaults = NO_DEFAULTS) -> dict[str, Point]:
    """A file's [points] table: name -> Point, each checked (errors name the point)."""
    if not isinstance(raw, dict) or not raw:
        raise RegisterError(f"{where}: [points] is missing or empty")
    return {str(name): point(spec, f"{where} [points] {name}", defaults) for name, spec in raw.items()}


def plan(wanted: Sequence[Point], max_count: int = 125, max_gap: int = 8) -> list[Block]:
    """The points' registers as few reads as allowed: a read spans at most `max_count` registers
    and reads across gaps of up to `max_gap` unused ones rather than sending another request."""
    blocks: list[Block] = []
    for table, start, size in sorted({(p.table, p.address, p.size) for p in wanted}):
        last = blocks[-1] if blocks else None
        end = start + size
        if last and last.table == table and start - (last.address + last.count) <= max_gap \
                and end - last.address <= max_count:
            blocks[-1] = Block(table, last.address, max(last.count, end - last.address))
        else:
            blocks.append(Block(table, start, size))
    return blocks


def shortest_float32(number: float) -> float:
    """The shortest decimal that is the same float32: 230.1, not 230.10000610351562."""
    packed = struct.pack(">f", number)
    for digits in range(6, 10):
        candidate = float(f"{number:.{digits}g}")
        if struct.pack(">f", candidate) == packed:
            return candidate
    return float(number)


def _number(p: Point, words: Sequence[int]) -> float | int | None:
    if p.word_order == "little":
        words = list(reversed(words))
    raw = struct.unpack(FORMATS[p.type], b"".join(w.to_bytes(2, "big") for w in words))[0]
    if isinstance(raw, float):
        if math.isnan(raw) or math.isinf(raw):
            return None  # float registers hold NaN when the device has no value
        raw = shortest_float32(raw) if p.type == "float32" else raw
    number: float | int = raw if p.scale == 1.0 else round(raw * p.scale, 6)  # 0.1 steps without float dust
    if (p.min is not None and number < p.min) or (p.max is not None and number > p.max):
        return None
    return number


def decode(p: Point, words: Sequence[int]) -> Decoded:
    """The point's value from its registers (`p.size` words, first register first); None = missing."""
    if len(words) != p.size:
        raise RegisterError(f"{p.table} register {p.address}: {len(words)} words for a {p.size}-register {p.type}")
    match p.type:
        case "text":
            text = b"".join(w.to_bytes(2, "big") for w in words).decode("ascii", errors="replace").strip("\x00 ")
            return text if text.isprintable() and text else None
        case "hhmm":
            hours, minutes = divmod(words[0], 100)
            return f"{hours:02d}:{minutes:02d}" if hours <= 23 and minutes <= 59 else None
        case "bool":
            return bool(words[0]) if words[0] in (0, 1) else None
    return _number(p, words)


def decode_all(wanted: Mapping[str, Point], image: Mapping[tuple[str, int], int]) -> dict[str, Decoded]:
    """Every point from a register image {(table, address): word}; a register not read is missing."""
    out: dict[str, Decoded] = {}
    for name, p in wanted.items():
        words = [image.get((p.table, r)) for r in p.registers]
        out[name] = None if any(w is None for w in words) else decode(p, [w for w in words if w is not None])
    return out
