"""Writes, RTU lines and other brokers as configuration: the EVSE DIN description maps its documented
registers, values are encoded for registers exactly, and every bad mapping or entry is refused at
start-up with the device, the key and what is wrong."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from wattbus import messages as m
from wattbus import registers as wattbus_registers
from wattbus.config import ConfigError
from wattbus_generic_bridge.adapter import device_meta
from wattbus_generic_bridge.config import Config, DeviceConfig, resolve
from wattbus_generic_bridge.control import commands, written
from wattbus_generic_bridge.mapper import Mapper
from wattbus_generic_bridge.modbus import encode
from wattbus_generic_bridge.spec import ModbusSource, Value
from wattbus_generic_bridge.writes import Target

DATA = Path(__file__).parent / "data"
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
HTTP = {"type": "http", "url": "http://192.0.2.5/status"}
CHARGER_VALUES = [{"field": "set_current_a", "select": "$.amps"}, {"field": "enabled", "select": "$.on"}]


def charger(write: dict[str, Any], source: dict[str, Any] | None = None,
            values: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"kind": "charger", "source": source or HTTP, "values": values or CHARGER_VALUES, "write": write}


def test_evse_din_registers_map_to_a_charger_reading() -> None:
    desc = resolve(DeviceConfig(id="wallbox", template="evse-din-modbus", serial_port="/dev/ttyUSB0"), 0)
    registers = {int(k): v for k, v in json.loads((DATA / "evse_din_holding_registers.json").read_text())
                 ["registers"].items()}
    raws = {i: wattbus_registers.decode(v.point(), [registers[v.register or 0]]) for i, v in enumerate(desc.values)}
    reading, misses = Mapper("wallbox", desc).reading(raws, NOW)
    assert misses == [] and isinstance(reading, m.ChargerReading)
    assert (reading.state, reading.set_current_a, reading.enabled) == ("charging", 16, True)
    assert reading.extra == {"offered_current_a": 16, "cable_limit_a": 32, "evse_state": "pwm"}
    off, _ = Mapper("wallbox", desc).reading({**raws, 2: 1}, NOW)  # register 1004 bit 0 set
    assert isinstance(off, m.ChargerReading) and off.enabled is False
    assert commands(desc) == (m.SetChargeCurrent, m.SetCharging)
    meta = device_meta("generic-bridge", DeviceConfig(id="wallbox", serial_port="/dev/ttyUSB0", unit_id=3), desc)
    assert meta.address == "rtu:/dev/ttyUSB0/1" and meta.capabilities == ["set_charge_current", "set_charging"]


def test_the_same_template_over_rtu_names_its_unit() -> None:
    desc = resolve(DeviceConfig(id="grid", template="sdm630-modbus", serial_port="/dev/ttyUSB0", unit_id=7), 0)
    assert isinstance(desc.source, ModbusSource) and desc.source.unit_id == 7
    meta = device_meta("generic-bridge", DeviceConfig(id="grid", serial_port="/dev/ttyUSB0", unit_id=7), desc)
    assert meta.address == "rtu:/dev/ttyUSB0/7"


@pytest.mark.parametrize(("kind", "number", "words"), [
    ("uint16", 16, [16]), ("int16", -2, [0xFFFE]), ("uint32", 70000, [1, 4464]), ("float32", 10.5, [0x4128, 0]),
])
def test_values_are_encoded_as_their_register_type(kind: str, number: float, words: list[int]) -> None:
    assert encode(number, kind) == words
    assert wattbus_registers.decode(Value(field="x", register=0, type=kind).point(), words) == number  # type: ignore[arg-type]
    assert encode(number, kind, "little") == list(reversed(words))


def test_a_value_that_does_not_fit_its_register_is_named() -> None:
    with pytest.raises(ValueError, match="70000 does not fit a uint16 register"):
        encode(70000, "uint16")
    with pytest.raises(ValueError, match=r"10.5 is not a whole number \(uint16 register\)"):
        encode(10.5, "uint16")
    assert written(Target(register=1000, scale=0.1), 16.0, "") == 160  # a register counting 0.1 A
    assert written(Target(url="http://x/?a={value}"), 16.0, "") == "16"
    assert written(Target(topic="t", values={"on": "true", "off": "false"}), True, "on") == "true"


BAD: list[tuple[dict[str, Any], str]] = [
    ({"description": charger({"charge_current": {"register": 1000}})},
     "write.charge_current.register: registers are written to Modbus sources only, this source is http"),
    ({"description": charger({"charge_current": {"url": "http://x/set"}})},
     "write.charge_current.url: the url or body must carry {value}"),
    ({"description": charger({"charging": {"url": "http://x/{value}", "values": {"yes": "1", "no": "0"}}})},
     "write.charging.values: map exactly on and off (got no, yes)"),
    ({"description": charger({"phases": {"url": "http://x/{value}"}})},
     'write.phases: needs a value with field = "phases_active" to read the change back'),
    ({"description": charger({"charge_current": {"url": "http://x/{value}", "topic": "t"}})},
     "write.charge_current.register: give exactly one of register, coil, url or topic (got url, topic)"),
    ({"description": charger({"charge_current": {"url": "http://x/{value}"}, "min_current_a": 10,
                              "max_current_a": 8})}, "write.min_current_a: 10 A is above max_current_a = 8 A"),
    ({"description": charger({"charge_current": {"topic": "wb/set/amps"}})},
     "write.charge_current.topic: a topic is published on the source's broker: this source is http"),
    ({"description": charger({})}, "write: a charger's [write] maps at least one of charge_current"),
    ({"description": {"kind": "meter", "source": HTTP, "values": [{"field": "power_w", "select": "$.p"}],
                      "write": {"charge_current": {"url": "http://x/{value}"}}}},
     "write: only a relay can be switched or a charger controlled; this description is a meter"),
    ({"template": "evse-din-modbus", "host": "192.0.2.1", "max_current_a": 40},
     "devices[0] (x).max_current_a = 40: outside the charger's 6-32 A"),
    ({"template": "sdm630-modbus", "host": "192.0.2.1", "max_current_a": 16},
     "devices[0] (x).max_current_a: the description writes no charge current"),
    ({"template": "ai-on-the-edge", "host": "192.0.2.1", "serial_port": "/dev/ttyUSB0"},
     "devices[0] (x).serial_port: the description reads http; a serial port carries Modbus RTU only"),
    ({"template": "sdm630-modbus", "host": "192.0.2.1", "broker": {"host": "192.0.2.9"}},
     "devices[0] (x).broker: the description reads modbus; a broker serves MQTT sources only"),
    ({"template": "tasmota-sml-mqtt", "vars": {"topic": "h"},
      "broker": {"host": "192.0.2.9", "password_file": "/nonexistent/pw"}},
     "devices[0] (x).broker.password_file = '/nonexistent/pw': cannot read it"),
    ({"template": "tasmota-sml-mqtt", "vars": {"topic": "h"},
      "broker": {"host": "192.0.2.9", "ca_file": "/etc/hostname"}},
     "devices[0] (x).broker: ca_file/cert_file are TLS settings; set tls = true"),
]


@pytest.mark.parametrize(("entry", "message"), BAD, ids=[b[1][:40] for b in BAD])
def test_bad_writes_and_entries_are_refused_with_key_and_reason(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(msgspec.convert({"id": "x", **entry}, DeviceConfig), 0)
    assert message in str(caught.value)


def test_one_serial_line_has_one_set_of_line_settings() -> None:
    entries = [{"id": "a", "template": "sdm630-modbus", "serial_port": "/dev/ttyUSB0"},
               {"id": "b", "template": "evse-din-modbus", "serial_port": "/dev/ttyUSB0", "baudrate": 19200}]
    with pytest.raises(msgspec.ValidationError) as caught:  # the section's decoding: ConfigError inside
        msgspec.convert({"devices": entries}, Config)
    assert ("devices[1] (b).serial_port = '/dev/ttyUSB0': baudrate/parity/stopbits (19200, 'N', 1) differ from "
            "devices[0] (a)'s (9600, 'N', 1)") in str(caught.value)
