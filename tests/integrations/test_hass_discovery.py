"""Discovery configs for recorded readings, checked key by key against Home Assistant's schema."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import msgspec
import pytest
from wattbus import codec, topics
from wattbus import messages as m
from wattbus_integrations import catalog, hass_discovery, model

from tests.integrations.helpers import SCHEMA, check_component, check_config, metas, readings

RECORDED = readings()
METAS = metas()
SETTINGS = hass_discovery.HassDiscoverySettings(prefix="homeassistant",
                              service_availability=topics.service_availability("integrations", "main"),
                              loadpoint_availability=topics.service_availability("surplus-controller", "main"))


def config_for(reading: m.ReadingBase) -> tuple[str, dict[str, Any]]:
    meta = METAS[reading.device_id]
    present = {k for k, v in model.values_of(reading).items() if v is not None}
    config = hass_discovery.device_config(SETTINGS, meta, model.kind_of(reading), present)
    # What goes on the wire is JSON: check the decoded payload, not the Python dict.
    doc = msgspec.json.decode(codec.encode(config))
    return hass_discovery.config_topic(SETTINGS, hass_discovery.object_id(meta.device_id)), doc


@pytest.mark.parametrize(("name", "reading", "raw"), RECORDED, ids=[r[0] for r in RECORDED])
def test_config_follows_home_assistant_schema(name: str, reading: m.ReadingBase, raw: bytes) -> None:
    topic, doc = config_for(reading)
    assert check_config(topic, doc) == [], name
    meta = METAS[reading.device_id]
    assert doc["dev"]["identifiers"] == [hass_discovery.object_id(meta.device_id)]
    assert doc["o"]["name"] == "wattbus"
    if meta.parent_id:
        assert doc["dev"]["via_device"] == hass_discovery.object_id(meta.parent_id)
    unique = [c["unique_id"] for c in doc["cmps"].values()]
    assert len(unique) == len(set(unique))
    for comp in doc["cmps"].values():
        if comp["p"] in ("sensor", "binary_sensor"):
            assert comp["state_topic"] == topics.device_reading(meta.source, meta.device_id)
            assert comp["availability_topic"] == topics.device_availability(meta.source, meta.device_id)
            assert (comp["payload_available"], comp["payload_not_available"]) == (m.ONLINE, m.OFFLINE)


@pytest.mark.parametrize(("name", "reading", "raw"), RECORDED, ids=[r[0] for r in RECORDED])
def test_one_sensor_per_reported_value_and_none_for_missing(name: str, reading: m.ReadingBase, raw: bytes) -> None:
    _topic, doc = config_for(reading)
    reported = {k for k, v in model.values_of(reading).items() if v is not None and not k.startswith("extra_")}
    sensors = {k for k, c in doc["cmps"].items() if c["p"] in ("sensor", "binary_sensor")}
    # A value a control shows (the charger's `enabled` switch) needs no sensor of its own.
    shown = {c.state for c in catalog.controls_for(model.kind_of(reading), METAS[reading.device_id].capabilities)}
    assert sensors == reported - (shown - sensors), name


@pytest.mark.parametrize(("name", "reading", "raw"), RECORDED, ids=[r[0] for r in RECORDED])
def test_energy_dashboard_accepts_totals_and_power(name: str, reading: m.ReadingBase, raw: bytes) -> None:
    _topic, doc = config_for(reading)
    dash = SCHEMA["energy_dashboard"]
    for key, comp in doc["cmps"].items():
        if comp["p"] != "sensor":
            continue
        rule = None
        if key.endswith("_wh") and key != "capacity_wh":
            rule = dash["energy"]
        elif key in ("power_w", "dc_power_w"):
            rule = dash["power"]
        elif key in ("gas_m3", "water_m3"):
            rule = dash[key[:-3]]
        if rule:
            assert comp.get("device_class") == rule["device_class"], key
            assert comp.get("state_class") in rule["state_classes"], key
            assert comp.get("unit_of_measurement") in rule["units"], key


@pytest.mark.parametrize(("name", "reading", "raw"), RECORDED, ids=[r[0] for r in RECORDED])
def test_value_templates_render_the_reading_in_jinja(name: str, reading: m.ReadingBase, raw: bytes) -> None:
    """Home Assistant renders value_template with Jinja2 over the payload as value_json."""
    jinja2 = pytest.importorskip("jinja2", reason="jinja2 (Home Assistant's template engine) is a dev dependency")
    env = jinja2.Environment()
    _topic, doc = config_for(reading)
    payload = msgspec.json.decode(raw)
    values = model.values_of(reading)
    for key, comp in doc["cmps"].items():
        if comp["p"] not in ("sensor", "binary_sensor") or "value_template" not in comp:
            continue
        text = env.from_string(comp["value_template"]).render(value_json=payload, value=raw.decode())
        expected = values[key]
        if comp["p"] == "binary_sensor":
            assert text == ("ON" if expected else "OFF"), key
        elif isinstance(expected, str):
            assert text == expected, key
        else:
            assert float(text) == pytest.approx(float(expected)), key
    # A reading without the value (the same device offline) renders None: unknown in HA.
    empty = {"kind": payload["kind"], "device_id": payload["device_id"], "timestamp": payload["timestamp"],
             "phases": []}
    for comp in doc["cmps"].values():
        if comp["p"] == "sensor":
            full = {**{k: None for k in payload if k not in empty}, **empty}
            assert env.from_string(comp["value_template"]).render(value_json=full) == "None"


def test_controls_follow_the_schema_and_the_contract_limits() -> None:
    charger = METAS["goe-203040"]
    doc = msgspec.json.decode(codec.encode(hass_discovery.device_config(SETTINGS, charger, "charger", {"power_w"})))
    cmps = doc["cmps"]
    assert {"charge_current", "charging", "phases"} <= set(cmps)
    number = cmps["charge_current"]
    assert check_component(number) == []
    assert (number["min"], number["max"], number["unit_of_measurement"]) == (6, 32, "A")
    assert number["command_topic"] == "homeassistant/wattbus/wattbus-goe-203040/charge_current/set"
    assert number["availability_mode"] == "all"
    assert [a["topic"] for a in number["availability"]] == [
        topics.device_availability("goe-shelly-bridge", "goe-203040"), SETTINGS.service_availability]
    assert cmps["phases"]["options"] == ["1", "3"]
    relay = METAS["shellyplus1pm-a8032ab12345"]
    rdoc = msgspec.json.decode(codec.encode(hass_discovery.device_config(SETTINGS, relay, "relay", {"on"})))
    assert check_config(hass_discovery.config_topic(SETTINGS, "wattbus-x"), rdoc) == []
    assert rdoc["cmps"]["relay"]["p"] == "switch"
    battery = METAS["givenergy-ce2146g123"]
    bdoc = msgspec.json.decode(codec.encode(hass_discovery.device_config(SETTINGS, battery, "battery", {"soc_pct"})))
    assert (bdoc["cmps"]["battery_reserve"]["min"], bdoc["cmps"]["battery_reserve"]["max"]) == (4, 100)
    assert bdoc["cmps"]["battery_mode"]["options"] == ["eco", "eco_paused", "timed_demand", "timed_export"]
    meter = METAS["emh-1emh0012345678"]
    mdoc = hass_discovery.device_config(SETTINGS, meter, "meter", {"power_w"})
    assert all(c["p"] == "sensor" for c in mdoc["cmps"].values()), "a meter has nothing to control"


def test_loadpoint_device_has_mode_select_and_limits() -> None:
    state = m.LoadpointState(loadpoint_id="garage", mode="pv", charger_id="goe-203040", power_w=4100.0)
    doc = msgspec.json.decode(codec.encode(hass_discovery.loadpoint_config(SETTINGS, state)))
    assert check_config(hass_discovery.config_topic(SETTINGS, hass_discovery.loadpoint_object_id("garage")), doc) == []
    mode = doc["cmps"]["mode"]
    assert mode["options"] == ["off", "now", "minpv", "pv"]
    assert mode["state_topic"] == topics.loadpoint_state("garage")
    assert doc["dev"]["via_device"] == "wattbus-goe-203040"
    assert doc["cmps"]["power_w"]["availability_topic"] == SETTINGS.loadpoint_availability
    # The charge plan: target and minimum SoC as numbers with the contract's ranges, the time as a
    # text (HA's MQTT discovery has no time entity) that takes HHMM, HH:MM or nothing.
    soc, least, when = (doc["cmps"][k] for k in ("plan_soc", "plan_min_soc", "plan_time"))
    assert (soc["p"], soc["min"], soc["max"], least["min"], least["max"]) == ("number", 1, 100, 0, 100)
    assert (soc["value_template"], when["value_template"]) == ("{{ value_json.plan_soc_pct }}",
                                                               "{{ value_json.plan_time }}")
    pattern = re.compile(when["pattern"])
    assert all(pattern.match(t) for t in ("0700", "07:00", "23:59", ""))
    assert not any(pattern.match(t) for t in ("24:00", "7:00", "0760", "noon"))


def test_data_files_load_and_match_the_contract() -> None:
    table = catalog.entities()
    assert set(table) == set(model.KIND_TYPES)
    for kind, entities in table.items():
        keys = [e.key for e in entities]
        assert len(keys) == len(set(keys)), kind
        assert set(keys) <= set(model.value_names(kind)), kind
    assert catalog.controls() and catalog.loadpoint_entities()
    # Every numeric value of every kind is exposed somewhere (a new contract field needs a row).
    for kind in model.KIND_TYPES:
        missing = set(model.value_names(kind)) - {e.key for e in table[kind]}
        assert missing <= {"enabled"}, f"{kind}: {sorted(missing)} have no Home Assistant entity"


def test_object_ids_keep_to_home_assistants_character_class() -> None:
    assert hass_discovery.object_id("tcp:192.0.2.1.unit-1") == "wattbus-tcp_192_0_2_1_unit-1"
    with pytest.raises(catalog.CatalogError, match="no command"):
        catalog.arg_info("set_warp_drive", "speed")


def meta(device_id: str, **fields: Any) -> m.DeviceMeta:
    return m.DeviceMeta(device_id=device_id, kind=fields.pop("kind", "inverter"), source="b", protocol="sunspec",
                        **fields)


def test_device_names_tell_devices_apart_by_serial_and_parent() -> None:
    known = {d.device_id: d for d in (
        meta("goe-1", kind="charger", manufacturer="go-e", model="go-eCharger 11 kW", serial="1"),
        meta("goe-2", kind="charger", manufacturer="go-e", model="go-eCharger 11 kW", serial="2"),
        meta("fr-7", manufacturer="Fronius", model="Symo", serial="7"),
        meta("fr-7-mppt1", kind="string", manufacturer="Fronius", model="Symo", serial="7", name="String 1",
             parent_id="fr-7"),
        meta("fr-8", manufacturer="Fronius", model="Symo", serial="8", name="Garage roof"),
        meta("fr-8-mppt1", kind="string", manufacturer="Fronius", model="Symo", serial="8", name="String 1",
             parent_id="fr-8"),
        meta("ecu-1", kind="gateway", manufacturer="APsystems", model="ECU-R", serial="2162"),
        meta("aps-80", manufacturer="APsystems", model="QS1", serial="80", parent_id="ecu-1"),
        meta("aps-80-panel-1", kind="string", manufacturer="APsystems", serial="80-1", parent_id="aps-80"),
        meta("giv-9-grid", kind="meter", manufacturer="GivEnergy", model="CT clamp", parent_id="giv-9"),
    )}
    labels = {i: hass_discovery.device_label(d, known.get) for i, d in known.items()}
    assert labels == {
        "goe-1": "go-e go-eCharger 11 kW 1", "goe-2": "go-e go-eCharger 11 kW 2",
        "fr-7": "Fronius Symo 7", "fr-7-mppt1": "Fronius Symo 7 String 1",
        "fr-8": "Garage roof", "fr-8-mppt1": "Garage roof String 1",  # the configured name wins
        "ecu-1": "APsystems ECU-R 2162", "aps-80": "APsystems QS1 80",  # a serial of its own
        "aps-80-panel-1": "APsystems QS1 80 panel-1",
        "giv-9-grid": "giv-9 grid",  # parent never announced: its id stands in
    }
    assert hass_discovery.device_block(known["fr-7-mppt1"], known.get)["name"] == labels["fr-7-mppt1"]


def test_charge_current_range_follows_the_limits_the_bridge_reports() -> None:
    charger = METAS["goe-203040"]

    def number(values: dict[str, Any]) -> tuple[Any, Any]:
        doc = hass_discovery.device_config(SETTINGS, charger, "charger", {"power_w"}, values=values)
        return doc["cmps"]["charge_current"]["min"], doc["cmps"]["charge_current"]["max"]

    assert number({}) == (6, 32)  # nothing reported: the contract's range
    assert number({"extra_limit_min_current_a": 8, "extra_limit_max_current_a": 16}) == (8, 16)
    assert number({"extra_limit_max_current_a": 40}) == (6, 32)  # never wider than the contract
    assert number({"extra_limit_min_current_a": 20, "extra_limit_max_current_a": 10}) == (6, 32)  # contradiction
    assert number({"extra_limit_max_current_a": True}) == (6, 32)  # not a number


def test_entities_follow_the_judged_availability_when_the_service_publishes_it() -> None:
    """The service's own configs: every entity, sensor or control, is available while the judged
    availability (wattbus.liveness: the owner's lease counts) and the service itself say online."""
    judged = dataclasses.replace(SETTINGS, judged_by=("integrations", "main"))
    charger = METAS["goe-203040"]
    doc = msgspec.json.decode(codec.encode(hass_discovery.device_config(judged, charger, "charger", {"power_w"})))
    assert check_config(hass_discovery.config_topic(judged, "wattbus-x"), doc) == []
    wanted = ["wattbus/v1/service/integrations/main/device/goe-shelly-bridge/goe-203040/availability",
              SETTINGS.service_availability]
    for key in ("power_w", "charge_current", "charging"):
        comp = doc["cmps"][key]
        assert "availability_topic" not in comp and comp["availability_mode"] == "all", key
        assert [a["topic"] for a in comp["availability"]] == wanted, key
        assert {a["payload_not_available"] for a in comp["availability"]} == {m.OFFLINE}
