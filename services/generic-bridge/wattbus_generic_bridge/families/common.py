"""What every family adapter uses: its device entry, its data file, JSON values to SI by table."""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any, Protocol, TypeVar

import msgspec

from .. import units

T = TypeVar("T")
Key = tuple[str, str]  # [the device's key ("-KEY": negated; "{n}": a phase), unit]; "" when unitless


class Entry(Protocol):
    """What a family reads from its device entry (config.DeviceConfig)."""

    id: str
    name: str | None
    host: str | None
    port: int | None
    interval_s: float | None


def load_data(package: str | None, name: str, schema: type[T]) -> T:
    """A family's data file (next to its adapter) decoded into its schema and checked (`parse_data`)."""
    assert package is not None
    return parse_data((resources.files(package) / name).read_text(), name, schema)


def parse_data(text: str, name: str, schema: type[T]) -> T:
    """Data decoded into its schema, each [key, unit] table's units checked against the fields they
    fill (tables named *_extra fill extra.<field>): ValueError names the file, table and field."""
    try:
        data = msgspec.convert(tomllib.loads(text), type=schema)
    except (tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise ValueError(f"{name}: {exc}") from None
    for table, entries in msgspec.structs.asdict(data).items():  # type: ignore[arg-type]
        for field, key in entries.items() if isinstance(entries, dict) else ():
            if isinstance(key, tuple) and (why := units.check(
                    f"extra.{field}" if table.endswith("_extra") else field, key[1] or None)):
                raise ValueError(f"{name} [{table}] {field}: {why}")
    return data


def number(raw: Any) -> float | None:
    """A JSON number (or {"Value": number}); anything else, null included, is None."""
    if isinstance(raw, dict):
        raw = raw.get("Value")
    return float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else None


def values(src: dict[str, Any], table: dict[str, Key], n: int = 0, sign: int = 1) -> dict[str, Any]:
    """SI values by field from a [key, unit] table; power_w times `sign` (0: no known direction, null)."""
    out: dict[str, Any] = {}
    for field, (key, unit) in table.items():
        raw = number(src.get(key.lstrip("-").format(n=n)))
        factor = (sign if field == "power_w" else 1) * (-1 if key.startswith("-") else 1)
        out[field] = None if raw is None or not factor else units.to_si(raw * factor, unit or None)
    return out
