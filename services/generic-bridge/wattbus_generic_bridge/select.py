"""Selectors: JSONPath (RFC 9535, python-jsonpath) into a JSON document, and value coercion.

`$.main.value` picks AI-on-the-edge's reading, `$.StatusSNS.SML.Total_in` a Tasmota SML total,
`$.emeters[0].power` the first element of a list. A selector must match exactly one node; none is a
miss (the value is null and the miss counted), several is a miss too (the description is ambiguous).
"""

from __future__ import annotations

from typing import Any

import jsonpath
from jsonpath.exceptions import JSONPathError

TRUE_WORDS = frozenset({"on", "true", "1", "yes"})
FALSE_WORDS = frozenset({"off", "false", "0", "no"})


class SelectorError(ValueError):
    """A selector that does not compile (start-up) or a value that does not convert (run time)."""


class Selector:
    def __init__(self, text: str) -> None:
        self.text = text
        try:
            self._path = jsonpath.compile(text)
        except JSONPathError as exc:
            # python-jsonpath's message spans lines with a caret under the position; keep the first.
            raise SelectorError(f"{text!r} is not a JSONPath: {str(exc).splitlines()[0]}") from None

    def find(self, doc: Any) -> tuple[bool, Any]:
        """(found, value): found is False when nothing, or more than one node, matched."""
        try:
            nodes = self._path.findall(doc)
        except JSONPathError:  # e.g. a filter comparing types that the document does not hold
            return False, None
        if len(nodes) != 1:
            return False, None
        return True, nodes[0]


def as_number(raw: Any, where: str) -> float | None:
    """A JSON number or numeric text (AI-on-the-edge sends "521.17108"); '' and null are missing."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise SelectorError(f"{where}: {raw!r} is true/false, expected a number")
    if isinstance(raw, int | float):
        return float(raw)
    if isinstance(raw, str):
        try:
            return float(raw.strip())
        except ValueError:
            raise SelectorError(f"{where}: {raw[:40]!r} is not a number") from None
    raise SelectorError(f"{where}: a JSON {type(raw).__name__} is not a number")


def as_bool(raw: Any, where: str) -> bool | None:
    """true/false, 1/0, and the words relays use (Tasmota "ON"/"OFF")."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int | float) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str) and raw.strip().lower() in TRUE_WORDS | FALSE_WORDS:
        return raw.strip().lower() in TRUE_WORDS
    raise SelectorError(f"{where}: {str(raw)[:40]!r} is not on/off")


def as_text(raw: Any) -> str | None:
    if raw is None:
        return None
    return raw if isinstance(raw, str) else str(raw)
