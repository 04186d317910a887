"""Template rules rendered against recorded readings; bad templates rejected with file, line, rule, placeholder."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from wattbus.config import ConfigError
from wattbus_integrations import model
from wattbus_integrations.render import HttpOut, MqttOut, render
from wattbus_integrations.rules import load_rules
from wattbus_integrations.template_engine import Template, TemplateError

from tests.integrations.helpers import EXAMPLES, metas, readings

RECORDED = readings()
METAS = metas()
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.toml"))


def outputs(path: Path) -> list[tuple[dict[str, object], MqttOut | HttpOut]]:
    rules = load_rules([str(path)], ["integrations/"])
    out = []
    for _name, reading, _raw in RECORDED:
        base = model.flatten(reading, METAS[reading.device_id].source, METAS[reading.device_id])
        for rule in rules:
            if rule.matches(model.kind_of(reading), reading.device_id):
                out += [(base, item) for item in render(rule, base)[0]]
    return out


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[p.stem for p in EXAMPLE_FILES])
def test_every_example_loads_and_renders(path: Path) -> None:
    rendered = outputs(path)
    assert rendered, f"{path.name} renders nothing for the recorded readings"
    for base, item in rendered:
        text = item.payload if isinstance(item, MqttOut) else item.body
        if text.lstrip().startswith("{"):
            doc = msgspec.json.decode(text)  # a JSON body must stay valid JSON for every reading
            assert doc
        assert "{{" not in text
        if isinstance(item, MqttOut):
            assert item.topic.startswith("integrations/")
            assert str(base["device_id"]) in item.topic + item.payload


def test_openhab_one_retained_topic_per_value() -> None:
    rendered = [(b, i) for b, i in outputs(EXAMPLES / "openhab.toml") if isinstance(i, MqttOut)]
    meter = {i.topic: i.payload for b, i in rendered if b["device_id"] == "emh-1emh0012345678"}
    assert meter["integrations/openhab/emh-1emh0012345678/power_w"] == "-1834.5"
    assert meter["integrations/openhab/emh-1emh0012345678/energy_import_wh"] == "12345678.9"
    assert meter["integrations/openhab/emh-1emh0012345678/l1_voltage_v"]
    assert all(i.retain for _b, i in rendered)
    rest = [i for _b, i in outputs(EXAMPLES / "openhab.toml") if isinstance(i, HttpOut)]
    put = next(i for i in rest if i.url.endswith("/wattbus_emh_1emh0012345678_power_w/state"))
    assert (put.method, put.body, put.headers["Content-Type"]) == ("PUT", "-1834.5", "text/plain")


def test_thingsboard_telemetry_carries_every_value_with_its_timestamp() -> None:
    for base, item in outputs(EXAMPLES / "thingsboard.toml"):
        if isinstance(item, HttpOut):
            doc = msgspec.json.decode(item.body)
            assert doc["ts"] == base["timestamp_ms"]
            assert doc["values"] == base["values_json"]
            assert item.url.endswith("/api/v1/REPLACE-WITH-DEVICE-TOKEN/telemetry")
        else:
            doc = msgspec.json.decode(item.payload)
            assert list(doc) == [base["device_id"]] and doc[base["device_id"]][0]["values"] == base["values_json"]


def test_local_time_stamp_becomes_utc_and_milliseconds() -> None:
    reading = next(r for name, r, _ in RECORDED if name.startswith("sma-") and r.timestamp.utcoffset())
    base = model.flatten(reading, "sunspec-bridge", None)
    assert base["timestamp_utc"] == "2025-06-01T10:00:00.500Z"
    assert base["timestamp_ms"] == 1748772000500


def test_missing_values_skip_the_message_unless_told_otherwise() -> None:
    offline = next(r for name, r, _ in RECORDED if r.device_id == "sma-3004512345" and r.power_w is None)  # type: ignore[attr-defined]
    rules = load_rules([str(EXAMPLES / "iotic.toml"), str(EXAMPLES / "http-generic.toml")], ["integrations/"])
    base = model.flatten(offline, "sunspec-bridge", None)
    iotic, generic = rules
    out, skipped = render(iotic, base)
    assert out == [] and skipped == ["energy_total_wh, power_w missing"]
    out, skipped = render(generic, base)
    assert skipped == [] and msgspec.json.decode(out[0].body)["power_w"] is None  # type: ignore[union-attr]


def test_filters() -> None:
    ctx = {"e": 12345678.9, "s": "Emh-1.x", "n": None, "b": True}
    assert Template("{{ e | kilo | round:2 }} kWh").render(ctx) == "12345.68 kWh"
    assert Template("{{e|int}}/{{s|ident}}/{{s|url}}/{{s|lower}}").render(ctx) == "12345679/Emh_1_x/Emh-1.x/emh-1.x"
    assert Template('{"v":{{n|json}},"s":{{s|json}},"b":{{b}}}').render(ctx) == '{"v":null,"s":"Emh-1.x","b":true}'
    assert Template('{"a":{"b":{{{e|round}}}}}').render(ctx) == '{"a":{"b":{12345679}}}'


BAD = [
    ("unknown placeholder", 'topic = "integrations/x/{{device_id}}"\npayload = "{{powr_w}}"', 7, "{{powr_w}}"),
    ("per-field name in a per-reading rule", 'topic = "integrations/{{field}}"\npayload = "1"', 6, "{{field}}"),
    ("unclosed", 'topic = "integrations/a"\npayload = "x {{value"', 7, "{{value"),
    ("unknown filter", 'topic = "integrations/a"\npayload = "{{power_w | hex}}"', 7, "hex"),
    ("value of another kind", 'topic = "integrations/a"\npayload = "{{soc_pct}}"', 7, "{{soc_pct}}"),
]


@pytest.mark.parametrize(("what", "target", "line", "needle"), BAD, ids=[b[0] for b in BAD])
def test_bad_template_named_with_file_line_rule_and_placeholder(tmp_path: Path, what: str, target: str,
                                                                line: int, needle: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text('# my rules\n[[rule]]\nname = "fine"\n[[rule]]\nname = "broken"\nkinds = ["meter"]\n'
                    .replace('[[rule]]\nname = "fine"\n', "") + "[rule.mqtt]\n" + target + "\n")
    # Lines: 1 comment, 2 [[rule]], 3 name, 4 kinds, 5 [rule.mqtt], 6 topic, 7 payload.
    with pytest.raises(ConfigError) as err:
        load_rules([str(path)], ["integrations/"])
    message = str(err.value)
    assert f"{path}:{line}:" in message and "rule 'broken'" in message and needle in message, message


def test_other_mistakes_are_named(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text('[[rule]]\nname = "a"\n[rule.mqtt]\ntopic = "openhab/x"\npayload = "1"\n')
    with pytest.raises(ConfigError, match="outside the allowed prefixes"):
        load_rules([str(path)], ["integrations/"])
    path.write_text('[[rule]]\nname = "a"\n')
    with pytest.raises(ConfigError, match="exactly one target"):
        load_rules([str(path)], ["integrations/"])
    path.write_text('[[rule]]\nname = "a"\neach = "field"\nfields = ["powr_w"]\n[rule.mqtt]\ntopic = "integrations/a"\n'
                    'payload = "{{value}}"\n')
    with pytest.raises(ConfigError, match="'powr_w' is not a value"):
        load_rules([str(path)], ["integrations/"])
    path.write_text('[[rule]]\nname = "a"\ncolour = "red"\n')
    with pytest.raises(ConfigError, match="colour"):
        load_rules([str(path)], ["integrations/"])
    with pytest.raises(ConfigError, match="cannot read"):
        load_rules([str(tmp_path / "nope.toml")], ["integrations/"])
    with pytest.raises(TemplateError) as err:
        Template("line one\n  {{ 1bad }}")
    assert (err.value.line, err.value.column) == (2, 3)


def test_a_rule_for_vehicles_reads_their_soc(tmp_path: Path) -> None:
    """Rules take every kind of the contract (a vehicle's SoC to a home automation topic, issue 27)."""
    path = tmp_path / "car.toml"
    path.write_text('[[rule]]\nname = "car"\nkinds = ["vehicle"]\n[rule.mqtt]\ntopic = "integrations/car/soc"\n'
                    'payload = "{{soc_pct}}"\n')
    assert [r.spec.kinds for r in load_rules([str(path)], ["integrations/"])] == [["vehicle"]]
    path.write_text('[[rule]]\nname = "car"\nkinds = ["bicycle"]\n[rule.mqtt]\ntopic = "integrations/x"\n'
                    'payload = "1"\n')
    with pytest.raises(ConfigError, match=r"Invalid enum value .bicycle. - at `\$.rule\[0\].kinds\[0\]`"):
        load_rules([str(path)], ["integrations/"])
