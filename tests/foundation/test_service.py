"""A real service process through the runner: bad payloads, broker restarts, clean shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Bus, Message

from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SERVICE = "sml-reader"  # the echo service logs in with this broker user
META = topics.device_meta(SERVICE, "echo-e-0001")
DEVICE_AVAILABILITY = topics.device_availability(SERVICE, "echo-e-0001")
STATUS = topics.service_status(SERVICE, "main")
AVAILABILITY = topics.service_availability(SERVICE, "main")


class Watcher:
    """Records the last payload per topic as the broker delivers it (retained ones included)."""

    def __init__(self, bus: Bus) -> None:
        self.last: dict[str, bytes] = {}
        self.history: list[tuple[str, bytes]] = []
        bus.subscribe("wattbus/#", bytes, self._seen)

    def _seen(self, msg: Message[bytes]) -> None:
        self.last[msg.topic] = msg.payload
        self.history.append((msg.topic, msg.payload))

    def status(self) -> m.ServiceStatus | None:
        from wattbus import codec
        raw = self.last.get(STATUS)
        return codec.decode(raw, m.ServiceStatus) if raw else None

    def counter(self, name: str) -> int:
        status = self.status()
        return status.counters.get(name, 0) if status else 0


def reading(power: float) -> m.MeterReading:
    return m.MeterReading(device_id="other", timestamp=NOW, power_w=power)


async def test_malformed_payloads_are_counted_and_the_service_keeps_running(
        broker: Mosquitto, start_service: Callable[..., Any]) -> None:
    admin = await started_bus(broker, "test-admin", "w1")
    watcher = Watcher(admin)
    proc = start_service("tests.support.echo_service", env=broker.env(SERVICE))
    await until(lambda: watcher.last.get(AVAILABILITY) == b"online", 20, "service online")
    await until(lambda: META in watcher.last, 10, "device meta retained")
    topic = topics.device_reading("sunspec-bridge", "x")
    for payload in (b"{", b'{"kind":"meter"}', b'{"kind":"toaster","device_id":"x","timestamp":"2026-11-25T12:00:00Z"}',
                    b'{"kind":"battery","device_id":"x","timestamp":"2026-11-25T12:00:00Z","soc_pct":140}'):
        admin.publish(topic, payload)
    admin.publish(topic, reading(1.0))
    await until(lambda: watcher.counter("readings_seen") == 1 and watcher.counter("rejected") == 4, 20,
                "4 rejected + 1 accepted in the service status")
    assert proc.proc.poll() is None, proc.output()
    log = proc.output()
    assert "rejected malformed payload" in log and "$.soc_pct" in log and topic in log
    await admin.stop()


async def test_service_survives_a_broker_restart(private_broker: Mosquitto,
                                                 start_service: Callable[..., Any]) -> None:
    proc = start_service("tests.support.echo_service", env=private_broker.env(SERVICE))
    admin = await started_bus(private_broker, "test-admin", "w2")
    watcher = Watcher(admin)
    await until(lambda: META in watcher.last, 20, "meta before restart")
    await admin.stop()

    private_broker.stop(kill=True)  # no persistence: the restarted broker has lost every retained message
    await asyncio.sleep(1.0)
    private_broker.start()

    admin = await started_bus(private_broker, "test-admin", "w3")
    watcher = Watcher(admin)
    await until(lambda: META in watcher.last and watcher.last.get(AVAILABILITY) == b"online", 30,
                "service reconnected and re-published its retained state")
    admin.publish(topics.device_reading("sunspec-bridge", "x"), reading(2.0))
    await until(lambda: watcher.counter("readings_seen") >= 1 and watcher.counter("reconnects") >= 1, 20,
                "service resumed after reconnect")
    assert proc.proc.poll() is None, proc.output()
    await admin.stop()


async def test_clean_shutdown_marks_service_and_devices_offline(broker: Mosquitto,
                                                               start_service: Callable[..., Any]) -> None:
    admin = await started_bus(broker, "test-admin", "w4")
    watcher = Watcher(admin)
    proc = start_service("tests.support.echo_service", "--config", "/dev/null", env=broker.env(SERVICE))
    await until(lambda: watcher.last.get(DEVICE_AVAILABILITY) == b"online", 20, "device online")
    assert await asyncio.to_thread(proc.stop) == 0, proc.output()
    await until(lambda: watcher.last.get(AVAILABILITY) == b"offline"
                and watcher.last.get(DEVICE_AVAILABILITY) == b"offline", 10, "explicit offline")
    assert "service stopped" in proc.output()
    await admin.stop()


async def test_last_will_marks_a_killed_service_offline(broker: Mosquitto,
                                                        start_service: Callable[..., Any]) -> None:
    admin = await started_bus(broker, "test-admin", "w5")
    watcher = Watcher(admin)
    proc = start_service("tests.support.echo_service", env={**broker.env(SERVICE), "WATTBUS_SML_READER_INSTANCE": "k"})
    availability = topics.service_availability(SERVICE, "k")
    await until(lambda: watcher.last.get(availability) == b"online", 20, "online")
    proc.proc.kill()
    await until(lambda: watcher.last.get(availability) == b"offline", 90, "last will published by the broker")
    await admin.stop()
