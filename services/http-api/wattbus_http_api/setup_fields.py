"""What each setting is, for the setup wizard's typed inputs: taken from the owning Struct itself.

The JSON schema msgspec derives from a config Struct already holds what a form needs: `Literal`
fields are enums (a select), numbers carry their `Meta` bounds (a number input with min/max),
booleans a checkbox. The words come from settings_help.toml (plain language, per key), else from
the field's `Meta(description=...)`; the label is the key in words with its unit ("min_current_a"
-> "Minimum current (A)"), so nobody reads raw key names.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

UNITS = {"a": "A", "w": "W", "wh": "Wh", "s": "s", "pct": "%", "v": "V", "c": "°C", "hz": "Hz", "m3": "m³"}
WORDS = {"min": "minimum", "max": "maximum", "soc": "charge", "id": "name", "lp": "loadpoint",
         "breaker": "circuit breaker"}


def label(key: str) -> str:
    """`max_phase_switches_per_hour` -> "Maximum phase switches per hour"; a unit suffix in brackets."""
    parts = key.split("_")
    unit = UNITS.get(parts[-1]) if len(parts) > 1 else None
    if unit is not None:
        parts = parts[:-1]
    words = " ".join(WORDS.get(p, p) for p in parts)
    text = words[:1].upper() + words[1:]
    return f"{text} ({unit})" if unit else text


def _plain(node: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The one non-null alternative of an `X | None` field, and whether null was allowed."""
    options = node.get("anyOf")
    if options is None:
        return node, False
    real = [o for o in options if o.get("type") != "null"]
    return (real[0] if len(real) == 1 else {}), len(real) < len(options)


def _field(key: str, node: dict[str, Any], help_text: str | None) -> dict[str, Any]:
    plain, optional = _plain(node)
    field: dict[str, Any] = {"key": key, "label": label(key), "optional": optional,
                             "help": help_text or plain.get("description") or node.get("description")}
    if "default" in node:
        field["default"] = node["default"]
    if "enum" in plain:
        field["input"] = "select"
        field["choices"] = plain["enum"]
    elif plain.get("type") in ("number", "integer"):
        field["input"] = "number"
        field["step"] = 1 if plain["type"] == "integer" else "any"
        for bound, name in (("minimum", "min"), ("maximum", "max"), ("exclusiveMinimum", "above"),
                            ("exclusiveMaximum", "below")):
            if bound in plain:
                field[name] = plain[bound]
    elif plain.get("type") == "boolean":
        field["input"] = "checkbox"
    elif plain.get("type") == "string":
        field["input"] = "text"
        if "pattern" in plain:
            field["pattern"] = plain["pattern"]
    else:  # lists and tables: edited elsewhere (roles) or in the file
        field["input"] = "none"
    return field


def describe(config_type: type[Any], help_table: dict[str, str], keys: Iterable[str] | None = None,
             inner: str | None = None) -> list[dict[str, Any]]:
    """One entry per field of `config_type` (in its order), or of `keys` when given; `inner` names a
    Struct used inside it (the controller's "LoadpointConfig") to describe instead."""
    schema = msgspec.json.schema(config_type)
    name = inner or schema["$ref"].rsplit("/", 1)[-1]
    props: dict[str, Any] = schema["$defs"][name]["properties"]
    chosen = list(props) if keys is None else [k for k in keys if k in props]
    return [_field(key, props[key], help_table.get(key)) for key in chosen]
