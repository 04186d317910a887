"""Mustache-style templates: `{{ name }}` and `{{ name | filter | filter:arg }}`.

Deliberately small (seed 004: "moustache-like templating over a simple information model"):
no logic, no loops. Filters: `json` (a JSON value: strings quoted, missing = null), `kilo`
(÷ 1000, Wh → kWh), `round:N`, `int`, `lower`, `upper`, `ident`
(letters, digits, _), `url` (percent-encoded). Templates are
compiled once at start-up; a syntax error or unknown filter raises TemplateError naming the line,
column and placeholder.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENCODER = msgspec.json.Encoder()


class TemplateError(ValueError):
    def __init__(self, message: str, line: int, column: int, placeholder: str) -> None:
        super().__init__(message)
        self.message = message
        self.line = line  # 1-based, within the template text
        self.column = column
        self.placeholder = placeholder


def text_of(value: Any) -> str:
    """A value as plain text: shortest number form, true/false, null for missing."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "null"
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, dict | list):
        return _ENCODER.encode(value).decode()
    return str(value)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _kilo(value: Any, _arg: str | None) -> Any:
    number = _number(value)
    return None if number is None else number / 1000


def _round(value: Any, arg: str | None) -> Any:
    number = _number(value)
    if number is None:
        return value
    digits = int(arg or 0)
    return round(number, digits) if digits else float(round(number))


def _int(value: Any, _arg: str | None) -> Any:
    number = _number(value)
    return value if number is None else round(number)


FILTERS: dict[str, Callable[[Any, str | None], Any]] = {
    "kilo": _kilo, "round": _round, "int": _int,
    "lower": lambda v, _a: v.lower() if isinstance(v, str) else v,
    "upper": lambda v, _a: v.upper() if isinstance(v, str) else v,
    # openHAB item names and similar ids allow letters, digits and _ only.
    "ident": lambda v, _a: re.sub(r"[^A-Za-z0-9_]", "_", text_of(v)),
}
_FINAL = {"json": lambda v: _ENCODER.encode(v).decode(), "url": lambda v: urllib.parse.quote(text_of(v), safe="")}


@dataclass(frozen=True, slots=True)
class Placeholder:
    name: str
    filters: tuple[tuple[str, str | None], ...]
    raw: str  # as written, for messages
    line: int
    column: int

    def render(self, model: Mapping[str, Any]) -> str:
        value = model.get(self.name)
        for name, arg in self.filters:
            if name in _FINAL:
                return _FINAL[name](value)
            value = FILTERS[name](value, arg)
        return text_of(value)


class Template:
    def __init__(self, text: str) -> None:
        self.text = text
        self.parts: list[str | Placeholder] = _compile(text)

    @property
    def placeholders(self) -> list[Placeholder]:
        return [p for p in self.parts if isinstance(p, Placeholder)]

    @property
    def names(self) -> set[str]:
        return {p.name for p in self.placeholders}

    def render(self, model: Mapping[str, Any]) -> str:
        return "".join(p if isinstance(p, str) else p.render(model) for p in self.parts)

    def missing(self, model: Mapping[str, Any]) -> list[str]:
        """Placeholders whose value is missing (None or absent) in this model."""
        return [p.name for p in self.placeholders if model.get(p.name) is None]


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _compile(text: str) -> list[str | Placeholder]:
    parts: list[str | Placeholder] = []
    pos = 0
    while True:
        start = text.find("{{", pos)
        # A JSON body may open an object right before a placeholder (`{{{value}}`): the
        # placeholder is the last `{{` of a run of braces; a lone `}}` is plain text.
        while start != -1 and text.startswith("{", start + 2):
            start += 1
        if start == -1:
            if pos < len(text):
                parts.append(text[pos:])
            return parts
        if start > pos:
            parts.append(text[pos:start])
        end = text.find("}}", start + 2)
        line, col = _position(text, start)
        if end == -1:
            snippet = text[start:start + 20].split("\n")[0]
            raise TemplateError(f"'{snippet}' is never closed with '}}}}'", line, col, snippet)
        raw = text[start:end + 2]
        parts.append(_placeholder(raw, text[start + 2:end], line, col))
        pos = end + 2


def _placeholder(raw: str, inner: str, line: int, col: int) -> Placeholder:
    pieces = [p.strip() for p in inner.split("|")]
    name = pieces[0]
    if not _NAME.match(name):
        raise TemplateError(f"{raw} is not a placeholder name (letters, digits, _)", line, col, raw)
    filters: list[tuple[str, str | None]] = []
    for index, piece in enumerate(pieces[1:], 1):
        fname, _, arg = piece.partition(":")
        fname, arg = fname.strip(), arg.strip()
        if fname not in FILTERS and fname not in _FINAL:
            known = ", ".join(sorted([*FILTERS, *_FINAL]))
            raise TemplateError(f"unknown filter {fname!r} in {raw} (known: {known})", line, col, raw)
        if fname in _FINAL and index != len(pieces) - 1:
            raise TemplateError(f"filter {fname!r} must come last in {raw}", line, col, raw)
        if fname == "round" and arg and not arg.isdigit():
            raise TemplateError(f"round:{arg} in {raw}: the digits must be a whole number", line, col, raw)
        filters.append((fname, arg or None))
    return Placeholder(name, tuple(filters), raw, line, col)
