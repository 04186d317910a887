"""CPU a subscriber pays per message at a service-like trickle (not at full throughput).

At 1 Hz a service sees a few dozen messages a second, each arriving alone: per-message wake-ups
(paho's select loop, the hand-over to asyncio, the PUBACK) dominate, not decoding. A subscriber
process (the wattbus Bus with a typed handler, or a bare paho client for reference) receives
paced QoS 1 readings from a real Mosquitto; it reports its own process CPU (all threads) from
the first to the last message.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from wattbus import codec, topics
from wattbus import messages as m

from tests.support.servers import TEST_ADMIN, Mosquitto

TOPIC = topics.device_reading("sml-reader", "bench-trickle")

# Runs in the subscriber subprocess: python -c SUBSCRIBER <kind> <port> <user> <password> <count>
SUBSCRIBER = r"""
import asyncio, json, sys, threading, time
kind, port, user, password, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
topic = sys.argv[6]
marks = {}
def seen(n):
    if n == 1:
        marks["cpu0"], marks["t0"] = time.process_time(), time.perf_counter()
    if n == count:
        marks["cpu1"], marks["t1"] = time.process_time(), time.perf_counter()
        return True
    return False
if kind == "paho":
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    done = threading.Event(); got = 0
    def on_message(_c, _u, msg):
        global got
        got += 1
        if seen(got): done.set()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="trickle-sub", protocol=mqtt.MQTTv5)
    c.username_pw_set(user, password); c.on_message = on_message
    c.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    c.connect("127.0.0.1", port); c.loop_start()
    print("ready", flush=True); done.wait(600); c.loop_stop()
else:
    from wattbus import messages as m
    from wattbus.bus import Bus
    from wattbus.config import BusConfig
    async def main():
        done = asyncio.Event(); got = 0
        def handler(_msg):
            nonlocal got
            got += 1
            if seen(got): done.set()
        bus = Bus(BusConfig(host="127.0.0.1", port=port, username=user, password=password), user, "trickle")
        bus.subscribe(topic, m.Reading, handler)
        await bus.start(); await bus.wait_connected(10); await asyncio.sleep(0.5)
        print("ready", flush=True)
        await asyncio.wait_for(done.wait(), 600)
        await bus.stop()
    asyncio.run(main())
print(json.dumps({"cpu_s": marks["cpu1"] - marks["cpu0"], "wall_s": marks["t1"] - marks["t0"]}), flush=True)
"""


def payload(n: int) -> bytes:
    data: bytes = codec.encode(m.MeterReading(device_id="emh-1", timestamp=datetime.now(UTC), power_w=float(n),
                                              energy_import_wh=3985744.0 + n, frequency_hz=50.0))
    return data


def trickle(broker: Mosquitto, kind: str, count: int, rate_hz: float) -> dict[str, float]:
    """Subscriber process CPU for `count` messages published one at a time at rate_hz."""
    sub = subprocess.Popen([sys.executable, "-c", SUBSCRIBER, kind, str(broker.port), TEST_ADMIN,
                            broker.files.password(TEST_ADMIN), str(count), TOPIC],
                           stdout=subprocess.PIPE, text=True)
    assert sub.stdout is not None
    if sub.stdout.readline().strip() != "ready":
        raise RuntimeError(f"{kind} subscriber did not start")
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"trickle-pub-{kind}", protocol=mqtt.MQTTv5)
    pub.username_pw_set(TEST_ADMIN, broker.files.password(TEST_ADMIN))
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    started = time.perf_counter()
    for n in range(count):
        pub.publish(TOPIC, payload(n), qos=1)
        time.sleep(max(0.0, started + (n + 1) / rate_hz - time.perf_counter()))
    out, _ = sub.communicate(timeout=120)
    pub.loop_stop()
    pub.disconnect()
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main(count: int = 2000, rate_hz: float = 200.0) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp))
        broker.start()
        try:
            rows = [(kind, trickle(broker, kind, count, rate_hz)) for kind in ("paho", "bus")]
        finally:
            broker.stop()
    lines = [f"{count} readings at {rate_hz:.0f} msg/s, one at a time, QoS 1; subscriber process CPU "
             "(all threads) per 1000 messages:", "", "| subscriber | CPU-s per 1000 msgs | µs per message |",
             "|---|---:|---:|"]
    for kind, r in rows:
        label = "bare paho client (reference)" if kind == "paho" else "wattbus Bus, typed handler"
        per = r["cpu_s"] / (count - 1)
        lines.append(f"| {label} | {per * 1000:.3f} | {per * 1e6:.0f} |")
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main(*(float(a) if "." in a else int(a) for a in sys.argv[1:]))  # type: ignore[arg-type]
