"""Security: device limits hold in the bridge whatever a client with command rights publishes.

A rogue (or buggy) integration asks the real goe-shelly-bridge for 80 A (outside the contract's
6-32 A) and 20 A for a charger the installer limited to 16 A: both are answered with the reason and
never reach the device (the go-e simulator counts every honoured set request).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Bus

from tests.reliability.goe_rig import SOURCE, SimCharger1, bridge_config, chargers, watch
from tests.reliability.mqtt_probe import NOT_AUTHORIZED, Probe
from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto


@pytest.fixture
async def charger() -> AsyncIterator[SimCharger1]:
    sims = await chargers(1, max_current_a=32)
    yield sims[0]
    await sims[0].stop()


async def test_rogue_commands_refused_with_reason(broker: Mosquitto, charger: SimCharger1, start_service: Any,
                                                  tmp_path: Path) -> None:
    admin = await started_bus(broker, "test-admin", "rogue-watch")
    rogue = await started_bus(broker, "integrations", "rogue")
    seen = watch(admin)
    config = bridge_config(tmp_path, [charger], max_current_a=16, min_switch_interval_s=0)
    start_service("wattbus_goe_shelly_bridge", "--config", str(config), env=broker.env(SOURCE))
    dev = charger.device_id
    topic = topics.device_command(SOURCE, dev)
    try:
        await until(lambda: seen.availability.get(dev) == "online", 30, "go-e online")
        ok = await rogue.request(topic, m.SetChargeCurrent(current_a=10, request_id="legit"), timeout=20)
        assert ok.status == "ok" and charger.firmware.amp == 10, ok
        sets = charger.firmware.sets

        # 80 A: outside the contract; the Struct constructor does not validate, the bridge's decoder does.
        result = await rogue.request(topic, m.SetChargeCurrent(current_a=80, request_id="r80"), timeout=20)
        assert result.status == "invalid" and "current_a" in result.message and "32" in result.message, result
        # 20 A: a valid contract value, above this installation's 16 A limit.
        result = await rogue.request(topic, m.SetChargeCurrent(current_a=20, request_id="r20"), timeout=20)
        assert result.status == "refused" and "above the configured maximum of 16 A" in result.message, result
        assert result.request_id == "r20" and result.target == dev
        # A command the device cannot do, and a device that is not on this bridge.
        result = await rogue.request(topic, m.Restart(), timeout=20)
        assert result.status == "refused" and "not supported" in result.message, result
        result = await rogue.request(topics.device_command(SOURCE, "goe-999999"), m.SetCharging(enabled=True),
                                     timeout=20)
        assert result.status == "refused" and "no device 'goe-999999'" in result.message, result
        assert charger.firmware.sets == sets and charger.firmware.amp == 10, "a refused command reached the device"

        # A service without command rights cannot even deliver one (PUBACK 0x87, the bridge never sees it).
        probe = Probe(broker.port, "sml-reader", broker.files.password("sml-reader"))
        assert probe.connect() is not None
        assert probe.publish_reason(topic, b'{"command":"set_charge_current","current_a":32}') == NOT_AUTHORIZED
        probe.close()
        await until(lambda: seen.counter("commands_invalid") >= 1 and seen.counter("commands_refused") >= 3, 15,
                    "refusals counted in the bridge status")
        assert charger.firmware.amp == 10 and charger.firmware.sets == sets
    finally:
        await rogue.stop()
        await admin.stop()


async def test_resent_command_is_not_applied_twice(broker: Mosquitto, charger: SimCharger1, start_service: Any,
                                                   tmp_path: Path) -> None:
    """The same request delivered twice (a QoS 1 redelivery, a retrying client) writes at most once:
    the bridge reads the device first and only writes what differs."""
    admin: Bus = await started_bus(broker, "test-admin", "dup")
    seen = watch(admin)
    start_service("wattbus_goe_shelly_bridge", "--config", str(bridge_config(tmp_path, [charger])),
                  env=broker.env(SOURCE))
    dev = charger.device_id
    try:
        await until(lambda: seen.availability.get(dev) == "online", 30, "go-e online")
        before = charger.firmware.sets
        command = m.SetChargeCurrent(current_a=12, request_id="once")
        first = await admin.request(topics.device_command(SOURCE, dev), command, timeout=20)
        second = await admin.request(topics.device_command(SOURCE, dev), command, timeout=20)
        assert first.status == second.status == "ok"
        assert charger.firmware.sets == before + 1 and charger.firmware.amp == 12
    finally:
        await admin.stop()
