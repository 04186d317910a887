"""The bus client on the service's event loop (mqtt_loop.py): delivery order with sync and async
handlers, handler failures, a broker restart, and no network thread of paho's own."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime

import pytest
from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Bus, Message

from tests.support.bus_helpers import started_bus as started
from tests.support.bus_helpers import subscriptions_active, until
from tests.support.servers import Mosquitto

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def reading(n: int) -> m.MeterReading:
    return m.MeterReading(device_id="emh-1", timestamp=NOW, power_w=float(n))


async def test_sync_and_async_handlers_see_every_message_in_order(broker: Mosquitto) -> None:
    reader = await started(broker, "test-admin", "order")
    writer = await started(broker, "sml-reader", "order")
    sync_seen: list[float] = []
    async_seen: list[float] = []
    both_seen: list[tuple[str, float]] = []

    async def slow(msg: Message[m.Reading]) -> None:
        value = msg.payload.power_w or 0.0
        if int(value) % 3 == 0:  # every third message suspends: later ones must wait for it
            await asyncio.sleep(0.01)
        async_seen.append(value)
        both_seen.append(("async", value))

    def quick(msg: Message[m.Reading]) -> None:
        sync_seen.append(msg.payload.power_w or 0.0)
        both_seen.append(("sync", msg.payload.power_w or 0.0))

    topic = topics.device_reading("sml-reader", "emh-1")
    reader.subscribe(topic, m.Reading, slow)  # subscribed first: called first for each message
    reader.subscribe(topics.ALL_READINGS, m.Reading, quick)  # overlaps: each handler once per message
    await subscriptions_active(reader)
    for n in range(60):
        writer.publish(topic, reading(n))
    await until(lambda: len(sync_seen) == 60 and len(async_seen) == 60, what="60 messages to both handlers")
    expected = [float(n) for n in range(60)]
    assert async_seen == expected
    assert sync_seen == expected
    # Per message the async handler finished before the next handler ran (the order of before).
    assert both_seen == [(kind, float(n)) for n in range(60) for kind in ("async", "sync")]
    for bus in (reader, writer):
        await bus.stop()


async def test_failing_handlers_are_counted_and_delivery_goes_on(broker: Mosquitto) -> None:
    reader = await started(broker, "test-admin", "failing")
    writer = await started(broker, "sml-reader", "failing")
    got: list[float] = []

    def breaks_on_two(msg: Message[m.Reading]) -> None:
        if msg.payload.power_w == 2.0:
            raise ValueError("handler bug on 2")
        got.append(msg.payload.power_w or 0.0)

    async def breaks_on_four(msg: Message[m.Reading]) -> None:
        await asyncio.sleep(0)
        if msg.payload.power_w == 4.0:
            raise RuntimeError("async handler bug on 4")

    topic = topics.device_reading("sml-reader", "emh-1")
    reader.subscribe(topics.ALL_READINGS, m.Reading, breaks_on_two)  # distinct filters: one filter
    reader.subscribe(topic, m.Reading, breaks_on_four)  # is one subscription at the broker
    await subscriptions_active(reader)
    for n in range(6):
        writer.publish(topic, reading(n))
    await until(lambda: got == [0.0, 1.0, 3.0, 4.0, 5.0] and reader.counters.get("handler_errors") == 2,
                what="every message but the failing one, two handler errors")
    for bus in (reader, writer):
        await bus.stop()


async def test_reconnects_resubscribes_and_republishes_after_a_broker_restart(private_broker: Mosquitto) -> None:
    reader = await started(private_broker, "test-admin", "restart")
    writer = await started(private_broker, "sml-reader", "restart")
    got: list[float] = []
    topic = topics.device_reading("sml-reader", "emh-1")
    reader.subscribe(topic, m.Reading, lambda msg: got.append(msg.payload.power_w or 0.0))
    await subscriptions_active(reader)
    writer.publish(topic, reading(1))
    await until(lambda: got == [1.0])
    private_broker.stop()
    await until(lambda: not reader.connected and not writer.connected, what="both clients see the broker gone")
    private_broker.start()  # same port, no persistence: subscriptions must be sent again
    await until(lambda: reader.connected and writer.connected, timeout=30, what="both clients reconnected")
    assert reader.counters.get("reconnects") == 1
    await subscriptions_active(reader)
    writer.publish(topic, reading(2))
    await until(lambda: got == [1.0, 2.0], what="a reading through the restarted broker")
    for bus in (reader, writer):
        await bus.stop()


async def test_no_network_thread_and_a_clean_stop(broker: Mosquitto) -> None:
    before = {t.name for t in threading.enumerate()}
    bus = Bus(broker.bus_config("test-admin"), "test-admin", "threads")
    await bus.start()
    assert await bus.wait_connected(10)
    added = {t.name for t in threading.enumerate()} - before
    assert not added, f"the bus started threads: {added}"
    seen: list[str] = []
    watcher = await started(broker, "test-admin", "watcher")
    watcher.subscribe(topics.service_availability("test-admin", "threads"), bytes,
                      lambda msg: seen.append(bytes(msg.payload).decode()))
    await subscriptions_active(watcher)
    await bus.stop([(topics.service_availability("test-admin", "threads"), m.OFFLINE.encode())])
    assert not bus.connected
    await until(lambda: "offline" in seen, what="the final retained message before the disconnect")
    await watcher.stop()


async def test_a_retained_change_made_while_connecting_is_what_the_broker_keeps(broker: Mosquitto) -> None:
    """A status published after the socket opened but before the CONNACK goes out ahead of the older
    ones paho queued while there was no socket; the broker must still end up holding the newest."""
    topic = topics.service_status("sml-reader", "window")
    bus = Bus(broker.bus_config("sml-reader"), "sml-reader", "window")
    await bus.start()
    bus.publish(topic, b'{"n":1}', retain=True)  # no socket yet: waits in paho's queue for the CONNACK
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while bus._client.socket() is None and loop.time() < deadline:  # one loop pass at a time
        await asyncio.sleep(0)
    assert bus._client.socket() is not None and not bus._client.is_connected(), "the connect window was missed"
    bus.publish(topic, b'{"n":2}', retain=True)  # socket open, CONNECT sent, no CONNACK yet
    assert await bus.wait_connected(10)
    # Watched while the bus is still up: the retained
    # value and whatever follows it must end at the newest; before the fix it stayed at n=1.
    watcher = await started(broker, "test-admin", "window-watch")
    got: list[bytes] = []
    watcher.subscribe(topic, bytes, lambda msg: got.append(bytes(msg.payload)))
    await until(lambda: got[-1:] == [b'{"n":2}'], what="the newest status on the broker")
    await bus.stop()
    await watcher.stop(final=[(topic, b"")])


async def test_a_clean_stop_delivers_what_was_published_just_before(broker: Mosquitto) -> None:
    """stop() right after a burst of QoS 1 publishes: the broker acknowledged (and the reader got)
    every one of them before the disconnect; the last readings of a stopping service used to be lost."""
    reader = await started(broker, "test-admin", "flush")
    writer = await started(broker, "sml-reader", "flush")
    topic = topics.device_reading("sml-reader", "flush-1")
    got: list[float] = []
    reader.subscribe(topic, m.Reading, lambda msg: got.append(msg.payload.power_w or 0.0))
    await subscriptions_active(reader)
    count = 500  # more than max_inflight_messages (100): most of them are still in paho's queue
    for n in range(count):
        assert writer.publish(topic, reading(n))
    await writer.stop()
    await until(lambda: len(got) >= count, what=f"all {count} readings published before the stop")
    assert got == [float(n) for n in range(count)]
    await reader.stop()


async def test_a_stop_that_runs_out_of_time_says_what_it_dropped(broker: Mosquitto,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    writer = await started(broker, "sml-reader", "flush-late")
    topic = topics.device_reading("sml-reader", "flush-late-1")
    for n in range(50):
        writer.publish(topic, reading(n))
    await writer.stop(timeout=0)  # no time at all: nothing can have been acknowledged yet
    dropped = [r for r in caplog.records if "before the broker acknowledged" in r.getMessage()]
    assert len(dropped) == 1
    fields = dropped[0].__dict__["fields"]
    assert fields["dropped"] == 50 and fields["topics"] == [topic]
    assert writer.counters.get("publish_dropped") == 50
