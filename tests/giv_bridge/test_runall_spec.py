"""data/givtcp.toml (runAll as data) loads and is checked as a whole: a bad rule is refused at load
with the field that holds it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from wattbus_giv_bridge import givtcp, runall

POINTS = {"pv1_power_w", "pv2_power_w", "meter_type"}


def load(body: str) -> runall.Document:
    return runall.load(f"[document]\nstatus = {{ text = \"online\" }}\n[battery]\n[sections.Power]\n{body}",
                       "t.toml", POINTS, set(), {"capacity_kwh"})


def test_the_shipped_document_loads_against_the_shipped_register_maps() -> None:
    document = givtcp.document()
    assert len(document.spec.sections) == 7 and len(document.spec.battery) == 31
    assert document.names["inverter_max_w"][0x2001] == 5000


def test_rules_compute_in_dependency_order_whatever_the_file_order() -> None:
    doc = load('Total = "pos(A + B) * 2"\nA = "pv1_power_w"\nB = "pv2_power_w"\n'
               'Kind = { value = "meter_type", names = "m", default = "?" }\n[names.m]\n1 = "EM115"\n')
    filled = doc.fill({"pv1_power_w": 100, "pv2_power_w": None, "meter_type": 1}, {"capacity_kwh": 9.5},
                      datetime(2024, 1, 1, tzinfo=UTC), [])
    assert filled["Power"] == {"Total": 200, "A": 100, "B": 0, "Kind": "EM115"}
    assert list(filled) == ["status", "Power", "Battery_Details"]


@pytest.mark.parametrize(("body", "error"), [
    ('X = "pv3_power_w"', r"Power|X: pv3_power_w is no point, figure or field"),
    ('X = "Y + 1"\nY = "X"', r"X -> Y -> X: a field depends on itself"),
    ('X = "__import__(1)"', r"X: only the functions"),
    ('X = "min + 1"', r"X: min is no point, figure or field"),
    ('X = "pv1_power_w ** 2"', r"X: only \+ - \* / are allowed"),
    ('X = "pv1_power_w if 1 else 2"', r"X: IfExp is not allowed"),
    ('X = "\'a\'"', r"X: 'a' is not a number"),
    ('X = "pv1_power_w +"', r"X: expr .* is not an expression"),
    ('X = { value = "meter_type", text = "a" }', r"X: give exactly one of"),
    ('X = { value = "meter_type", names = "nope" }', r"X: no \[names.nope\] table"),
    ('X = { value = "meter_type", as = "kWh" }', r"\[sections.Power\]\.X: Invalid enum value 'kWh' - at `\$.as`"),
    ('X = { vale = "meter_type" }', r"\[sections.Power\]\.X: Object contains unknown field `vale`"),
    ('X = "1"\n[names.m]\nEM = "x"', r"\[names.m\] key 'EM' is not a whole number"),
    ('meter_type = "1"\nX = "meter_type"', r"X: meter_type names both a field and a point"),
])
def test_a_bad_rule_is_refused_naming_its_field(body: str, error: str) -> None:
    with pytest.raises(runall.SpecError, match=error):
        load(body)
