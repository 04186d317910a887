"""influx-writer throughput, all through one real Mosquitto (QoS 1) into real servers.

Every run uses the same publisher (`mosquitto_pub -l`, C, its own process) and the same number of
readings, and is timed the same way: from the moment the publisher starts to the moment the last
reading is in hand -- received by (a) a bare paho subscriber (its own process, so its CPU is its
own), stored in the server for (b)/(c) one, 2 and 4 writers in one share group (zero loss checked
by counting the points in the server). (a') repeats (a) while the server ingests the same points
by direct POSTs paced at (a)'s rate: the ceiling when the database shares the machine. (d) is the
server's own ingestion rate. For every run the CPU seconds each process used per 10 000 readings
show who consumes the machine's cores. `--before DIR` (a copy of an older
services/influx-writer, e.g. from `git archive`) adds its (b) rows, interleaved with the current
code's, so before/after come from one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions
from wattbus import codec, topics
from wattbus import messages as m
from wattbus.config import BusConfig
from wattbus.counters import Counters
from wattbus.log import get_logger
from wattbus_influx_writer import lineproto
from wattbus_influx_writer.subscriber import AckToken, Subscriber

from tests.influx_writer.helpers import influx_count, victoria_count
from tests.support.servers import ROOT, TEST_ADMIN, InfluxDB1, Mosquitto, VictoriaMetrics

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
                             "-u", PUBLISHER, "-I", f"{PUBLISHER}-", "-P", broker.files.password(PUBLISHER),
                             "-t", topics.device_reading(PUBLISHER, device), "-l"], stdin=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(b"\n".join(data) + b"\n")
    proc.stdin.close()
    return proc


TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """utime + stime of a running process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def reap(proc: subprocess.Popen[bytes]) -> float:
    """Wait for a child and return the CPU seconds of its whole life (the publisher lives one run)."""
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Run:
    name: str
    rate: float  # readings/s, publisher start -> last reading received / stored
    loss: int | None = None
    rss: float | None = None
    cpu: dict[str, float] = field(default_factory=dict)  # process -> CPU seconds in the run
    instances: int = 1  # of the consumer (subscriber or writer)

    def bound(self) -> float:
        """readings/s this run's CPU figures allow on an otherwise idle machine: each consumer is one
        GIL-bound process (at most one core), and all processes together get os.cpu_count() cores."""
        consumer = self.cpu.get("writer", self.cpu.get("subscriber", 0.0)) / READINGS
        total = sum(v for k, v in self.cpu.items() if k != "bench") / READINGS
        return min(self.instances / consumer, (os.cpu_count() or 1) / total)

    def per_10k(self, who: str) -> str:
        return f"{self.cpu[who] * 10_000 / READINGS:.2f}" if who in self.cpu else ""


class Sampler:
    """CPU seconds of long-lived processes between start() and stop()."""

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self.pids = pids
        self.start_cpu = {who: sum(cpu_s(p) for p in ps) for who, ps in pids.items()}
        self.own = resource.getrusage(resource.RUSAGE_SELF)

    def stop(self) -> dict[str, float]:
        used = {who: sum(cpu_s(p) for p in ps) - self.start_cpu[who] for who, ps in self.pids.items()}
        own = resource.getrusage(resource.RUSAGE_SELF)
        used["bench"] = own.ru_utime + own.ru_stime - self.own.ru_utime - self.own.ru_stime
        return used


def bare_main(argv: list[str]) -> int:
    """The bare subscriber (a separate process): QoS 1, shared subscription, count, report."""
    port, topic, count = int(argv[0]), argv[1], int(argv[2])
    got = 0
    done = threading.Event()

    def on_message(_c: mqtt.Client, _u: object, _msg: mqtt.MQTTMessage) -> None:
        nonlocal got
        got += 1
        if got == count:
            done.set()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=mqtt.MQTTv5)
    c.username_pw_set(TEST_ADMIN, os.environ["BENCH_PASSWORD"])
    c.on_message = on_message
    c.connect("127.0.0.1", port)
    c.subscribe(topic, options=SubscribeOptions(qos=1))
    c.loop_start()
    print("ready", flush=True)
    done.wait(600)
    print(time.monotonic(), flush=True)
    c.loop_stop()
    return 0


def bare_ingest_main(argv: list[str]) -> int:
    """The same bare subscriber on the writer's subscription (subscriber.py: paho, manual
    acknowledgements, buffered reads): counts and acknowledges at once, no decoding -- what the
    writer's receive path alone costs."""
    port, topic, count = int(argv[0]), argv[1], int(argv[2])

    async def run() -> None:
        got = 0
        done = asyncio.Event()

        def on_publish(_topic: str, _payload: bytes) -> None:
            nonlocal got
            got += 1
            if got == count:
                done.set()

        def on_acks(token: AckToken) -> None:
            ingest.acknowledge([token])

        ingest = Subscriber(BusConfig(port=port, username=TEST_ADMIN, password=os.environ["BENCH_PASSWORD"]),
                            client_id="bench-bare-ingest", username=TEST_ADMIN, filters=[topic], session_expiry_s=0,
                            receive_maximum=20000, on_publish=on_publish, on_acks=on_acks, counters=Counters(),
                            log=get_logger("bench-ingest"))
        ingest.start()
        await ingest.connected.wait()
        print("ready", flush=True)
        await asyncio.wait_for(done.wait(), 600)
        print(time.monotonic(), flush=True)
        await ingest.close()

    asyncio.run(run())
    return 0


def bare(broker: Mosquitto, name: str, server: InfluxDB1 | VictoriaMetrics | None = None,
         server_url: str = "", pace_s: float = 0.0, mode: str = "--bare") -> Run:
    device = f"bench-bare-{time.monotonic_ns()}"  # a fresh series each run
    env = {**os.environ, "BENCH_PASSWORD": broker.files.password(TEST_ADMIN)}
    topic = topics.shared("bench-bare", topics.device_reading(PUBLISHER, device))
    sub = subprocess.Popen([sys.executable, "-m", "bench.bench_influx", mode, str(broker.port), topic,
                            str(READINGS)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert sub.stdout is not None
    sub.stdout.readline()
    time.sleep(0.5)  # the SUBACK
    data = payloads(device, READINGS)
    bodies = batches(data, device) if server is not None else []
    pids = {"subscriber": [sub.pid], "mosquitto": [pid(broker)]}
    if server is not None:
        pids["server"] = [pid(server)]
    sampler = Sampler(pids)
    started = time.monotonic()
    pub = publish(broker, device, data)
    poster = threading.Thread(target=post_all, args=(server_url, bodies, pace_s), daemon=True)
    poster.start()
    last = float(sub.stdout.readline())
    cpu = sampler.stop()
    cpu["publisher"] = reap(pub)
    poster.join(120)
    sub.wait(30)
    return Run(name, READINGS / (last - started), cpu=cpu)


def pid(server: Mosquitto | InfluxDB1 | VictoriaMetrics) -> int:
    assert server.proc is not None
    return server.proc.pid


def batches(data: list[bytes], device: str) -> list[bytes]:
    lines = []
    for payload in data:
        lines += lineproto.encode(codec.decode_reading(payload), PUBLISHER, device)
    return ["".join(lines[i:i + 5000]).encode() for i in range(0, len(lines), 5000)]


def post_all(url: str, bodies: list[bytes], pace_s: float) -> None:
    for body in bodies:
        urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=60).close()
        time.sleep(pace_s)


def writers(broker: Mosquitto, tmp: Path, n: int, label: str, section: str, name: str,
            pythonpath: str | None = None) -> Run:
    """n writers in one share group, timed from publisher start to the last point in the server."""
    tag = f"{label}-{n}-{'old' if pythonpath else 'new'}"
    device = f"bench-{tag}"
    procs = []
    for i in range(n):
        conf = tmp / f"{tag}-{i}.toml"
        conf.write_text(f'[influx-writer]\ninstance = "{tag}-{i}"\nshare_group = "bench-{tag}"\n'
                        f'spool_dir = "{tmp}/{tag}-{i}/spool"\ndead_letter_file = "{tmp}/{tag}-{i}/dead.jsonl"\n'
                        f'{section}')
        env = {**broker.env("influx-writer"), "PATH": "/usr/bin:/bin"}
        if pythonpath or os.environ.get("PYTHONPATH"):  # ahead of the editable install: that tree wins
            env["PYTHONPATH"] = pythonpath or os.environ["PYTHONPATH"]
        procs.append(subprocess.Popen([sys.executable, "-m", "wattbus_influx_writer", "--config", str(conf),
                                       "--log-level", "WARNING"], env=env))
    count = counter_for(label, device)
    # Warm up: the broker drops what is published before the subscriptions exist.
    warm = f"{device}-warm"
    deadline = time.monotonic() + 30
    while counter_for(label, warm)() < 1 and time.monotonic() < deadline:
        publish(broker, warm, payloads(warm, 20)).wait(10)
        time.sleep(1)
    time.sleep(1.5)  # the warm-up's last batch flushed
    data = payloads(device, READINGS)
    sampler = Sampler({"writer": [p.pid for p in procs], "mosquitto": [pid(broker)],
                       "server": [pid(SERVERS[label])]})
    started = time.monotonic()
    pub = publish(broker, device, data)
    rss = 0.0
    deadline = time.monotonic() + 300
    stored = 0
    while time.monotonic() < deadline:
        stored = count()
        rss = max(rss, max(rss_mb(p.pid) for p in procs))
        if stored >= READINGS:
            break
        time.sleep(0.1)
    elapsed = time.monotonic() - started
    cpu = sampler.stop()
    cpu["publisher"] = reap(pub)
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(30)
    return Run(name, min(stored, READINGS) / elapsed, READINGS - stored, rss, cpu, n)


SERVERS: dict[str, InfluxDB1 | VictoriaMetrics] = {}


def counter_for(label: str, device: str) -> Callable[[], int]:
    server = SERVERS[label]
    if isinstance(server, InfluxDB1):
        return lambda: max(influx_count(server, "bench", device), 0)
    return lambda: victoria_count(server, "meter_power_w", device_id=device)


def direct(url: str, device: str) -> float:
    bodies = batches(payloads(device, READINGS), device)
    started = time.perf_counter()
    post_all(url, bodies, 0.0)
    return READINGS * 4 / (time.perf_counter() - started)


WHO = ("subscriber", "writer", "mosquitto", "publisher", "server", "bench")


def table(runs: list[Run], ceiling: float, bound: float) -> list[str]:
    rows = ["| run | readings/s | of (a) | loss | " + " | ".join(WHO) + " | CPU bound | of (a) bound | writer RSS |",
            "|---|---:|---:|---:|" + "---:|" * len(WHO) + "---:|---:|---:|"]
    for r in runs:
        rows.append(f"| {r.name} | {r.rate:,.0f} | {r.rate / ceiling:.0%} | {'' if r.loss is None else r.loss} | "
                    + " | ".join(r.per_10k(w) for w in WHO) + f" | {r.bound():,.0f} | {r.bound() / bound:.0%} | "
                    + f"{'' if r.rss is None else f'{r.rss:.0f} MB'} |")
    return rows


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", help="an older services/influx-writer directory to compare with")
    args = parser.parse_args(argv if argv is not None else [])
    runs: list[Run] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for sub in ("mq", "influx", "vm"):
            (tmp / sub).mkdir()
        broker, influx, vm = Mosquitto(tmp / "mq"), InfluxDB1(tmp / "influx"), VictoriaMetrics(tmp / "vm")
        for server in (broker, influx, vm):
            server.start()
        SERVERS.update(influx=influx, vm=vm)
        try:
            urllib.request.urlopen(urllib.request.Request(f"{influx.url}/query?q=CREATE+DATABASE+bench",
                                                          method="POST")).close()
            a = bare(broker, "(a) bare paho subscriber, QoS 1")
            runs.append(a)
            pace = 5000 / 4 / a.rate  # one 5000-line POST per 1250 readings at (a)'s rate
            urls = {"influx": f"{influx.url}/write?db=bench&precision=ns",
                    "vm": f"{vm.url}/api/v2/write?bucket=bench&org=home&precision=ns"}
            names = {"influx": "InfluxDB 1.x v1 /write", "vm": "VictoriaMetrics v2 API"}
            sections = {"influx": f'url = "{influx.url}"\napi = "v1"\ndatabase = "bench"\n',
                        "vm": f'url = "{vm.url}"\napi = "v2"\nbucket = "bench"\norg = "home"\n'}
            for label in sections:
                runs.append(bare(broker, f"(a') bare subscriber + {names[label]} ingesting the same points",
                                 SERVERS[label], urls[label], pace))
            for label, section in sections.items():
                if args.before:
                    runs.append(writers(broker, tmp, 1, label, section, f"(b) 1 writer BEFORE -> {names[label]}",
                                        args.before))
                for n in (1, 2, 4):
                    runs.append(writers(broker, tmp, n, label, section,
                                        f"({'b' if n == 1 else 'c'}) {n} writer(s) -> {names[label]}"))
            runs.append(bare(broker, "(a) bare paho subscriber again (drift check)"))
            runs.append(bare(broker, "(a'') bare subscriber on the writer's subscription (no decoding)",
                             mode="--bare-ingest"))
            d_influx = direct(urls["influx"], "bench-direct")
            d_vm = direct(urls["vm"], "bench-direct")
        finally:
            for server in (broker, influx, vm):
                server.stop()
    text = "\n".join([
        f"{READINGS} MeterReadings with 3 phases (4 points each) per run, published by mosquitto_pub at QoS 1; "
        "rate = readings / (publisher start -> last reading received or stored); loss = readings not in the server "
        "afterwards. CPU columns: CPU seconds per 10 000 readings of each process during the run (writer = all "
        f"instances; server includes the bench's count queries; bench = this process). Machine: {os.cpu_count()} "
        f"cores, load average {os.getloadavg()[0]:.1f} at the end.", "",
        "CPU bound = readings/s these CPU figures allow on an idle machine (a consumer process is GIL-bound to "
        "one core; all processes share the cores); it does not move with the other load on the machine, the "
        "measured rate does.", "",
        *table(runs, runs[0].rate, runs[0].bound()), "",
        f"(d) direct POST of the same line protocol: InfluxDB 1.x {d_influx:,.0f} points/s, "
        f"VictoriaMetrics {d_vm:,.0f} points/s."])
    print(text)
    return text


if __name__ == "__main__":
    if sys.argv[1:2] == ["--bare"]:
        sys.exit(bare_main(sys.argv[2:]))
    if sys.argv[1:2] == ["--bare-ingest"]:
        sys.exit(bare_ingest_main(sys.argv[2:]))
    main(sys.argv[1:])
