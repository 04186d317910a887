"""Adoption: the real bridge process polls GivEnergy inverters announced on the discovery topic.

Announcements are published, retained, as the `discovery` broker user; the inverters are dongle
simulators (the GivEnergy Modbus-over-TCP protocol) on loopback ports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Bus, Message

from tests.giv_bridge.conftest import GivSim
from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto


@pytest.fixture
def broker(private_broker: Mosquitto) -> Mosquitto:
    """A broker of this module's own: other tests leave retained discovery announcements on the
    session broker, and a bridge would rightly adopt those too."""
    return private_broker

SOURCE = "giv-bridge"
INVERTER = "givenergy-sa2345g678"
OTHER = "givenergy-zz0000z000"


def announce(bus: Bus, device_id: str, serial: str, port: int) -> None:
    bus.publish(topics.discovery(device_id), m.DeviceAnnouncement(
        device_id=device_id, protocol="givenergy", address="127.0.0.1", port=port, kind="inverter",
        manufacturer="GivEnergy", serial=serial, via="sweep", extra={"adapter_serial": "WF2345G001"}), retain=True)


async def test_adopts_denies_and_follows_a_move(broker: Mosquitto, start_service: Any, tmp_path: Path) -> None:
    first, moved, denied = (GivSim(tmp_path / f"sim{i}.log", "--batteries", "1") for i in range(3))
    config = tmp_path / "w.toml"
    config.write_text(f'[giv-bridge]\npoll_interval_s = 1\nstatus_interval_s = 1\ninstance = "adopt"\n'
                      f'deny = ["127.0.0.1:{denied.port}"]\n')
    discovery = await started_bus(broker, "discovery", instance="giv-adopt")
    bus = await started_bus(broker, "test-admin", instance="giv-adopt")
    readings: dict[str, int] = {}
    counters: dict[str, int] = {}

    def reading(msg: Message[m.ReadingBase]) -> None:
        readings[msg.payload.device_id] = readings.get(msg.payload.device_id, 0) + 1

    def status(msg: Message[m.ServiceStatus]) -> None:
        counters.update(msg.payload.counters)

    bus.subscribe(f"{topics.PREFIX}/device/{SOURCE}/+/reading", m.Reading, reading)
    bus.subscribe(topics.service_status(SOURCE, "adopt"), m.ServiceStatus, status)
    announce(discovery, INVERTER, "SA2345G678", first.port)
    announce(discovery, OTHER, "ZZ0000Z000", denied.port)
    discovery.publish(topics.discovery("givenergy-bad"), b"not json", retain=True)
    proc = start_service("wattbus_giv_bridge", "--config", str(config), env=broker.env(SOURCE))
    try:
        await until(lambda: INVERTER in readings and f"{INVERTER}-battery" in readings, 40, "adopted readings")
        announce(discovery, INVERTER, "SA2345G678", first.port)  # the next sweep: no change
        await until(lambda: counters.get("adopt_denied", 0) >= 1 and counters.get("announcements_rejected", 0) >= 1,
                    20, "denied and rejected announcements counted")
        assert counters.get("adopt_start") == 1

        # DHCP: the dongle answers at a new address; the old one is gone.
        first.stop()
        announce(discovery, INVERTER, "SA2345G678", moved.port)
        await until(lambda: counters.get("adopt_move") == 1, 20, "the move")
        before = readings[INVERTER]
        await until(lambda: readings[INVERTER] >= before + 2, 30, "readings from the new address")
        assert counters.get("adopt_start") == 1, "the denied dongle was adopted"
        assert proc.proc.poll() is None
    finally:
        print(proc.output()[-3000:])  # shown by pytest when the test failed
        for device_id in (INVERTER, OTHER, "givenergy-bad"):
            discovery.publish(topics.discovery(device_id), b"", retain=True)
        assert proc.stop() == 0
        await discovery.stop()
        await bus.stop()
        for sim in (first, moved, denied):
            sim.stop()
