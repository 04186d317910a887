"""The bus client and the broker's ACL against a real Mosquitto."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Message

from tests.support.bus_helpers import started_bus as started
from tests.support.bus_helpers import until
from tests.support.servers import Mosquitto

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


async def test_typed_subscribe_delivers_structs_and_rejects_malformed(broker: Mosquitto) -> None:
    reader = await started(broker, "influx-writer")
    writer = await started(broker, "sml-reader")
    got: list[m.Reading] = []
    reader.subscribe(topics.ALL_READINGS, m.Reading, lambda msg: got.append(msg.payload))
    await asyncio.sleep(0.2)
    topic = topics.device_reading("sml-reader", "emh-1")
    writer.publish(topic, m.MeterReading(device_id="emh-1", timestamp=NOW, power_w=-500.0))
    writer.publish(topic, b'{"kind":"meter","device_id":"emh-1","timestamp":"2026-11-25T12:00:00Z","power_w":"x"}')
    writer.publish(topic, b"\xff\xfe garbage")
    writer.publish(topic, m.MeterReading(device_id="emh-1", timestamp=NOW, power_w=42.0))
    await until(lambda: len(got) == 2 and reader.counters.get("rejected") == 2)
    assert [r.power_w for r in got] == [-500.0, 42.0]
    await reader.stop()
    await writer.stop()


async def test_acl_keeps_each_service_in_its_own_space(broker: Mosquitto) -> None:
    spy = await started(broker, "test-admin")
    seen: list[str] = []
    spy.subscribe("wattbus/#", bytes, lambda msg: seen.append(msg.topic))
    await asyncio.sleep(0.2)
    sml = await started(broker, "sml-reader")
    writer = await started(broker, "influx-writer")
    allowed = topics.device_reading("sml-reader", "emh-1")
    forbidden = [topics.device_reading("sunspec-bridge", "sma-1"),  # another bridge's device
                 topics.device_command("goe-shelly-bridge", "goe-1"),  # bridges don't command chargers
                 topics.discovery("fake")]
    for topic in [*forbidden, allowed]:
        sml.publish(topic, m.MeterReading(device_id="x", timestamp=NOW))
    writer.publish(topics.device_reading("influx-writer", "w"), m.MeterReading(device_id="w", timestamp=NOW))
    await until(lambda: allowed in seen)
    await asyncio.sleep(0.5)
    assert not set(forbidden) & set(seen)
    assert topics.device_reading("influx-writer", "w") not in seen  # the writer only reads
    for bus in (spy, sml, writer):
        await bus.stop()


async def test_anonymous_clients_are_refused(broker: Mosquitto) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    result: list[object] = []
    client.on_connect = lambda c, u, f, reason, p: result.append(reason)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    await until(lambda: bool(result))
    client.loop_stop()
    assert result[0].is_failure  # type: ignore[attr-defined]


async def test_request_response_with_v5_properties(broker: Mosquitto) -> None:
    bridge = await started(broker, "goe-shelly-bridge")
    controller = await started(broker, "surplus-controller")

    async def serve(msg: Message[m.Command]) -> None:
        cmd = msg.payload
        assert isinstance(cmd, m.SetChargeCurrent)
        bridge.respond(msg, m.CommandResult(status="ok", command="set_charge_current", target="goe-1",
                                            applied={"current_a": cmd.current_a}),
                       topics.device_result("goe-shelly-bridge", "goe-1"))

    bridge.subscribe(topics.commands_for("goe-shelly-bridge"), m.Command, serve)
    await asyncio.sleep(0.2)
    result = await controller.request(topics.device_command("goe-shelly-bridge", "goe-1"),
                                      m.SetChargeCurrent(current_a=10), timeout=5)
    assert result.status == "ok" and result.applied == {"current_a": 10.0}
    nobody = await controller.request(topics.device_command("goe-shelly-bridge", "unknown-device-0"),
                                      m.SetCharging(enabled=True), timeout=0.5)
    assert nobody.status == "ok" or nobody.status == "timeout"
    await bridge.stop()
    await controller.stop()


async def test_overlapping_subscriptions_deliver_once_per_handler(broker: Mosquitto) -> None:
    reader = await started(broker, "influx-writer", "overlap")
    writer = await started(broker, "sml-reader", "overlap")
    readings: list[str] = []
    everything: list[str] = []
    reader.subscribe(topics.ALL_READINGS, m.Reading, lambda msg: readings.append(msg.topic))
    # The session broker holds other tests' retained messages: count only this device's topics.
    reader.subscribe("wattbus/v1/#", bytes,
                     lambda msg: everything.append(msg.topic) if "/emh-9/" in msg.topic else None)
    await asyncio.sleep(0.3)
    topic = topics.device_reading("sml-reader", "emh-9")
    writer.publish(topic, m.MeterReading(device_id="emh-9", timestamp=NOW, power_w=1.0))
    writer.publish(topics.device_meta("sml-reader", "emh-9"),
                   m.DeviceMeta(device_id="emh-9", kind="meter", source="sml-reader", protocol="sml"))
    await until(lambda: len(everything) >= 2)
    await asyncio.sleep(0.5)  # a duplicate copy would arrive within this time
    assert readings == [topic]
    assert sorted(everything) == sorted([topic, topics.device_meta("sml-reader", "emh-9")])
    await reader.stop()
    await writer.stop()
