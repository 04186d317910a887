"""What each setting is, for the setup wizard's typed inputs: taken from the owning Struct itself.

The JSON schema msgspec derives from a config Struct already holds what a form needs: `Literal`
fields are enums (a select), numbers carry their `Meta` bounds (a number input with min/max),
booleans a checkbox. The words come from settings_help.toml (plain language, per key), else from
the field's `Meta(description=...)`; the label is the key in words with its unit ("min_current_a"
-> "Minimum current (A)"), so nobody reads raw key names. The bridges type their manual-add forms
the same way (wattbus.bridge.form), so both share that code.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Iterable
from typing import Any

from wattbus import messages as m
from wattbus.bridge.form import describe_node, label, properties

__all__ = ["FormError", "describe", "fill", "form_values", "label", "nested"]
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_TEXT = 256
MISSING: Any = object()  # a value left out: its key goes too


def describe(config_type: type[Any], help_table: dict[str, str], keys: Iterable[str] | None = None,
             inner: str | None = None) -> list[dict[str, Any]]:
    """One entry per field of `config_type` (in its order), or of `keys` when given; `inner` names a
    Struct used inside it (the controller's "LoadpointConfig") to describe instead."""
    props = properties(config_type, inner)
    chosen = list(props) if keys is None else [k for k in keys if k in props]
    return [describe_node(key, props[key], help_table.get(key)) for key in chosen]


# ------------------------------------------------------------------ a bridge's manual-add form, filled in

class FormError(ValueError):
    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.where = where
        self.message = message


def _number(f: m.FormField, value: Any) -> float | int:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise FormError(f"$.{f.key}", f"{f.label}: {value[:40]!r} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FormError(f"$.{f.key}", f"{f.label}: a number is needed")
    for bound, ok, words in ((f.min, operator.ge, ">="), (f.max, operator.le, "<="), (f.above, operator.gt, ">"),
                             (f.below, operator.lt, "<")):
        if bound is not None and not ok(value, bound):
            raise FormError(f"$.{f.key}", f"{f.label}: {value:g} is out of range (must be {words} {bound:g})")
    if f.step == 1:
        if value != int(value):
            raise FormError(f"$.{f.key}", f"{f.label}: a whole number is needed")
        return int(value)
    return value


def _checked(f: m.FormField, value: Any) -> Any:
    if f.input == "number":
        return _number(f, value)
    if f.input == "checkbox":
        if not isinstance(value, bool):
            raise FormError(f"$.{f.key}", f"{f.label}: true or false")
        return value
    if f.input == "select":
        found = next((c for c in f.choices if str(c) == str(value)), None)
        if found is None:
            raise FormError(f"$.{f.key}",
                            f"{f.label}: {str(value)[:40]!r} is not one of {', '.join(map(str, f.choices))}")
        return found
    text = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        raise FormError(f"$.{f.key}", f"{f.label}: text of at most {MAX_TEXT} characters is needed")
    if f.pattern is not None and re.fullmatch(f.pattern, text) is None:
        raise FormError(f"$.{f.key}", f"{f.label}: {text[:40]!r} does not fit (allowed: {f.pattern})")
    return text


def form_values(form: m.AddForm, given: dict[str, Any]) -> dict[str, Any]:
    """The form's values, each checked against its field (type, bounds, choices, pattern); an empty one
    takes the field's default, or is left out when optional. FormError names the field."""
    keys = {f.key for f in form.fields}
    unknown = sorted(set(given) - keys)
    if unknown:
        raise FormError(f"$.{unknown[0]}", f"{unknown[0]} is not a field of the {form.title} form; its fields: "
                                           f"{', '.join(sorted(keys))}")
    values: dict[str, Any] = {}
    for f in form.fields:
        value = given.get(f.key)
        if value is None or value == "":
            value = f.default
        if value is None:
            if not f.optional:
                raise FormError(f"$.{f.key}", f"{f.label} is needed for a {form.title}")
            continue
        values[f.key] = _checked(f, value)
    return values


def fill(entry: Any, values: dict[str, Any]) -> Any:
    """The bridge's list item, flat: "{key}" alone takes the value with its type, other text is
    formatted; an item whose value was left out is dropped (MISSING)."""
    if isinstance(entry, dict):
        out = {k: fill(v, values) for k, v in entry.items()}
        return {k: v for k, v in out.items() if v is not MISSING and v != []}
    if isinstance(entry, list):
        return [item for item in (fill(v, values) for v in entry) if item is not MISSING]
    if isinstance(entry, str):
        whole = PLACEHOLDER.fullmatch(entry)
        if whole is not None:
            return values.get(whole.group(1), MISSING)
        names = PLACEHOLDER.findall(entry)
        if any(n not in values for n in names):
            return MISSING
        return PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), entry)
    return entry


def nested(flat: dict[str, Any]) -> dict[str, Any]:
    """A probe's flat entry as the config item: "vars.number" -> vars = { number = ... }."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, last = key.split(".")
        target = out
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value
    return out
