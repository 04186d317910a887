"""Each bridge's manual-add forms (issue 25): declared in the bridge, typed from its config Struct, and
what the setup page makes of a filled-in form is an item the bridge's own Struct accepts."""

from __future__ import annotations

import importlib
from typing import Any

import msgspec
import pytest
from wattbus import codec
from wattbus import messages as m
from wattbus.bridge import form
from wattbus.config import ConfigError, convert
from wattbus_http_api.setup_fields import FormError, fill, form_values, nested

BRIDGES = ("sunspec-bridge", "ecu-bridge", "giv-bridge", "goe-shelly-bridge", "sml-reader", "generic-bridge")
# What a person types where a form has no default (a host, a serial device, else a word).
TYPED = {"host": "192.0.2.10", "serial_port": "/dev/ttyUSB0"}


def announced(service: str) -> tuple[m.BridgeForms, Any]:
    package = "wattbus_" + service.replace("-", "_")
    probe, config = (importlib.import_module(f"{package}.{name}") for name in ("probe", "config"))
    forms: m.BridgeForms = probe.FORMS.announcement(service, "main", config.Config)
    # as the http-api receives it: through the contract's codec
    return codec.decode(codec.encode(forms), m.BridgeForms), config.Config


@pytest.mark.parametrize("service", BRIDGES)
def test_every_form_makes_an_item_the_bridge_accepts(service: str) -> None:
    forms, config_type = announced(service)
    assert forms.forms and forms.service == service
    for add in forms.forms:
        given = {f.key: TYPED.get(f.key, "word") for f in add.fields if f.default is None and not f.optional}
        flat = fill(add.entry, form_values(add, given))
        item = nested(flat)
        section = convert(service, {add.list_key: [item]}, config_type, {})  # the bridge's own check
        assert len(getattr(section, add.list_key)) == 1, add.name
        # the probe takes the item flat ("vars.x"), as ProbeDevice's entry holds no tables
        assert msgspec.convert({"entry": flat}, m.ProbeDevice).entry == flat


def test_protocols_deny_and_probe_wait_come_from_the_bridges() -> None:
    owners = {p: s for s in BRIDGES for p in announced(s)[0].protocols}
    assert owners == {"sunspec": "sunspec-bridge", "modbus": "sunspec-bridge", "aps-ecu": "ecu-bridge",
                      "givenergy": "giv-bridge", "goe": "goe-shelly-bridge", "shelly": "goe-shelly-bridge",
                      "sml": "sml-reader", "dsmr": "sml-reader", "iec62056": "sml-reader"}
    assert [announced(s)[0].deny for s in BRIDGES] == [True, True, True, True, False, False]
    assert announced("ecu-bridge")[0].probe_wait_s == 30.0  # two commands, each after a 5 s answer delay


def test_generic_forms_follow_the_shipped_templates() -> None:
    forms = {f.name: f for f in announced("generic-bridge")[0].forms}
    water = forms["generic:ai-on-the-edge"]
    fields = {f.key: f for f in water.fields}
    assert list(fields) == ["id", "host", "port", "number", "unit", "username", "password"]
    assert (water.address, fields["password"].input, fields["password"].optional) == ("host", "secret", True)
    assert (fields["number"].default, fields["port"].default, fields["id"].pattern) == ("main", 80,
                                                                                        "^[A-Za-z0-9_.:-]{1,128}$")
    item = nested(fill(water.entry, form_values(water, {"id": "water", "host": "192.0.2.60", "number": "wasser"})))
    assert item == {"id": "water", "template": "ai-on-the-edge", "host": "192.0.2.60", "port": 80,
                    "vars": {"number": "wasser", "unit": "m3"}}
    assert forms["generic:tasmota-sml-mqtt"].address == "none"  # read from the bus: nothing to connect to
    # An MQTT device on another broker: its address and login in the entry's broker table
    head = forms["generic:tasmota-sml-mqtt"]
    item = nested(fill(head.entry, form_values(head, {"id": "head", "topic": "hichi", "broker_host": "192.0.2.5",
                                                      "broker_username": "wattbus", "broker_password": "pw-1"})))
    assert item["broker"] == {"host": "192.0.2.5", "username": "wattbus", "password": "pw-1"}
    config_type = announced("generic-bridge")[1]
    assert convert("generic-bridge", {"devices": [item]}, config_type, {}).devices[0].broker.password == "pw-1"
    # A Modbus description over a serial line: the line's settings, the unit id typed as the bridge's
    rtu = forms["generic:sdm630-modbus:rtu"]
    assert [f.key for f in rtu.fields] == ["id", "serial_port", "baudrate", "parity", "stopbits", "unit_id"]
    item = nested(fill(rtu.entry, form_values(rtu, {"id": "grid", "serial_port": "socket://192.0.2.9:8899",
                                                    "parity": "E"})))
    assert item == {"id": "grid", "template": "sdm630-modbus", "serial_port": "socket://192.0.2.9:8899",
                    "baudrate": 9600, "parity": "E", "stopbits": 1, "unit_id": 1}


def test_a_filled_form_is_checked_against_its_fields() -> None:
    sunspec = announced("sunspec-bridge")[0].forms[0]
    refusals = [({"port": 502}, "$.host", "Host is needed"),
                ({"host": "192.0.2.1", "unit_id": 256}, "$.unit_id", "must be <= 255"),
                ({"host": "192.0.2.1", "unit_id": 1.5}, "$.unit_id", "whole number"),
                ({"host": "192.0.2.1", "unit_id": "nan"}, "$.unit_id", "a number is needed"),
                ({"host": "192.0.2.1", "port": "80x"}, "$.port", "is not a number"),
                ({"host": "192.0.2.1/admin?x=1"}, "$.host", "does not fit"),
                ({"host": "user@192.0.2.1"}, "$.host", "does not fit"),
                ({"host": "192.0.2.1", "url": "file:///etc/passwd"}, "$.url", "not a field")]
    for given, where, words in refusals:
        with pytest.raises(FormError) as caught:
            form_values(sunspec, given)
        assert caught.value.where == where and words in caught.value.message, (given, caught.value.message)
    generic = {f.name: f for f in announced("generic-bridge")[0].forms}["generic:tasmota-sml"]
    with pytest.raises(FormError) as caught:  # a variable lands in a URL or selector: one plain word
        form_values(generic, {"host": "192.0.2.7", "meter": "../cm?cmnd=Power%20off"})
    assert caught.value.where == "$.meter"


def test_an_entry_that_names_no_field_is_refused_where_it_is_declared() -> None:
    with pytest.raises(ValueError, match="entry uses \\['unit_id'\\]"):
        form.add_form("x", "X", "devices", {"host": "{host}", "unit_ids": ["{unit_id}"]}, [form.host_field()])
    with pytest.raises(ConfigError):  # a section the bridge refuses stays refused (no form bypasses it)
        convert("sunspec-bridge", {"devices": [{"host": "192.0.2.1", "port": 70000}]},
                importlib.import_module("wattbus_sunspec_bridge.config").Config, {})
