"""influx-writer throughput, all through one real Mosquitto (QoS 1) into real servers.

(a) the ceiling: a bare paho subscriber counting QoS 1 messages; (b) one writer's sustained
readings/s into InfluxDB 1.x (v1 /write) and VictoriaMetrics (v2 write API), checked for zero
loss by counting the points in the server; (c) the same with 2 and 4 writers in one share group;
(d) the server's own ingestion of the same line protocol posted directly. The publisher is
`mosquitto_pub -l` (C, its own process) so it never competes for the writer's GIL.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions
from wattbus import codec, topics
from wattbus import messages as m
from wattbus_influx_writer import lineproto

from tests.influx_writer.helpers import influx_count, victoria_count
from tests.support.servers import TEST_ADMIN, InfluxDB1, Mosquitto, VictoriaMetrics

READINGS = 40_000
PUBLISHER = "house-sim"


def payloads(device: str, count: int) -> list[bytes]:
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    return [codec.encode(m.MeterReading(
        device_id=device, timestamp=base + timedelta(milliseconds=i), power_w=float(i % 3000),
        energy_import_wh=4e6 + i, energy_export_wh=1.8e7, frequency_hz=50.0,
        phases=[m.PhaseValues(phase=p, voltage_v=230.0, current_a=1.0 + p, power_w=230.0 * p) for p in (1, 2, 3)]))
        for i in range(count)]


def publish(broker: Mosquitto, device: str, data: list[bytes]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-V", "mqttv5", "-q", "1",
                             "-u", PUBLISHER, "-P", broker.files.password(PUBLISHER),
                             "-t", topics.device_reading(PUBLISHER, device), "-l"], stdin=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(b"\n".join(data) + b"\n")
    proc.stdin.close()
    return proc


def bare_ceiling(broker: Mosquitto) -> float:
    device = "bench-bare"
    got = 0
    first = last = 0.0
    done = threading.Event()

    def on_message(_c: mqtt.Client, _u: object, _msg: mqtt.MQTTMessage) -> None:
        nonlocal got, first, last
        last = time.perf_counter()
        if got == 0:
            first = last
        got += 1
        if got == READINGS:
            done.set()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=mqtt.MQTTv5)
    c.username_pw_set(TEST_ADMIN, broker.files.password(TEST_ADMIN))
    c.on_message = on_message
    c.connect("127.0.0.1", broker.port)
    c.subscribe(topics.shared("bench-bare", topics.device_reading(PUBLISHER, device)), options=SubscribeOptions(qos=1))
    c.loop_start()
    time.sleep(0.5)
    proc = publish(broker, device, payloads(device, READINGS))
    done.wait(300)
    proc.wait(60)
    c.loop_stop()
    c.disconnect()
    return got / (last - first) if got > 1 else 0.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def writers(broker: Mosquitto, tmp: Path, n: int, label: str, section: str) -> tuple[float, int, float]:
    """n writers in one share group; returns readings/s (first publish to last point stored), loss, RSS."""
    device = f"bench-{label}-{n}"
    procs = []
    for i in range(n):
        conf = tmp / f"{label}-{n}-{i}.toml"
        conf.write_text(f'[influx-writer]\ninstance = "{label}-{n}-{i}"\nshare_group = "bench-{label}-{n}"\n'
                        f'spool_dir = "{tmp}/{label}-{n}-{i}/spool"\n'
                        f'dead_letter_file = "{tmp}/{label}-{n}-{i}/dead.jsonl"\n{section}')
        env = {**broker.env("influx-writer"), "PATH": "/usr/bin:/bin"}
        procs.append(subprocess.Popen([sys.executable, "-m", "wattbus_influx_writer", "--config", str(conf),
                                       "--log-level", "WARNING"], env=env))
    count = counter_for(label, device)
    # Warm up: the broker drops what is published before the subscriptions exist.
    warm = f"{device}-warm"
    deadline = time.monotonic() + 30
    while counter_for(label, warm)() < 1 and time.monotonic() < deadline:
        publish(broker, warm, payloads(warm, 20)).wait(10)
        time.sleep(1)
    data = payloads(device, READINGS)
    started = time.perf_counter()
    pub = publish(broker, device, data)
    rss = 0.0
    deadline = time.monotonic() + 300
    stored = 0
    while time.monotonic() < deadline:
        stored = count()
        rss = max(rss, max(rss_mb(p.pid) for p in procs))
        if stored >= READINGS:
            break
        time.sleep(0.25)
    elapsed = time.perf_counter() - started
    pub.wait(60)
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(30)
    return READINGS / elapsed if stored >= READINGS else stored / elapsed, READINGS - stored, rss


SERVERS: dict[str, InfluxDB1 | VictoriaMetrics] = {}


def counter_for(label: str, device: str) -> Callable[[], int]:
    server = SERVERS[label]
    if isinstance(server, InfluxDB1):
        return lambda: max(influx_count(server, "bench", device), 0)
    return lambda: victoria_count(server, "meter_power_w", device_id=device)



def direct(server: InfluxDB1 | VictoriaMetrics, url: str, device: str) -> float:
    lines = []
    for data in payloads(device, READINGS):
        lines += lineproto.encode(codec.decode_reading(data), PUBLISHER, device)
    batches = ["".join(lines[i:i + 5000]).encode() for i in range(0, len(lines), 5000)]
    started = time.perf_counter()
    for body in batches:
        req = urllib.request.Request(url, data=body, method="POST")
        urllib.request.urlopen(req, timeout=60).close()
    return len(lines) / (time.perf_counter() - started)


def main() -> str:
    rows: list[str] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "mq").mkdir()
        (tmp / "influx").mkdir()
        (tmp / "vm").mkdir()
        broker, influx, vm = Mosquitto(tmp / "mq"), InfluxDB1(tmp / "influx"), VictoriaMetrics(tmp / "vm")
        for server in (broker, influx, vm):
            server.start()
        SERVERS.update(influx=influx, vm=vm)
        try:
            urllib.request.urlopen(urllib.request.Request(f"{influx.url}/query?q=CREATE+DATABASE+bench",
                                                          method="POST")).close()
            ceiling = bare_ceiling(broker)
            rows.append(f"| (a) bare paho subscriber, QoS 1 | {ceiling:,.0f} msg/s | | |")
            sections = {"influx": f'url = "{influx.url}"\napi = "v1"\ndatabase = "bench"\n',
                        "vm": f'url = "{vm.url}"\napi = "v2"\nbucket = "bench"\norg = "home"\n'}
            names = {"influx": "InfluxDB 1.x v1 /write", "vm": "VictoriaMetrics v2 API"}
            for label, section in sections.items():
                for n in (1, 2, 4):
                    rate, loss, rss = writers(broker, tmp, n, label, section)
                    rows.append(f"| ({'b' if n == 1 else 'c'}) {n} writer(s) -> {names[label]} | {rate:,.0f} "
                                f"readings/s ({rate * 4:,.0f} points/s) | {rate / ceiling:.0%} of (a), loss {loss} "
                                f"| {rss:.0f} MB |")
            d_influx = direct(influx, f"{influx.url}/write?db=bench&precision=ns", "bench-direct")
            d_vm = direct(vm, f"{vm.url}/api/v2/write?bucket=bench&org=home&precision=ns", "bench-direct")
            rows.append(f"| (d) direct POST -> InfluxDB 1.x | {d_influx:,.0f} points/s | | |")
            rows.append(f"| (d) direct POST -> VictoriaMetrics | {d_vm:,.0f} points/s | | |")
        finally:
            for server in (broker, influx, vm):
                server.stop()
    text = "\n".join([f"{READINGS} MeterReadings with 3 phases (4 points each) per run, published by mosquitto_pub "
                      "at QoS 1; loss = readings not found in the server afterwards; RSS = the largest writer.", "",
                      "| run | rate | vs ceiling | writer RSS |", "|---|---:|---:|---:|", *rows])
    print(text)
    return text


if __name__ == "__main__":
    main()
