"""Adoption: the real bridge process polls ECUs announced on the discovery topic.

Announcements are published, retained, as the `discovery` broker user; the ECUs are simulators
speaking the ECU protocol on loopback ports. Which simulator the bridge talks to is read from the
simulators' own connection counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from wattbus import codec, topics
from wattbus import messages as m
from wattbus.bus import Bus
from wattbus_sim.ecu import EcuSimulator, fleet_from_text

from tests.ecu_bridge.conftest import Recorder, bridge_config
from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto


@pytest.fixture
def broker(private_broker: Mosquitto) -> Mosquitto:
    """A broker of this module's own: other tests leave retained discovery announcements on the
    session broker, and a bridge would rightly adopt those too."""
    return private_broker

DEV = "wattbus/v1/device/ecu-bridge"
STATUS = "wattbus/v1/service/ecu-bridge/main/status"
FAST = ("[ecu-bridge.adopted]\npoll_interval_s = 0.3\nanswer_delay_s = 0.02\npause_between_commands_s = 0.02\n"
        'timeout_s = 3.0\nretry_after_failure_s = 0.2\nmaintenance_start = "00:00"\nmaintenance_end = "00:00"\n')


def counters(rec: Recorder) -> dict[str, int]:
    raw = rec.last.get(STATUS)
    return codec.decode(raw, m.ServiceStatus).counters if raw else {}


def announce(bus: Bus, sim: EcuSimulator, ecu_id: str | None = None) -> str:
    ecu_id = ecu_id or sim.ecu_id
    device_id = topics.slug("apsystems-ecu", ecu_id)
    bus.publish(topics.discovery(device_id), m.DeviceAnnouncement(
        device_id=device_id, protocol="aps-ecu", address="127.0.0.1", port=sim.port, kind="gateway",
        manufacturer="APsystems", model=sim.model, serial=ecu_id, via="sweep"), retain=True)
    return device_id


async def started(*sims: EcuSimulator) -> list[EcuSimulator]:
    for sim in sims:
        await sim.start(0)
    return list(sims)


async def test_adopts_pins_denies_and_follows_a_move(broker: Mosquitto, watcher: tuple[Bus, Recorder],
                                                     start_service: Any, tmp_path: Path) -> None:
    _, rec = watcher
    fleet = "01:1"
    first, moved, denied, configured, impostor = await started(
        EcuSimulator(model="ECU-R", fleet=fleet_from_text(fleet), refresh_s=0.3, pv_fraction=0.5),
        EcuSimulator(model="ECU-R", fleet=fleet_from_text(fleet), refresh_s=0.3, pv_fraction=0.5),
        EcuSimulator(model="ECU-C", fleet=fleet_from_text(fleet), refresh_s=0.3, pv_fraction=0.5),
        EcuSimulator(model="ECU-B", fleet=fleet_from_text(fleet), refresh_s=0.3, pv_fraction=0.5),
        EcuSimulator(model="ECU-B", fleet=fleet_from_text(fleet), refresh_s=0.3, pv_fraction=0.5))
    config = bridge_config(tmp_path, [configured])
    config.write_text(config.read_text().replace("[ecu-bridge]\n", f'[ecu-bridge]\ndeny = ["{denied.ecu_id}"]\n')
                      + FAST)
    discovery = await started_bus(broker, "discovery", instance="ecu-adopt")
    ids = [announce(discovery, first), announce(discovery, denied)]
    discovery.publish(topics.discovery("apsystems-ecu-garbage"), b'{"device_id": "x", "address": 5}', retain=True)
    proc = start_service("wattbus_ecu_bridge", "--config", str(config), env=broker.env("ecu-bridge"))
    gateway = f"{DEV}/{ids[0]}/reading"
    try:
        await until(lambda: gateway in rec.last and f"{DEV}/apsystems-ecu-{configured.ecu_id}/reading" in rec.last,
                    30, "readings of the announced and the configured ECU")
        # The configured ECU announced at another address: config wins, the impostor is never asked.
        ids.append(announce(discovery, impostor, configured.ecu_id))
        announce(discovery, first)  # every sweep repeats the announcement: nothing changes
        await until(lambda: counters(rec).get("adopt_pinned", 0) >= 1 and counters(rec).get("adopt_denied", 0) >= 1
                    and counters(rec).get("announcements_rejected", 0) >= 1, 20, "pinned, denied, rejected counted")
        assert counters(rec).get("adopt_start") == 1
        assert denied.stats.connections == 0 and impostor.stats.connections == 0

        # DHCP: the ECU now answers at another port. One client at a time, so the old one stops.
        await first.stop()
        announce(discovery, moved, first.ecu_id)
        rec.last.pop(gateway, None)
        await until(lambda: gateway in rec.last and moved.stats.connections >= 1, 30, "readings via the new address")
        await until(lambda: counters(rec).get("adopt_move") == 1, 20, "the move counted")
        assert counters(rec).get("adopt_start") == 1 and denied.stats.connections == 0
        assert proc.proc.poll() is None
    finally:
        print(proc.output()[-3000:])  # shown by pytest when the test failed
        for device_id in [*ids, "apsystems-ecu-garbage"]:
            discovery.publish(topics.discovery(device_id), b"", retain=True)
        assert proc.stop() == 0
        await discovery.stop()
        for sim in (moved, denied, configured, impostor):
            await sim.stop()
