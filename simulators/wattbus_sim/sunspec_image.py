"""SunSpec register images built from the official model definitions (pysunspec2's JSON).

`encode_model(model_id, values)` turns engineering values into the registers a real device
serves: scale factors applied, points without a value set to the type's not-implemented
sentinel, repeating groups (model 160 modules) from lists. `wattbus-sim sunspec_image MODEL`
prints a model's registers for a look at the layout.
"""

from __future__ import annotations

import argparse
import json
import struct
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

SIZES = {"uint32": 2, "int32": 2, "acc32": 2, "enum32": 2, "bitfield32": 2, "float32": 2, "ipaddr": 2,
         "uint64": 4, "int64": 4, "acc64": 4, "float64": 4, "eui48": 4, "ipv6addr": 8}
SUNS = [0x5375, 0x6E53]
END = [0xFFFF, 0]


@cache
def definition(model_id: int) -> dict[str, Any]:
    path = Path(str(resources.files("sunspec2"))) / "models" / "json" / f"model_{model_id}.json"
    group: dict[str, Any] = json.loads(path.read_text())["group"]
    return group


def _size(point: dict[str, Any]) -> int:
    return int(point.get("size") or SIZES.get(point["type"], 1))


def _sentinel(ptype: str, size: int) -> list[int]:
    if ptype in ("int16", "sunssf", "int32", "int64"):
        return [0x8000] + [0] * (size - 1)
    if ptype.startswith("float"):
        return _float(float("nan"), size)
    if ptype.startswith("acc") or ptype in ("string", "pad", "count", "ipaddr", "ipv6addr", "eui48"):
        return [0] * size
    return [0xFFFF] * size


def _float(value: float, size: int) -> list[int]:
    packed = struct.pack(">f" if size == 2 else ">d", value)
    return [int.from_bytes(packed[i:i + 2], "big") for i in range(0, len(packed), 2)]


def _int(value: int, size: int) -> list[int]:
    value &= (1 << (16 * size)) - 1
    return [(value >> (16 * (size - 1 - i))) & 0xFFFF for i in range(size)]


def offset_of(model_id: int, name: str) -> int:
    """Offset of a top-level point from the model's ID register."""
    pos = 0
    for point in definition(model_id)["points"]:
        if point["name"] == name:
            return pos
        pos += _size(point)
    raise KeyError(f"model {model_id} has no point {name}")


def encode_point(point: dict[str, Any], value: Any, scope: dict[str, Any]) -> list[int]:
    ptype, size = point["type"], _size(point)
    if value is None:
        return _sentinel(ptype, size)
    if ptype == "string":
        data = str(value).encode()[: size * 2].ljust(size * 2, b"\0")
        return [int.from_bytes(data[i:i + 2], "big") for i in range(0, size * 2, 2)]
    if ptype.startswith("float"):
        return _float(float(value), size)
    if ptype.startswith("enum") and isinstance(value, str):
        value = next(int(s["value"]) for s in point.get("symbols", []) if s["name"] == value)
    sf = point.get("sf")
    if isinstance(sf, str):
        sf = int(scope.get(sf, 0))
    if isinstance(sf, int) and sf:
        value = round(float(value) / 10 ** sf)
    return _int(int(value), size)


def _encode_group(group: dict[str, Any], values: dict[str, Any]) -> list[int]:
    regs: list[int] = []
    for point in group.get("points", []):
        regs.extend(encode_point(point, values.get(point["name"]), values))
    for sub in group.get("groups", []):
        count = sub.get("count", 1)
        # fixed groups exist even when no values are given
        default: list[dict[str, Any]] = [{}] * count if isinstance(count, int) else []
        items = values.get(sub["name"], default)
        for item in items if isinstance(items, list) else [items]:
            regs.extend(_encode_group(sub, {**values, **item}))
    return regs


def encode_model(model_id: int, values: dict[str, Any]) -> list[int]:
    """The registers of one model from ID to its last point (ID and L filled in)."""
    body = _encode_group(definition(model_id), {**values, "ID": model_id, "L": 0})
    body[1] = len(body) - 2
    return body


def encode_device(models: list[tuple[int, dict[str, Any]]]) -> tuple[list[int], dict[int, int]]:
    """SunS + models + end marker; also returns where each model's ID register sits (offsets)."""
    regs = list(SUNS)
    where: dict[int, int] = {}
    for model_id, values in models:
        where.setdefault(model_id, len(regs))
        regs.extend(encode_model(model_id, values))
    return regs + END, where


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="wattbus-sim sunspec_image", description="print a model's registers")
    parser.add_argument("model", type=int)
    args = parser.parse_args(argv)
    print(json.dumps(encode_model(args.model, {})))
    return 0
