"""Queue limits: publishers outrunning a Python subscriber lose nothing at QoS 1.

With Mosquitto's default per-client queue (1000 messages) a lagging QoS 1 subscriber loses
messages; the project's broker config raises the limits, and this test counts every message.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Message

from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto

PUBLISHERS = 4
PER_PUBLISHER = 5000


async def test_flood_of_qos1_readings_arrives_complete(broker: Mosquitto) -> None:
    subscriber = await started_bus(broker, "influx-writer", "flood")
    seen: dict[str, set[int]] = {}

    def count(msg: Message[m.Reading]) -> None:
        seen.setdefault(msg.payload.device_id, set()).add(int(msg.payload.power_w or 0))

    subscriber.subscribe(topics.ALL_READINGS, m.Reading, count)
    await asyncio.sleep(0.3)
    publishers = [await started_bus(broker, "test-admin", f"flood-pub-{i}") for i in range(PUBLISHERS)]
    now = datetime.now(UTC)

    async def flood(index: int) -> None:
        bus = publishers[index]
        device = f"flood-{index}"
        topic = topics.device_reading("sml-reader", device)
        for n in range(PER_PUBLISHER):
            while not bus.publish(topic, m.MeterReading(device_id=device, timestamp=now, power_w=float(n))):
                await asyncio.sleep(0.01)  # our own outgoing queue is full: back off, never drop
            if n % 500 == 0:
                await asyncio.sleep(0)

    await asyncio.gather(*(flood(i) for i in range(PUBLISHERS)))
    total = PUBLISHERS * PER_PUBLISHER
    await until(lambda: sum(len(v) for v in seen.values()) == total, 120,
                f"all {total} messages received (got {sum(len(v) for v in seen.values())})")
    assert all(seen[f"flood-{i}"] == set(range(PER_PUBLISHER)) for i in range(PUBLISHERS))
    assert subscriber.counters.get("rejected") == 0
    for bus in (subscriber, *publishers):
        await bus.stop()
