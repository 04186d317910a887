"""The generated contract docs do not depend on how a msgspec release formats docstrings or unions."""

from __future__ import annotations

import textwrap
from typing import Any

from wattbus import messages as m
from wattbus import schema


def _walk(node: Any) -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [pair for key, value in node.items() for pair in [(key, value), *_walk(value)]]
    if isinstance(node, list):
        return [pair for item in node for pair in _walk(item)]
    return []


def test_what_older_msgspec_produced_normalises_to_what_the_docs_hold() -> None:
    # msgspec <= 0.22 kept the docstring lines after the first indented; <= 0.21 put null where the
    # flattened Optional had it. Both shapes, built from a real message, must come out as today's docs do.
    raw = textwrap.dedent(m.ReloadConfig.__doc__ or "").strip()
    assert "\n    " in raw, "ReloadConfig's docstring spans indented lines (the case this guards)"
    old = {"description": raw, "anyOf": [{"type": "string"}, {"type": "null"}, {"type": "array"}]}
    new = schema._normalise(old)
    assert new["description"] == schema.json_schema()["$defs"]["ReloadConfig"]["description"]
    assert not any(line.startswith(" ") for line in new["description"].splitlines())
    assert new["anyOf"] == [{"type": "string"}, {"type": "array"}, {"type": "null"}]
    assert schema._normalise(new) == new, "normalising twice changes nothing"


def test_the_generated_schema_has_no_release_specific_shapes() -> None:
    pairs = _walk(schema.json_schema())
    descriptions = [value for key, value in pairs if key == "description" and isinstance(value, str)]
    unions = [value for key, value in pairs if key == "anyOf" and isinstance(value, list)]
    assert len(descriptions) > 10 and len(unions) > 5
    assert [d for d in descriptions if "\n " in d] == []
    assert [u for u in unions if {"type": "null"} in u and u[-1] != {"type": "null"}] == []
