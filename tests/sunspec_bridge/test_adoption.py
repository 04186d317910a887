"""Adoption: the real bridge process polls SunSpec devices announced on the discovery topic.

The announcements are published, retained, as the `discovery` broker user, exactly as the
discovery service does; the devices are SunSpec simulators on loopback ports.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Bus, Message

from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto


@pytest.fixture
def broker(private_broker: Mosquitto) -> Mosquitto:
    """A broker of this module's own: other tests leave retained discovery announcements on the
    session broker, and a bridge would rightly adopt those too."""
    return private_broker

SOURCE = "sunspec-bridge"


class Seen:
    def __init__(self, bus: Bus) -> None:
        self.readings: dict[str, int] = {}
        self.meta: dict[str, m.DeviceMeta] = {}
        self.counters: dict[str, int] = {}
        bus.subscribe(f"wattbus/v1/device/{SOURCE}/+/reading", m.Reading, self._reading)
        bus.subscribe(f"wattbus/v1/device/{SOURCE}/+/meta", m.DeviceMeta, self._meta)
        bus.subscribe(topics.ALL_SERVICE_STATUS, m.ServiceStatus, self._status)

    def _reading(self, msg: Message[m.ReadingBase]) -> None:
        self.readings[msg.payload.device_id] = self.readings.get(msg.payload.device_id, 0) + 1

    def _meta(self, msg: Message[m.DeviceMeta]) -> None:
        self.meta[msg.payload.device_id] = msg.payload

    def _status(self, msg: Message[m.ServiceStatus]) -> None:
        if msg.payload.service == SOURCE and not msg.retained:
            self.counters = msg.payload.counters


def announce(bus: Bus, device_id: str, port: int, unit: int, serial: str, present: bool = True) -> None:
    bus.publish(topics.discovery(device_id), m.DeviceAnnouncement(
        device_id=device_id, protocol="sunspec", address="127.0.0.1", port=port, unit_id=unit,
        kind="inverter", manufacturer="SMA", serial=serial, present=present, via="sweep"), retain=True)


async def test_adopts_denies_and_follows_a_move(broker: Any, start_sim: Callable[..., Any], start_service: Any,
                                                tmp_path: Path) -> None:
    first, second, fronius = start_sim("sma"), start_sim("sma"), start_sim("fronius")
    config = tmp_path / "w.toml"
    config.write_text("[sunspec-bridge]\npoll_interval_s = 0.5\noffline_after_failures = 2\nmax_backoff_s = 2\n"
                      'status_interval_s = 1\ndeny = ["34119102"]\n')
    discovery = await started_bus(broker, "discovery")
    bus = await started_bus(broker, "test-admin")
    seen = Seen(bus)
    sma, denied = "sma-3004512345", "fronius-34119102"
    # A garbage announcement and a cleared one (empty payload) before the real ones.
    discovery.publish(topics.discovery("garbage-1"), b'{"device_id": "garbage-1", "protocol": 7}', retain=True)
    discovery.publish(topics.discovery("cleared-1"), b"", retain=True)
    announce(discovery, sma, first.port, 126, "3004512345")
    announce(discovery, denied, fronius.port, 1, "34119102")
    proc = start_service("wattbus_sunspec_bridge", "--config", str(config), env=broker.env(SOURCE))
    try:
        await until(lambda: sma in seen.readings, 40, "readings of the announced SMA")
        assert f":{first.port}/" in (seen.meta[sma].address or "")
        # The next sweep announces it again: nothing changes (no second poller, no restart).
        announce(discovery, sma, first.port, 126, "3004512345")
        announce(discovery, sma, first.port, 126, "3004512345", present=False)  # gone: kept, no action
        await until(lambda: seen.counters.get("adopt_denied", 0) >= 1
                    and seen.counters.get("announcements_rejected", 0) >= 1, 20, "denied + rejected counted")
        assert seen.counters.get("adopt_start") == 1

        # DHCP: the same inverter answers at another address; the poller follows it.
        first.stop()
        announce(discovery, sma, second.port, 126, "3004512345")
        await until(lambda: f":{second.port}/" in (seen.meta[sma].address or ""), 40,
                    "meta at the new address")
        before = seen.readings[sma]
        await until(lambda: seen.readings[sma] >= before + 2, 20, "readings from the new address")
        await until(lambda: seen.counters.get("adopt_move") == 1, 20, "one move counted")
        assert seen.counters.get("adopt_start") == 1
        assert not any(device.startswith(denied) for device in seen.readings), "a denied device was polled"
        assert proc.proc.poll() is None
    finally:
        print(proc.output()[-3000:])  # shown by pytest when the test failed
        for device_id in ("garbage-1", sma, denied):
            discovery.publish(topics.discovery(device_id), b"", retain=True)
        assert proc.stop() == 0
        await discovery.stop()
        await bus.stop()


async def test_configured_device_is_pinned(broker: Any, start_sim: Callable[..., Any], start_service: Any,
                                           tmp_path: Path) -> None:
    configured, elsewhere = start_sim("sma"), start_sim("sma")
    config = tmp_path / "w.toml"
    config.write_text("[sunspec-bridge]\npoll_interval_s = 0.5\nstatus_interval_s = 1\ninstance = \"pin\"\n"
                      f'[[sunspec-bridge.devices]]\nhost = "127.0.0.1"\nport = {configured.port}\nunit_ids = [126]\n')
    discovery = await started_bus(broker, "discovery", instance="pin")
    bus = await started_bus(broker, "test-admin", instance="pin")
    seen = Seen(bus)
    sma = "sma-3004512345"
    proc = start_service("wattbus_sunspec_bridge", "--config", str(config), env=broker.env(SOURCE))
    try:
        await until(lambda: sma in seen.readings, 40, "readings of the configured SMA")
        # Discovery finds the same inverter (same serial) at another address: config wins.
        announce(discovery, sma, elsewhere.port, 126, "3004512345")
        await until(lambda: seen.counters.get("adopt_pinned", 0) >= 1, 20, "the pinned announcement counted")
        before = seen.readings[sma]
        await until(lambda: seen.readings[sma] >= before + 2, 20, "more readings")
        assert f":{configured.port}/" in (seen.meta[sma].address or "")
        assert "adopt_start" not in seen.counters and "adopt_move" not in seen.counters
    finally:
        print(proc.output()[-3000:])  # shown by pytest when the test failed
        discovery.publish(topics.discovery(sma), b"", retain=True)
        assert proc.stop() == 0
        await discovery.stop()
        await bus.stop()
