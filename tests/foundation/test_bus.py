"""The bus client and the broker's ACL against a real Mosquitto."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Message
from wattbus.delivery import Routes, Subscription

from tests.support.bus_helpers import started_bus as started
from tests.support.bus_helpers import subscriptions_active, until
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


async def test_handlers_share_one_filter_and_each_gets_retained_and_live_once(broker: Mosquitto) -> None:
    reader = await started(broker, "test-admin", "fan-out")
    writer = await started(broker, "sml-reader", "fan-out")
    base = "wattbus/v1/device/sml-reader/emh-share"
    same, wider = f"{base}/+", f"{base}/#"
    meta, marker = f"{base}/meta", f"{base}/marker"
    got: dict[str, list[tuple[bytes, bool]]] = {"h1": [], "h2": [], "h3": []}

    def handler(name: str) -> Callable[[Message[bytes]], None]:
        return lambda msg: got[name].append((bytes(msg.payload), msg.retained))

    def copies() -> int:  # PUBLISH packets the broker sent: one per matching broker subscription
        return reader.counters.get("messages_in")

    async def mark(text: bytes, *names: str) -> None:
        # The broker keeps one publisher's order on each subscription: once every handler has the
        # marker, any duplicate of what came before it would have arrived.
        writer.publish(marker, text)
        await until(lambda: all((text, False) in got[n] for n in names), what=f"{text!r} to {names}")

    h1 = reader.subscribe(same, bytes, handler("h1"), qos=0)
    await subscriptions_active(reader)
    writer.publish(meta, b"R", retain=True)
    await until(lambda: got["h1"] == [(b"R", False)], what="the live retained publish")
    h2 = reader.subscribe(same, bytes, handler("h2"), qos=1)  # the same filter again, a stronger QoS
    await until(lambda: (b"R", True) in got["h2"], what="the retained message for the later handler")
    before = copies()
    await mark(b"m1", "h1", "h2")
    assert copies() - before == 1  # one broker subscription for both handlers
    assert reader._routes.filters[same].qos == 1
    assert got["h1"] == [(b"R", False), (b"m1", False)]  # not the retained copy again
    assert got["h2"] == [(b"R", True), (b"m1", False)]

    reader.subscribe(wider, bytes, handler("h3"))  # overlaps: the broker sends one copy per filter
    await until(lambda: (b"R", True) in got["h3"], what="the retained message on the wider filter")
    before = copies()
    await mark(b"m2", "h1", "h2", "h3")
    assert copies() - before == 2
    assert [g.count((b"m2", False)) for g in got.values()] == [1, 1, 1]
    assert got["h1"].count((b"R", True)) == 0 and got["h2"].count((b"R", True)) == 1

    reader.unsubscribe(h2)  # the strongest QoS goes: subscribed again at 0, its retained copy to nobody
    await mark(b"m3", "h1", "h3")
    assert reader._routes.filters[same].qos == 0
    assert (b"m3", False) not in got["h2"] and (b"R", True) not in got["h1"]
    reader.unsubscribe(h1)  # the last handler on the filter: the broker subscription goes
    await until(lambda: same not in reader._routes.filters)
    await subscriptions_active(reader)  # the broker handles the UNSUBSCRIBE before this probe's SUBSCRIBE
    before = copies()
    await mark(b"m4", "h3")
    assert copies() - before == 1
    assert all((b"m4", False) not in got[n] for n in ("h1", "h2"))
    writer.publish(meta, b"", retain=True)  # leave no retained message behind for later tests
    await reader.stop()
    await writer.stop()


def test_one_copy_with_several_identifiers_reaches_each_filters_handlers_once() -> None:
    """MQTT 5 lets a broker send one copy carrying every matching subscription's identifier instead
    of a copy per subscription (Mosquitto, above): the routing gives each handler that copy once."""
    def noop(_msg: Message[bytes]) -> None:
        return None

    routes = Routes()
    wide, first, later = (Subscription(f, bytes, noop, 1) for f in ("x/#", "x/+", "x/+"))
    f_wide, f_same = routes.add(wide), routes.add(first)
    assert routes.add(later) is f_same
    i_wide, i_first, i_later = (routes.new_ident(f_wide, (wide,)), routes.new_ident(f_same, (first,)),
                                routes.new_ident(f_same, (later,)))
    assert routes.route("x/y", False, [i_wide, i_later]) == [wide, first, later]
    assert routes.route("x/y", True, [i_wide, i_later]) == [wide, later]  # retained: for the new handler only
    assert routes.route("x/y", False, [i_first, i_later]) == [first, later]  # one filter's two SUBSCRIBEs: once
    assert routes.route("x/y", False, None) == [wide, first, later]  # no identifiers: matched here
    assert routes.remove(first) is None and routes.route("x/y", False, [i_later]) == [later]
    assert routes.remove(later) is f_same and routes.route("x/y", False, [i_wide, i_later]) == [wide]
