"""Start-up checks of the write side: broker tables that would share a client id, and the
installation's fixed values (`const`, a `fixed` write), refused with both entries or the key named."""

from __future__ import annotations

from typing import Any

import pytest
from wattbus.config import ConfigError, LoadedConfig
from wattbus_generic_bridge.config import Config

MQTT = {"kind": "meter", "source": {"type": "mqtt", "topic": "hp/power", "payload": "plain"},
        "values": [{"field": "power_w"}]}


def entry(ident: str, **broker: Any) -> dict[str, Any]:
    return {"id": ident, "description": MQTT, "broker": broker}


def decode(*devices: dict[str, Any]) -> Config:
    """The section as the service decodes it at start-up."""
    return LoadedConfig({"generic-bridge": {"devices": list(devices)}}, None, {}).section("generic-bridge", Config)


def test_two_broker_tables_with_one_client_id_are_refused_naming_both() -> None:
    with pytest.raises(ConfigError) as err:
        decode(entry("a", host="10.0.0.5", client_id="wattbus"), entry("b", host="10.0.0.6"),
               entry("c", host="10.0.0.5", username="other", client_id="wattbus"))
    text = str(err.value)
    assert "devices[2] (c).broker: client_id 'wattbus' on mqtt://other@10.0.0.5:1883 is also devices[0] (a)'s" in text
    assert "knock each other off" in text


def test_the_default_client_id_clashes_for_two_tables_on_one_broker() -> None:
    with pytest.raises(ConfigError) as err:
        decode(entry("a", host="10.0.0.5", username="u1"), entry("b", host="10.0.0.5", username="u2"))
    assert "devices[1] (b).broker: the default client_id" in str(err.value)
    assert "devices[0] (a)'s" in str(err.value)


def test_equal_tables_share_a_connection_and_other_brokers_may_reuse_an_id() -> None:
    config = decode(entry("a", host="10.0.0.5", username="u1"), entry("b", host="10.0.0.5", username="u1"),
                    entry("c", host="10.0.0.5", port=1884, client_id="x"), entry("d", host="10.0.0.9", client_id="x"),
                    entry("e", host="10.0.0.5", username="u2", client_id="other"))
    assert [d.id for d in config.devices] == ["a", "b", "c", "d", "e"]


MODBUS = {"type": "modbus", "host": "192.0.2.9"}
RELAY_VALUES = [{"field": "on", "register": 0, "table": "coil"}]


@pytest.mark.parametrize(("description", "expected"), [
    ({"kind": "charger", "source": MODBUS, "values": [{"field": "phases_active", "const": 3, "register": 5}]},
     "values[0].register: a const value is read from nowhere"),
    ({"kind": "meter", "source": {"type": "http", "url": "http://x/"},
      "values": [{"field": "power_w", "select": "$.p", "unit_id": 2}]},
     "values[0].unit_id: a unit id names a Modbus device on the line; this source is http"),
    ({"kind": "relay", "source": MODBUS, "values": [{"field": "on", "register": 0, "table": "coil", "scale": 2}]},
     "values[0].type: a coil is one bit (0 or 1)"),
    ({"kind": "relay", "source": {"type": "http", "url": "http://x/"}, "values": [{"field": "on", "select": "$.on"}],
      "write": {"relay": {"coil": 0}}},
     "write.relay.coil: coils are written to Modbus sources only, this source is http"),
    ({"kind": "relay", "source": MODBUS, "values": RELAY_VALUES, "write": {"relay": {"coil": 0, "values":
                                                                                   {"on": "1", "off": "2"}}}},
     "write.relay.values: a coil is written 1 or 0"),
    ({"kind": "charger", "source": MODBUS, "values": [{"field": "set_current_a", "register": 1}],
      "write": {"charge_current": {"coil": 3}}},
     "write.charge_current.coil: a coil is on or off: it cannot take a current"),
    ({"kind": "charger", "source": MODBUS, "values": [{"field": "phases_active", "const": 3}],
      "write": {"phases": {"fixed": True, "register": 9}}},
     "write.phases.register: a fixed value is not written"),
])
def test_bad_bits_consts_and_fixed_writes_are_refused_with_the_key(description: dict[str, Any],
                                                                   expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        decode({"id": "x", "description": description})
    assert expected in str(err.value)
