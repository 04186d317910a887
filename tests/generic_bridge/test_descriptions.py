"""Device descriptions without the network: every shipped one loads, each fixture maps to the
contract in SI units, the simulators answer the fixtures' shapes, and bad descriptions are refused
with the key and what is wrong."""

from __future__ import annotations

import importlib
import json
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from wattbus import messages as m
from wattbus import registers as wattbus_registers
from wattbus.config import ConfigError, LoadedConfig
from wattbus.registers import Block
from wattbus_generic_bridge import families
from wattbus_generic_bridge.config import Config, DeviceConfig, resolve, templates
from wattbus_generic_bridge.families.common import parse_data
from wattbus_generic_bridge.mapper import Mapper
from wattbus_generic_bridge.modbus import plan
from wattbus_generic_bridge.spec import Description, HttpSource, ModbusSource, Value
from wattbus_sim import generic_http
from wattbus_sim.sdm import MODELS, SdmUnit
from wattbus_sim.sunspec_devices import Plant

DATA = Path(__file__).parent / "data"
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
# What each shipped description needs from a device entry besides its id.
ENTRY: dict[str, dict[str, Any]] = {
    "ai-on-the-edge": {"host": "192.0.2.10"},
    "tasmota-sml": {"host": "192.0.2.11", "vars": {"meter": "Strom", "power": "Power_cur"}},
    "tasmota-sml-mqtt": {"vars": {"topic": "hichi", "meter": "Strom", "power": "Power_cur"}},
    "shelly-relay-http": {"host": "192.0.2.12"},
    "sdm630-modbus": {"host": "192.0.2.13", "port": 5020},
    "evse-din-modbus": {"serial_port": "/dev/ttyUSB0", "max_current_a": 16},
    "evse-din-sdm630-modbus": {"serial_port": "/dev/ttyUSB0", "max_current_a": 16, "vars": {"phases": "1"}},
    "waveshare-modbus-relay": {"serial_port": "/dev/ttyUSB0", "unit_id": 4, "vars": {"channel": "7"}},
    "teslamate-mqtt": {},
    "vehicle-soc-mqtt": {"vars": {"soc_topic": "mazda2mqtt/JM0X/chargeInfo/batteryLevelPercentage"}},
}


def fixture(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def described(template: str) -> Description:
    return resolve(DeviceConfig(id=template, template=template, **ENTRY[template]), 0)


def paths(doc: Any, prefix: str = "$") -> set[str]:
    """Every key path in a JSON document (list items as [i])."""
    out = {prefix}
    if isinstance(doc, dict):
        for key, value in doc.items():
            out |= paths(value, f"{prefix}.{key}")
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out |= paths(value, f"{prefix}[{i}]")
    return out


def test_every_shipped_description_loads_with_its_provenance() -> None:
    shipped = templates()
    assert set(shipped) == set(ENTRY), "a shipped description without a test entry (or the reverse)"
    for name, text in shipped.items():
        desc = described(name)
        assert desc.about and desc.manufacturer, f"{name}: say where its shape comes from"
        assert tomllib.loads(text)["kind"] == desc.kind


def test_every_family_data_file_loads_with_its_provenance() -> None:
    folder = Path(families.__file__).parent
    data_files = sorted(folder.glob("*/*.toml"))
    assert {p.parent.name for p in data_files} == set(families.FAMILIES.values()), "data without a family (or reverse)"
    for template, name in families.FAMILIES.items():
        module = importlib.import_module(f"wattbus_generic_bridge.families.{name}.adapter")
        assert module.DATA.about and module.DATA.manufacturer, f"{template}: say where its shape comes from"
        for path in folder.glob(f"{name}/*.toml"):  # each file parses into the family's schema, units checked
            assert parse_data(path.read_text(), path.name, type(module.DATA)) == module.DATA


def test_a_family_data_file_with_a_wrong_unit_is_refused_with_table_and_field() -> None:
    from wattbus_generic_bridge.families.fronius import adapter
    text = (Path(adapter.__file__).parent / "fronius.toml").read_text()
    with pytest.raises(ValueError, match=r"fronius.toml \[battery\] capacity_wh: 'W' measures power"):
        parse_data(text.replace('capacity_wh = ["Capacity_Maximum", "Wh"]', 'capacity_wh = ["Capacity_Maximum", "W"]'),
                   "fronius.toml", adapter.Data)
    with pytest.raises(ValueError, match=r"fronius.toml: Object missing required field `battery`"):
        parse_data(text.split("[battery]")[0], "fronius.toml", adapter.Data)


def test_ai_on_the_edge_json_is_water_in_cubic_metres() -> None:
    doc = fixture("ai_on_the_edge_json.json")
    reading, misses = Mapper("water", described("ai-on-the-edge")).reading(
        Mapper("water", described("ai-on-the-edge")).select(doc), NOW)
    assert misses == []
    assert isinstance(reading, m.MeterReading)
    assert reading.water_m3 == float(doc["main"]["value"])  # text "521.17108" -> m³ (already SI)
    assert reading.extra == {"flow_m3_per_min": float(doc["main"]["rate"])}  # "no error" maps to nothing
    assert reading.power_w is None and reading.energy_import_wh is None  # not described: missing, never 0


def test_tasmota_status10_is_a_meter_in_watt_hours() -> None:
    doc = fixture("tasmota_sml_status10.json")
    mapper = Mapper("grid", described("tasmota-sml"))
    reading, misses = mapper.reading(mapper.select(doc), NOW)
    sml = doc["StatusSNS"]["Strom"]
    assert misses == [] and isinstance(reading, m.MeterReading)
    assert reading.energy_import_wh == pytest.approx(sml["Total_in"] * 1000)  # kWh -> Wh
    assert reading.energy_export_wh == pytest.approx(sml["Total_out"] * 1000)
    assert reading.power_w == sml["Power_cur"]


def test_tasmota_telemetry_over_mqtt_maps_the_same() -> None:
    doc = fixture("tasmota_sml_sensor.json")
    desc = described("tasmota-sml-mqtt")
    mapper = Mapper("grid", desc)
    assert mapper.topic_of(desc.values[0]) == "tele/hichi/SENSOR"
    reading, misses = mapper.reading(mapper.select(doc, "tele/hichi/SENSOR"), NOW)
    assert misses == [] and isinstance(reading, m.MeterReading)
    assert reading.energy_import_wh == pytest.approx(doc["Strom"]["Total_in"] * 1000)


def test_teslamate_topics_are_a_vehicle_in_si_units() -> None:
    """One plain value per topic, as TeslaMate publishes them: each message adds its value."""
    mapper = Mapper("tesla", described("teslamate-mqtt"))
    raws: dict[int, Any] = {}
    for topic, payload in fixture("teslamate_car1.json").items():
        raws.update(mapper.select(payload, topic))
    reading, misses = mapper.reading(raws, NOW)
    assert misses == [] and isinstance(reading, m.VehicleReading)
    assert (reading.soc_pct, reading.limit_soc_pct, reading.connected) == (62, 80, True)
    assert reading.range_m == pytest.approx(301_450)  # km -> m
    assert reading.charge_state == "charging" and reading.capacity_wh is None  # TeslaMate has no capacity
    stopped, misses = mapper.reading({**raws, **mapper.select("Sleeping", "teslamate/cars/1/charging_state")}, NOW)
    assert stopped.charge_state is None and "charge_state = 'Sleeping'" in misses[0]  # not a word it knows


def test_a_plain_soc_topic_is_a_vehicle_with_only_its_soc() -> None:
    desc = described("vehicle-soc-mqtt")
    mapper = Mapper("car", desc)
    reading, misses = mapper.reading(mapper.select("57.5", desc.values[0].topic or desc.source.topic), NOW)
    assert misses == [] and isinstance(reading, m.VehicleReading)
    assert reading.soc_pct == 57.5 and reading.range_m is None and reading.connected is None
    _, misses = mapper.reading(mapper.select("117", "mazda2mqtt/JM0X/chargeInfo/batteryLevelPercentage"), NOW)
    assert "soc_pct = 117.0" in misses[0]  # above 100 %: not a SoC, null and said


def test_shelly_status_is_a_relay_with_watt_minutes_converted() -> None:
    doc = fixture("shelly_gen1_status.json")
    mapper = Mapper("pump", described("shelly-relay-http"))
    reading, misses = mapper.reading(mapper.select(doc), NOW)
    assert misses == [] and isinstance(reading, m.RelayReading)
    assert reading.on is True and reading.channel == 0
    assert reading.power_w == doc["meters"][0]["power"]
    assert reading.energy_wh == pytest.approx(doc["meters"][0]["total"] / 60)  # watt-minutes -> Wh
    assert reading.temperature_c == doc["temperature"]


def test_sdm630_register_list_decodes_to_si() -> None:
    doc = fixture("sdm630_input_registers.json")
    desc = described("sdm630-modbus")
    registers = {int(k, 16): v for k, v in doc["registers"].items()}
    raws = {i: wattbus_registers.decode(v.point(), registers[v.register or 0]) for i, v in enumerate(desc.values)}
    reading, misses = Mapper("sdm", desc).reading(raws, NOW)
    assert misses == [] and isinstance(reading, m.MeterReading)
    assert reading.power_w == 1751.3  # a float32 reads as its shortest decimal, not 1751.300048828125
    assert reading.energy_import_wh == pytest.approx(18234.71 * 1000, rel=1e-6)  # kWh -> Wh (float32)
    assert [p.phase for p in reading.phases] == [1, 2, 3]
    assert reading.phases[0].voltage_v == 231.4
    assert reading.phases[2].power_w == pytest.approx(448.0)
    assert plan(desc.values) == [Block("input", 0x0000, 0x0012), Block("input", 0x0034, 2),
                                 Block("input", 0x0046, 6)]


def test_register_types_and_word_orders() -> None:
    cases = [([0xFFFF, 0xFFFE], Value(field="power_w", register=0, type="int32"), -2),
             ([0xFFFE, 0xFFFF], Value(field="power_w", register=0, type="int32", word_order="little"), -2),
             ([0x0001, 0x0000], Value(field="power_w", register=0, type="uint32", word_order="little"), 1),
             ([0x8000], Value(field="power_w", register=0, type="int16"), -32768),
             ([0x0000, 0x0000, 0x0001, 0x0000], Value(field="power_w", register=0, type="uint64"), 65536)]
    for words, value, expected in cases:
        assert wattbus_registers.decode(value.point(), words) == expected



def test_a_scale_applies_once() -> None:
    """Modbus values arrive scaled from the shared decode, so the mapper leaves them; HTTP values it scales."""
    values = [Value(field="frequency_hz", register=0, scale=0.01),
              Value(field="energy_import_wh", register=1, type="uint32", scale=0.01, unit="kWh")]
    words = [[4998], [0, 12345]]
    raws = {i: wattbus_registers.decode(v.point(), words[i]) for i, v in enumerate(values)}
    reading, misses = Mapper("m", Description(kind="meter", source=ModbusSource(), values=values)).reading(raws, NOW)
    assert misses == [] and isinstance(reading, m.MeterReading)
    assert (reading.frequency_hz, reading.energy_import_wh) == (49.98, 123450)  # 4998 * 0.01 Hz, 123.45 kWh
    http = Mapper("h", Description(kind="meter", source=HttpSource(url="http://x/"),
                                   values=[Value(field="frequency_hz", select="$.f", scale=0.01)]))
    reading, _ = http.reading(http.select({"f": 4998}), NOW)
    assert isinstance(reading, m.MeterReading) and reading.frequency_hz == pytest.approx(49.98)


async def test_the_simulators_answer_the_fixtures_shapes() -> None:
    for device, url, name in (("ai-on-the-edge", "/json", "ai_on_the_edge_json.json"),
                              ("tasmota-sml", "/cm?cmnd=status%2010", "tasmota_sml_status10.json"),
                              ("relay", "/status", "shelly_gen1_status.json")):
        async with TestClient(TestServer(generic_http.build_app(device))) as client:
            answer = await (await client.get(url)).json()
        wanted = paths(fixture(name))
        if device == "tasmota-sml":  # the simulator's script uses the descriptor prefix SML and Power_curr
            wanted = {p.replace("Strom", "SML").replace("Power_cur", "Power_curr") for p in wanted}
        assert wanted == paths(answer), device
    image = SdmUnit(MODELS["sdm630"], Plant(static=True), 1).inputs()
    for address in fixture("sdm630_input_registers.json")["registers"]:
        start = int(address, 16)
        value = wattbus_registers.decode(Value(field="power_w", register=start, type="float32").point(),
                                         image[start:start + 2])
        assert isinstance(value, float) and abs(value) < 1e9, address  # a real float where the fixture has one


BAD = [
    ({"vars": {"unit": "kWh"}}, "values[0].unit: 'kWh' measures energy, but water_m3 is volume"),
    ({"description": {"kind": "meter", "source": {"type": "http", "url": "http://{host}/"},
                      "values": [{"field": "water_m3", "select": "$.main["}]}},
     "values[0].select: '$.main[' is not a JSONPath"),
    ({"description": {"kind": "meter", "source": {"type": "http", "url": "http://x/"},
                      "values": [{"field": "watr_m3", "select": "$.a"}]}},
     "values[0].field: a meter reading has no field 'watr_m3'"),
    ({"description": {"kind": "meter", "source": {"type": "http", "url": "http://x/", "interval_s": 0},
                      "values": [{"field": "water_m3", "select": "$.a"}]}}, "source.interval_s = 0: Expected"),
    ({"description": {"kind": "meter", "source": {"type": "ftp", "url": "http://x/"},
                      "values": [{"field": "water_m3", "select": "$.a"}]}}, "allowed: http, mqtt, modbus"),
    ({"description": {"kind": "meter", "source": {"type": "modbus"}, "values": [{"field": "power_w"}]}},
     "values[0].register: a Modbus value needs its register address"),
    ({"description": {"kind": "meter", "source": {"type": "modbus"},
                      "values": [{"field": "power_w", "register": 65535, "type": "float32"}]}},
     "values[0].register: 2 registers from 65535 run past register 65535"),
    ({"description": {"kind": "meter", "source": {"type": "http", "url": "http://x/"},
                      "values": [{"field": "water_m3", "select": "$.a"}],
                      "write": {"on_url": "http://x/on", "off_url": "http://x/off"}}},
     "write: only a relay can be switched"),
    ({"description": {"kind": "relay", "source": {"type": "mqtt", "topic": "stat/+/POWER", "payload": "plain"},
                      "values": [{"field": "on"}]}}, "values[0].topic: 'stat/+/POWER': name one topic"),
    ({"template": "ai-on-the-edgy"}, "template = 'ai-on-the-edgy': no such shipped description"),
    ({"host": None}, "uses {host}, which has no value; set host"),
]


@pytest.mark.parametrize(("change", "expected"), BAD, ids=[e.split(":")[0][:30] for _c, e in BAD])
def test_a_bad_description_is_refused_with_key_and_reason(change: dict[str, Any], expected: str) -> None:
    entry: dict[str, Any] = {"id": "water", "template": "ai-on-the-edge", "host": "192.0.2.10", **change}
    if "description" in change:
        entry.pop("template")
    entry = {k: v for k, v in entry.items() if v is not None}
    with pytest.raises(ConfigError) as refused:
        LoadedConfig({"generic-bridge": {"devices": [entry]}}, None, {}).section("generic-bridge", Config)
    assert "devices[0] (water)" in str(refused.value) and expected in str(refused.value)
