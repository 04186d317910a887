"""Bus throughput: encode + publish + receive + decode of readings through a real Mosquitto.

msgspec (the contract's codec) against a stdlib-json baseline in the same run, plus the codec
alone (no broker), so the broker-bound and CPU-bound parts can be told apart.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from wattbus import codec, topics
from wattbus import messages as m
from wattbus.bus import Bus, Message

from tests.support.servers import TEST_ADMIN, Mosquitto

MESSAGES = 20_000


def sample(n: int) -> m.MeterReading:
    return m.MeterReading(
        device_id="emh-1", timestamp=datetime.now(UTC), power_w=float(n), energy_import_wh=3985744.0 + n,
        energy_export_wh=18804181.0, frequency_hz=50.0,
        phases=[m.PhaseValues(phase=p, voltage_v=230.0, current_a=1.0 + p, power_w=230.0 * p) for p in (1, 2, 3)])


def json_encode(reading: m.MeterReading) -> bytes:
    doc = msgspec.to_builtins(reading)  # what a dict-based service would hold
    return json.dumps(doc).encode()


def json_decode(data: bytes) -> Any:
    return json.loads(data)


def codec_rate(encode: Any, decode: Any, readings: list[m.MeterReading]) -> float:
    started = time.perf_counter()
    for reading in readings:
        decode(encode(reading))
    return len(readings) / (time.perf_counter() - started)


def client(broker: Mosquitto, name: str) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5)
    c.username_pw_set(TEST_ADMIN, broker.files.password(TEST_ADMIN))
    c.max_inflight_messages_set(100)
    c.connect("127.0.0.1", broker.port)
    return c


def through_broker(broker: Mosquitto, encode: Any, decode: Any, readings: list[m.MeterReading],
                   label: str) -> tuple[float, int]:
    topic = topics.device_reading("sml-reader", f"bench-{label}")
    received = 0
    done = threading.Event()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        nonlocal received
        decode(msg.payload)
        received += 1
        if received == len(readings):
            done.set()

    sub = client(broker, f"bench-sub-{label}")
    sub.on_message = on_message
    sub.subscribe(topic, qos=1)
    sub.loop_start()
    pub = client(broker, f"bench-pub-{label}")
    pub.loop_start()
    time.sleep(0.3)
    started = time.perf_counter()
    for reading in readings:
        pub.publish(topic, encode(reading), qos=1)
    done.wait(120)
    elapsed = time.perf_counter() - started
    for c in (pub, sub):
        c.loop_stop()
        c.disconnect()
    return received / elapsed, received


async def through_wattbus_bus(broker: Mosquitto, readings: list[m.MeterReading]) -> tuple[float, int]:
    """The services' real path: Bus.publish(Struct) -> broker -> typed subscribe -> handler."""
    subscriber = Bus(broker.bus_config(TEST_ADMIN), TEST_ADMIN, "bench-sub")
    publisher = Bus(broker.bus_config(TEST_ADMIN, max_queued_messages=0), TEST_ADMIN, "bench-pub")
    received = 0
    done = asyncio.Event()

    def handler(_msg: Message[m.Reading]) -> None:
        nonlocal received
        received += 1
        if received == len(readings):
            done.set()

    topic = topics.device_reading("sml-reader", "bench-bus")
    subscriber.subscribe(topic, m.Reading, handler)
    for bus in (subscriber, publisher):
        await bus.start()
        await bus.wait_connected(10)
    await asyncio.sleep(0.3)
    started = time.perf_counter()
    for n, reading in enumerate(readings):
        publisher.publish(topic, reading)
        if n % 200 == 0:
            await asyncio.sleep(0)
    await asyncio.wait_for(done.wait(), 120)
    elapsed = time.perf_counter() - started
    for bus in (publisher, subscriber):
        await bus.stop()
    return received / elapsed, received


def main() -> str:
    readings = [sample(n) for n in range(MESSAGES)]
    msgspec_decoder = codec.decoder_for(m.Reading)
    rows = []
    codec_msgspec = codec_rate(codec.encode, msgspec_decoder.decode, readings)
    codec_json = codec_rate(json_encode, json_decode, readings)
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp))
        broker.start()
        try:
            bus_msgspec, got_m = through_broker(broker, codec.encode, msgspec_decoder.decode, readings, "msgspec")
            bus_json, got_j = through_broker(broker, json_encode, json_decode, readings, "json")
            wattbus_rate, got_w = asyncio.run(through_wattbus_bus(broker, readings))
        finally:
            broker.stop()
    rows.append(("codec only: encode + decode (typed, validated)", codec_msgspec, codec_json))
    rows.append(("through Mosquitto at QoS 1: encode + publish + receive + decode", bus_msgspec, bus_json))
    rows.append(("wattbus Bus -> broker -> typed subscribe (asyncio dispatch)", wattbus_rate, bus_json))
    lines = [f"{MESSAGES} MeterReadings with 3 phases ({len(codec.encode(readings[0]))} bytes as JSON); "
             f"received {got_m} (msgspec), {got_j} (json), {got_w} (Bus) of {MESSAGES}. "
             "The ratio column compares with the stdlib-json row of the same path (broker rows: the paho "
             "json client).", "",
             "| path | msgspec msg/s | stdlib json msg/s | ratio |", "|---|---:|---:|---:|"]
    for label, fast, slow in rows:
        lines.append(f"| {label} | {fast:,.0f} | {slow:,.0f} | {fast / slow:.1f}x |")
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
