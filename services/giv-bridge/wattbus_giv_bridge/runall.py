"""GivTCP's runAll document as data (data/givtcp.toml) and the one function that fills it.

Each field of the document is a small rule: an arithmetic expression over register points,
plant figures and the document's other fields (GivTCP's arithmetic: a missing value counts 0),
a value taken as it is (optionally formatted or looked up in a [names] table), or a fixed text.
The file decodes into the Structs below and is then checked as a whole (every name known, every
function allowed, no field depending on itself), so a bad rule stops the bridge at start-up
with the field's path, not a wrong document at run time.
"""

from __future__ import annotations

import ast
import operator
import tomllib
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from importlib import resources
from typing import Any, Literal

import msgspec

from .regmap import Value

Format = Literal["raw", "kwh", "switch", "slot", "clock", "running"]
BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


class SpecError(ValueError):
    """A runAll rule file that does not describe the document; the message names the field."""


class Rule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One field: exactly one of expr, value or text; `as` formats, `names` looks the value up."""

    expr: str | None = None  # arithmetic over numbers (points, figures, fields; missing = 0)
    value: str | None = None  # one point, figure or field as it is (None when missing)
    text: str | None = None  # a fixed text
    format: Format = msgspec.field(default="raw", name="as")
    names: str | None = None  # a [names] table: whole number -> text or number
    default: str | int | None = None  # what `names` gives for a value it does not list


class Spec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    document: dict[str, str | Rule]  # the top level of the document
    sections: dict[str, dict[str, str | Rule]]  # "Power/Power" -> its fields, in document order
    battery: dict[str, str | Rule]  # Battery_Details/<serial>, one per battery (battery points)
    names: dict[str, dict[str, str | int]] = {}


def _num(value: object) -> float | int:
    """A value as a number (whole stays whole, as in GivTCP's document); anything else counts 0."""
    return value if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _pos(value: float) -> float:
    return value if value > 0 else 0  # whole stays whole (GivTCP shows 0, not 0.0)


def _minutes(capacity_kwh: float, percent: float, power_w: float) -> int:
    """Minutes to move `percent` of the pack at `power_w` (GivTCP's charge/discharge time left)."""
    return max(int(capacity_kwh * percent / 100 / (power_w / 1000) * 60), 0) if power_w else 0


def _slot(value: object) -> str:
    return f"{value}:00" if isinstance(value, str) else "00:00:00"


def _switch(value: object) -> str:
    return "enable" if value is True or value == 1 else "disable"


FUNCTIONS: dict[str, Callable[..., Any]] = {"pos": _pos, "min": min, "max": max, "round": round,
                                           "minutes": _minutes}


class Document:
    """The checked rules, ready to fill a document from one poll's values."""

    def __init__(self, spec: Spec, points: set[str], battery_points: set[str], figures: set[str], where: str) -> None:
        self.spec = spec
        self.names = {table: _names(table, entries, where) for table, entries in spec.names.items()}
        self.trees: dict[str, ast.expr] = {}
        self.main = {**spec.document, **{k: r for fields in spec.sections.values() for k, r in fields.items()}}
        if len(self.main) != len(spec.document) + sum(len(f) for f in spec.sections.values()):
            raise SpecError(f"{where}: a field name appears twice (rules refer to fields by name)")
        self._check(self.main, points | figures, where)
        self._check(spec.battery, battery_points, f"{where} [battery]")

    def _check(self, rules: Mapping[str, str | Rule], known: set[str], where: str) -> None:
        uses: dict[str, set[str]] = {}
        for key, rule in rules.items():
            rule = Rule(expr=rule) if isinstance(rule, str) else rule
            given = [s for s in (rule.expr, rule.value, rule.text) if s is not None]
            if len(given) != 1:
                raise SpecError(f"{where}: {key}: give exactly one of a text, expr = or value =")
            if rule.names is not None and rule.names not in self.names:
                raise SpecError(f"{where}: {key}: no [names.{rule.names}] table")
            names = {rule.value} if rule.value is not None else set()
            if rule.expr is not None:
                names = self._parse(key, rule.expr, where)
            unknown, clash = names - known - set(rules), names & known & set(rules)
            if clash:  # a rule's name would mean the field: say so rather than guess
                raise SpecError(f"{where}: {key}: {', '.join(sorted(clash))} names both a field and a point or "
                                "figure")
            if unknown:
                raise SpecError(f"{where}: {key}: {', '.join(sorted(unknown))} is no point, figure or field")
            uses[key] = names & set(rules)
        for key in uses:  # a field may use another only if that one does not come back to it
            _acyclic(key, uses, [], where)

    def _parse(self, key: str, expr: str, where: str) -> set[str]:
        try:
            tree = ast.parse(expr, mode="eval").body
        except SyntaxError as exc:
            raise SpecError(f"{where}: {key}: expr {expr!r} is not an expression ({exc.msg})") from None
        names: set[str] = set()
        called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS or node.keywords:
                    raise SpecError(f"{where}: {key}: only the functions {', '.join(FUNCTIONS)} may be "
                                    "called (positional arguments)")
            elif isinstance(node, ast.Name) and id(node) not in called:  # a function's own name is no value
                names.add(node.id)
            elif isinstance(node, ast.BinOp) and type(node.op) not in BINARY:
                raise SpecError(f"{where}: {key}: only + - * / are allowed in {expr!r}")
            elif isinstance(node, ast.Constant) and (not isinstance(node.value, int | float)
                                                     or isinstance(node.value, bool)):
                raise SpecError(f"{where}: {key}: {node.value!r} is not a number")
            elif not isinstance(node, ast.Name | ast.BinOp | ast.UnaryOp | ast.Constant | ast.Load
                                | ast.operator | ast.USub):
                raise SpecError(f"{where}: {key}: {type(node).__name__} is not allowed in {expr!r}")
        self.trees[expr] = tree
        return names

    def fill(self, values: Mapping[str, Value], figures: Mapping[str, object], when: datetime,
             battery: list[tuple[str, Mapping[str, Value]]]) -> dict[str, Any]:
        """The document: the top level, the sections (nested by their paths), Battery_Details."""
        top = _Filler(self, self.main, {**values, **figures}, when)
        doc: dict[str, Any] = {key: top.get(key) for key in self.spec.document}
        for path, fields in self.spec.sections.items():
            node = doc
            for part in path.split("/"):
                node = node.setdefault(part, {})
            node.update({key: top.get(key) for key in fields})
        doc["Battery_Details"] = {}
        for name, one in battery:
            filler = _Filler(self, self.spec.battery, one, when)
            doc["Battery_Details"][name] = {key: filler.get(key) for key in self.spec.battery}
        return doc


class _Filler:
    """One document's fields, each computed once, on first use (rules may use later fields)."""

    def __init__(self, document: Document, rules: Mapping[str, str | Rule], names: Mapping[str, object],
                 when: datetime) -> None:
        self.document, self.rules, self.names, self.when = document, rules, names, when
        self.done: dict[str, object] = {}

    def get(self, key: str) -> object:
        if key not in self.done:
            self.done[key] = self._compute(self.rules[key])
        return self.done[key]

    def _name(self, name: str) -> object:
        return self.get(name) if name in self.rules else self.names[name]

    def _compute(self, rule: str | Rule) -> object:
        rule = Rule(expr=rule) if isinstance(rule, str) else rule
        if rule.text is not None:
            return rule.text
        value = self._eval(self.document.trees[rule.expr]) if rule.expr is not None \
            else self._name(rule.value or "")
        if rule.names is not None:
            table = self.document.names[rule.names]
            return table.get(value, rule.default) if isinstance(value, int) and not isinstance(value, bool) \
                else rule.default
        match rule.format:
            case "kwh":
                return round(_num(value) / 1000, 2)
            case "switch":
                return _switch(value)
            case "slot":
                return _slot(value)
            case "clock":  # minutes from the poll, as local ISO 8601
                return (self.when + timedelta(minutes=_num(value))).astimezone().isoformat(timespec="seconds")
            case "running":  # a timed function's minutes left; None = not running
                return "Normal" if value is None else "Running"
        return value

    def _eval(self, node: ast.expr) -> Any:
        match node:
            case ast.Constant(value=number):
                return number
            case ast.Name(id=name):
                return _num(self._name(name))
            case ast.UnaryOp(operand=operand):
                return -self._eval(operand)
            case ast.BinOp(left=left, op=op, right=right):
                return BINARY[type(op)](self._eval(left), self._eval(right))
            case ast.Call(func=ast.Name(id=name), args=args):
                return FUNCTIONS[name](*(self._eval(a) for a in args))
        raise SpecError(f"cannot evaluate {ast.dump(node)}")  # _parse lets nothing else through


def _names(table: str, entries: Mapping[str, str | int], where: str) -> dict[int, str | int]:
    out: dict[int, str | int] = {}
    for key, value in entries.items():
        try:
            out[int(key, 0)] = value
        except ValueError:
            raise SpecError(f"{where}: [names.{table}] key {key!r} is not a whole number (e.g. 1, 0x2001)") from None
    return out


def _acyclic(key: str, uses: Mapping[str, set[str]], path: list[str], where: str) -> None:
    if key in path:
        raise SpecError(f"{where}: {' -> '.join([*path, key])}: a field depends on itself")
    for other in uses.get(key, ()):
        _acyclic(other, uses, [*path, key], where)


def _rules(raw: object, where: str) -> dict[str, str | Rule]:
    """One table of rules, each converted on its own so that an error names its field."""
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: must be a table of field = rule")
    out: dict[str, str | Rule] = {}
    for key, rule in raw.items():
        try:
            out[key] = msgspec.convert(rule, str | Rule)
        except msgspec.ValidationError as exc:
            raise SpecError(f"{where}.{key}: {exc}") from None
    return out


def load(text: str, where: str, points: set[str], battery_points: set[str], figures: set[str]) -> Document:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{where}: not valid TOML ({exc})") from None
    unknown = set(raw) - {"document", "sections", "battery", "names"}
    if unknown:
        raise SpecError(f"{where}: unknown tables {sorted(unknown)}; known: document, sections, battery, names")
    sections = raw.get("sections", {})
    try:
        spec = Spec(document=_rules(raw.get("document", {}), f"{where} [document]"),
                    sections={path: _rules(fields, f"{where} [sections.{path}]") for path, fields in sections.items()},
                    battery=_rules(raw.get("battery", {}), f"{where} [battery]"),
                    names=msgspec.convert(raw.get("names", {}), dict[str, dict[str, str | int]]))
    except msgspec.ValidationError as exc:
        raise SpecError(f"{where} [names]: {exc}") from None
    return Document(spec, points, battery_points, figures, where)


def shipped_text() -> str:
    return (resources.files("wattbus_giv_bridge") / "data" / "givtcp.toml").read_text()
