"""SunSpec model definitions, read from the SunSpec Alliance's JSON files that pysunspec2 ships.

Nothing here types a register map by hand: a model is the JSON's point list plus its repeating
groups. `layout()` turns a definition and the model length the device announced into concrete
register offsets, so decoding is one generic walk for every model (100+ of them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

# Register sizes of the SunSpec point types; `string` uses the size in the definition.
TYPE_SIZES = {
    "uint16": 1, "int16": 1, "sunssf": 1, "enum16": 1, "bitfield16": 1, "acc16": 1, "count": 1, "pad": 1,
    "uint32": 2, "int32": 2, "acc32": 2, "enum32": 2, "bitfield32": 2, "float32": 2, "ipaddr": 2,
    "uint64": 4, "int64": 4, "acc64": 4, "float64": 4, "eui48": 4, "ipv6addr": 8,
}


class ModelError(ValueError):
    """A model id without a definition, or a definition/length that does not fit."""


@dataclass(frozen=True, slots=True)
class PointDef:
    name: str
    type: str
    size: int
    sf: str | int | None = None
    units: str | None = None
    symbols: dict[int, str] = field(default_factory=dict)
    access: str = "R"


@dataclass(frozen=True, slots=True)
class GroupDef:
    name: str
    points: tuple[PointDef, ...]
    groups: tuple[GroupDef, ...] = ()
    count: str | int = 1  # an int, 0 = "repeat to fill the model", or the name of a count point

    @property
    def fixed_size(self) -> int:
        """Registers of one instance, counting nested groups that occur exactly once."""
        return sum(p.size for p in self.points) + sum(g.fixed_size for g in self.groups if g.count == 1)


@dataclass(frozen=True, slots=True)
class ModelDef:
    model_id: int
    name: str
    label: str
    group: GroupDef

    @property
    def fixed_length(self) -> int:
        """The model length L without repeating groups (L excludes the ID and L registers)."""
        return self.group.fixed_size - 2


def _point(raw: dict[str, Any]) -> PointDef:
    ptype = str(raw["type"])
    size = int(raw.get("size") or TYPE_SIZES.get(ptype, 1))
    symbols = {int(s["value"]): str(s["name"]) for s in raw.get("symbols", [])}
    sf = raw.get("sf")
    return PointDef(str(raw["name"]), ptype, size, sf if isinstance(sf, (str, int)) else None,
                    raw.get("units"), symbols, str(raw.get("access", "R")))


def _group(raw: dict[str, Any]) -> GroupDef:
    count = raw.get("count", 1)
    return GroupDef(str(raw["name"]), tuple(_point(p) for p in raw.get("points", [])),
                    tuple(_group(g) for g in raw.get("groups", [])),
                    count if isinstance(count, (int, str)) else 1)


def models_dir() -> Path:
    """Where pysunspec2 keeps the official model JSON files."""
    return Path(str(resources.files("sunspec2"))) / "models" / "json"


@cache
def model_def(model_id: int) -> ModelDef:
    path = models_dir() / f"model_{model_id}.json"
    if not path.exists():
        raise ModelError(f"SunSpec model {model_id}: no definition in {models_dir()}")
    try:
        raw = json.loads(path.read_text())
        group = _group(raw["group"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"SunSpec model {model_id}: unreadable definition {path} ({exc})") from exc
    return ModelDef(model_id, group.name, str(raw["group"].get("label", group.name)), group)


def known_model_ids() -> list[int]:
    ids = []
    for path in models_dir().glob("model_*.json"):
        try:
            ids.append(int(path.stem.split("_", 1)[1]))
        except ValueError:
            continue
    return sorted(ids)
