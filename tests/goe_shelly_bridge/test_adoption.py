"""Adoption: the real bridge process polls go-e chargers and Shellies announced on the discovery topic.

Announcements are published, retained, as the `discovery` broker user (as after an mDNS find);
the devices are the HTTP simulators on loopback ports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Bus
from wattbus_sim.goe import GoeFirmware, SimCharger
from wattbus_sim.goe import build_app as goe_app
from wattbus_sim.shelly import ShellyState
from wattbus_sim.shelly import build_app as shelly_app

from tests.goe_shelly_bridge.conftest import ServeApp
from tests.goe_shelly_bridge.test_bridge import Recorder, write_config
from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto


@pytest.fixture
def broker(private_broker: Mosquitto) -> Mosquitto:
    """A broker of this module's own: other tests leave retained discovery announcements on the
    session broker, and a bridge would rightly adopt those too."""
    return private_broker

SOURCE = "goe-shelly-bridge"


def announce(bus: Bus, protocol: m.Protocol, serial: str, port: int, **extra: m.ExtraValue) -> str:
    device_id = topics.slug(protocol, serial)
    bus.publish(topics.discovery(device_id), m.DeviceAnnouncement(
        device_id=device_id, protocol=protocol, address="127.0.0.1", port=port, serial=serial, via="mdns",
        kind="charger" if protocol == "goe" else "relay", extra=extra), retain=True)
    return device_id


async def test_adopts_denies_skips_auth_and_follows_a_move(broker: Mosquitto, serve: ServeApp, start_service: Any,
                                                           tmp_path: Path) -> None:
    charger = GoeFirmware(SimCharger(ramp_delay_s=0.0), serial="200001", max_current_a=16)
    first, moved = await serve(goe_app(charger, "v2")), await serve(goe_app(charger, "v2"))
    denied = await serve(goe_app(GoeFirmware(SimCharger(), serial="200002"), "v2"))
    plug = await serve(shelly_app(ShellyState("Plus1PM", mac="A0A3B3000011")))
    locked = await serve(shelly_app(ShellyState("Plus1PM", mac="A0A3B3000012"), "secret"))
    config = write_config(tmp_path, [], deny=["200002"])
    bus = await started_bus(broker, "test-admin", "goe-shelly-adopt")
    rec = Recorder()
    bus.subscribe(f"{topics.PREFIX}/device/{SOURCE}/#", bytes, rec)
    bus.subscribe(topics.service_status(SOURCE, "main"), bytes, rec)
    discovery = await started_bus(broker, "discovery", "goe-shelly-adopt")
    ids = [announce(discovery, "goe", "200001", first.port), announce(discovery, "goe", "200002", denied.port),
           announce(discovery, "shelly", "a0a3b3000011", plug.port, gen=2, auth=False),
           announce(discovery, "shelly", "a0a3b3000012", locked.port, gen=2, auth=True)]
    discovery.publish(topics.discovery("goe-bad"), b'{"device_id": "goe-bad", "protocol": "goe"}', retain=True)
    proc = start_service("wattbus_goe_shelly_bridge", "--config", str(config), env=broker.env(SOURCE))

    def counters() -> dict[str, int]:
        return rec.status[-1].counters if rec.status else {}

    try:
        await until(lambda: rec.count("goe-200001") >= 2 and rec.count("shelly-a0a3b3000011") >= 2, 30,
                    "readings of the announced charger and Shelly")
        await until(lambda: counters().get("adopt_denied", 0) >= 1 and counters().get("adopt_skipped_auth", 0) >= 1
                    and counters().get("announcements_rejected", 0) >= 1, 20, "denied, auth-skipped, rejected")
        announce(discovery, "goe", "200001", first.port)  # the next find: no change

        # DHCP: the charger answers at a new address.
        await first.stop()
        announce(discovery, "goe", "200001", moved.port)
        await until(lambda: counters().get("adopt_move", 0) == 1, 20, "the move")
        before = rec.count("goe-200001")
        await until(lambda: rec.count("goe-200001") >= before + 2, 20, "readings from the new address")
        assert rec.count("goe-200002") == 0 and rec.count("shelly-a0a3b3000012") == 0
        assert counters().get("adopt_start") == 2  # the charger and the plug
        assert proc.proc.poll() is None
    finally:
        print(proc.output()[-3000:])  # shown by pytest when the test failed
        for device_id in [*ids, "goe-bad"]:
            discovery.publish(topics.discovery(device_id), b"", retain=True)
        assert proc.stop() == 0
        await discovery.stop()
        await bus.stop()
