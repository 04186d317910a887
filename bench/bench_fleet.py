"""Fleet mode: N sites x M devices at 1 Hz through one central broker, stored by 1, 2 and 4 writers.

Every simulated site is one MQTT connection to the central broker (what a site's bridge is),
publishing M MeterReadings (3 phases, 4 points each) once a second at QoS 1; publisher processes
(2 by default) hold the site connections so they never compete with the writers' GIL.

  (a) broker fan-in: the bridged topics `sites/<site>/wattbus/v1/device/...` counted by one bare
      paho subscriber (what the broker delivers at this load, and its loss)
  (b) central influx-writers (services/influx-writer) in one share group subscribed to
      `sites/+/wattbus/v1/device/+/+/reading`, into VictoriaMetrics, 1, 2 and 4 instances: the
      same bridged topics as (a) (device ids `dev<j>` repeat at every site, told apart by the
      `site` tag the writer takes from the prefix); stored readings counted in the database.
      The broker runs the project ACL plus mosquitto/acl.central (the writer reads sites/#).
  (c) catch-up: the writers were down while the fleet published WATTBUS_FLEET_BACKLOG_S seconds of
      readings (queued by the broker in their persistent sessions); readings/s is how fast 1, 2
      and 4 writers work the backlog off (from their process start to the last reading stored,
      so start-up is included), i.e. the writers' ceiling, which this fleet at 1 Hz does not reach.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FIGURES = ROOT / "bench" / "figures"
SITES = int(os.environ.get("WATTBUS_FLEET_SITES", "100"))
DEVICES = int(os.environ.get("WATTBUS_FLEET_DEVICES", "10"))
SECONDS = int(os.environ.get("WATTBUS_FLEET_SECONDS", "20"))
BACKLOG_S = int(os.environ.get("WATTBUS_FLEET_BACKLOG_S", "60"))  # (c): seconds of fleet readings queued
PUBLISHERS = 2
SUBSCRIPTION = "sites/+/wattbus/v1/device/+/+/reading"  # what a central writer subscribes to
TICKS = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- publisher process

def publisher(port: int, user: str, password: str, sites: list[str], devices: int, seconds: int,
              form: str, run: str) -> dict[str, int]:
    """One process: a connection per site, M readings per site per second, on the bridged topics
    `sites/<run>-<site>/wattbus/v1/...`; form "burst" publishes without pacing (a backlog).
    Returns what was sent."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from wattbus import codec, topics
    from wattbus import messages as m

    clients = []
    for site in sites:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{run}-{site}", protocol=mqtt.MQTTv5)
        client.username_pw_set(user, password)
        client.max_queued_messages_set(0)
        client.max_inflight_messages_set(100)
        client.connect("127.0.0.1", port)
        client.loop_start()
        clients.append((site, client))
    while not all(c.is_connected() for _, c in clients):
        time.sleep(0.05)
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    sent = failed = late = 0
    infos = []
    start = time.monotonic() + 0.5
    for tick in range(seconds):
        delay = start + tick - time.monotonic()
        if form == "burst":
            pass  # a backlog: as fast as the connections take it
        elif delay > 0:
            time.sleep(delay)
        else:
            late += 1
        stamp = base + timedelta(seconds=tick)  # synthetic: one distinct timestamp per device and tick
        for site, client in clients:
            for j in range(devices):
                device = f"dev{j}"
                reading = m.MeterReading(
                    device_id=device, timestamp=stamp, power_w=float((tick * 37 + j) % 5000) - 2500.0,
                    energy_import_wh=4e6 + tick, frequency_hz=50.0,
                    phases=[m.PhaseValues(phase=p, voltage_v=230.0, current_a=1.0 + p) for p in (1, 2, 3)])
                topic = topics.in_site(f"{run}-{site}", topics.device_reading("house-sim", device))
                info = client.publish(topic, codec.encode(reading), qos=1)
                if info.rc == mqtt.MQTT_ERR_SUCCESS:
                    sent += 1
                    infos.append(info)
                else:
                    failed += 1
    for info in infos:
        info.wait_for_publish(60)
    for _, client in clients:
        client.disconnect()
        client.loop_stop()
    return {"sent": sent, "failed": failed, "late_ticks": late}


def spawn_publishers(port: int, user: str, password: str, form: str, run: str,
                     seconds: int = SECONDS) -> list[subprocess.Popen[str]]:
    sites = [f"site-{i:04d}" for i in range(SITES)]
    procs = []
    for k in range(PUBLISHERS):
        args = json.dumps([port, user, password, sites[k::PUBLISHERS], DEVICES, seconds, form, run])
        procs.append(subprocess.Popen([sys.executable, __file__, "publish", args], stdout=subprocess.PIPE, text=True))
    return procs


def collect(procs: list[subprocess.Popen[str]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for proc in procs:
        out, _ = proc.communicate(timeout=SECONDS + 180)
        for key, value in json.loads(out.strip().splitlines()[-1]).items():
            total[key] = total.get(key, 0) + value
    return total


# --------------------------------------------------------------------------- measuring

def cpu_s(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended: counted as nothing
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def stored(vm_url: str, run: str) -> int:
    """Readings of this run's sites in VictoriaMetrics (one meter_power_w sample per reading), counted
    by the server (an export of every sample would compete with the writers for the CPU). Flushed
    first: samples VictoriaMetrics took but holds in memory are not counted yet, a lag that varied
    from 0 to 7 s between runs and made the catch-up times 4 s or 11 s for the same writers."""
    urllib.request.urlopen(f"{vm_url}/internal/force_flush", timeout=60).close()
    query = urllib.parse.urlencode({"query": f'sum(count_over_time(meter_power_w{{site=~"{run}.*"}}[6h]))'})
    with urllib.request.urlopen(f"{vm_url}/api/v1/query?{query}", timeout=60) as resp:
        result = json.loads(resp.read())["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


@dataclass
class Row:
    stage: str
    writers: int
    offered_per_s: float
    sent: int
    delivered: int
    loss: int
    drain_s: float
    writer_cpu_pct: float
    broker_cpu_pct: float


def broker_stage(broker: object) -> Row:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.subscribeoptions import SubscribeOptions

    from tests.support.servers import TEST_ADMIN, Mosquitto

    assert isinstance(broker, Mosquitto) and broker.proc is not None
    got = 0
    lock = threading.Lock()

    def on_message(_c: mqtt.Client, _u: object, _msg: mqtt.MQTTMessage) -> None:
        nonlocal got
        with lock:
            got += 1

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fleet-bare", protocol=mqtt.MQTTv5)
    sub.username_pw_set(TEST_ADMIN, broker.files.password(TEST_ADMIN))
    sub.on_message = on_message
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe("sites/+/wattbus/v1/device/+/+/reading", options=SubscribeOptions(qos=1))
    sub.loop_start()
    time.sleep(1)
    cpu0, t0 = cpu_s([broker.proc.pid]), time.monotonic()
    totals = collect(spawn_publishers(broker.port, TEST_ADMIN, broker.files.password(TEST_ADMIN), "paced", "a"))
    ended = time.monotonic()
    while got < totals["sent"] and time.monotonic() - ended < 60:
        time.sleep(0.1)
    drain = time.monotonic() - ended
    broker_cpu = (cpu_s([broker.proc.pid]) - cpu0) / (time.monotonic() - t0) * 100
    sub.loop_stop()
    sub.disconnect()
    return Row("(a) broker, bare subscriber", 0, SITES * DEVICES, totals["sent"], got, totals["sent"] - got,
               round(drain, 1), 0.0, round(broker_cpu, 1))


def start_writers(broker: Any, vm_url: str, tmp: Path, run: str, n: int, drain: str = "always"
                  ) -> list[subprocess.Popen[bytes]]:
    """drain "always": stopped, they remove their sessions; a kept session would queue a copy of every
    later stage's readings in the broker and slow those stages down (measured: catch-up 3 s -> 11 s)."""
    procs = []
    for i in range(n):
        conf = tmp / f"{run}-{i}.toml"
        conf.write_text(f'[influx-writer]\ninstance = "{run}-{i}"\nshare_group = "fleet-{run}"\n'
                        f'drain_on_stop = "{drain}"\n'
                        f'subscriptions = ["{SUBSCRIPTION}"]\n'
                        f'url = "{vm_url}"\napi = "v2"\nbucket = "fleet"\norg = "fleet"\n'
                        f'spool_dir = "{tmp}/{run}-{i}/spool"\ndead_letter_file = "{tmp}/{run}-{i}/dead.jsonl"\n')
        env = {**broker.env("influx-writer"), "PATH": "/usr/bin:/bin"}
        procs.append(subprocess.Popen([sys.executable, "-m", "wattbus_influx_writer", "--config", str(conf),
                                       "--log-level", "WARNING"], env=env))
    return procs


def stop_writers(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(30)


def warm_up(broker: Any, vm_url: str, run: str) -> None:
    """Publish until the writers store something: their (shared, persistent) subscriptions exist."""
    from wattbus import codec, topics
    from wattbus import messages as m

    from tests.support.servers import TEST_ADMIN

    deadline = time.monotonic() + 60
    warm = 0
    while stored(vm_url, f"{run}warm") < 1 and time.monotonic() < deadline:
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-u", TEST_ADMIN, "-P",
                        broker.files.password(TEST_ADMIN), "-q", "1", "-t",
                        topics.in_site(f"{run}warm", topics.device_reading("house-sim", "warm")), "-m",
                        codec.encode(m.MeterReading(device_id="warm", power_w=1.0, timestamp=datetime.now(UTC)
                                                    - timedelta(hours=2, seconds=warm))).decode()],
                       check=True, timeout=30)
        warm += 1
        time.sleep(1)
    time.sleep(2)  # the other writers' subscriptions settle too


def wait_stored(vm_url: str, prefix: str, want: int, timeout: float) -> int:
    began, count = time.monotonic(), 0
    while time.monotonic() - began < timeout:
        count = stored(vm_url, prefix)
        if count >= want:
            break
        time.sleep(0.5)
    return count


def writer_stage(broker: Any, vm_url: str, tmp: Path, n: int) -> Row:
    """n writers live while the fleet publishes at 1 Hz."""
    from tests.support.servers import TEST_ADMIN

    run = f"w{n}"
    procs = start_writers(broker, vm_url, tmp, run, n)
    warm_up(broker, vm_url, run)
    pids = [p.pid for p in procs]
    cpu0, bcpu0, t0 = cpu_s(pids), cpu_s([broker.proc.pid]), time.monotonic()
    totals = collect(spawn_publishers(broker.port, TEST_ADMIN, broker.files.password(TEST_ADMIN), "paced", run))
    ended = time.monotonic()
    count = wait_stored(vm_url, f"{run}-", totals["sent"], 120)
    drain = time.monotonic() - ended
    elapsed = time.monotonic() - t0
    writer_cpu = (cpu_s(pids) - cpu0) / elapsed * 100
    broker_cpu = (cpu_s([broker.proc.pid]) - bcpu0) / elapsed * 100
    stop_writers(procs)
    return Row(f"(b) {n} influx-writer(s) -> VictoriaMetrics", n, SITES * DEVICES, totals["sent"], count,
               totals["sent"] - count, round(drain, 1), round(writer_cpu, 1), round(broker_cpu, 1))


def catch_up_stage(broker: Any, vm_url: str, tmp: Path, n: int) -> Row:
    """The central writers were down while the fleet published BACKLOG_S seconds of readings; the
    broker kept them in the writers' persistent sessions. How fast do n writers catch up?"""
    from tests.support.servers import TEST_ADMIN

    run = f"c{n}"
    first = start_writers(broker, vm_url, tmp, run, n, drain="never")  # their sessions queue the backlog
    warm_up(broker, vm_url, run)  # every writer's persistent session and shared subscription exist
    stop_writers(first)  # ... and the writers are gone
    totals = collect(spawn_publishers(broker.port, TEST_ADMIN, broker.files.password(TEST_ADMIN), "burst", run,
                                      BACKLOG_S))
    procs = start_writers(broker, vm_url, tmp, run, n)
    t0 = time.monotonic()
    cpu0 = cpu_s([p.pid for p in procs])
    count = wait_stored(vm_url, f"{run}-", totals["sent"], 150)
    done = time.monotonic()
    writer_cpu = (cpu_s([p.pid for p in procs]) - cpu0) / (done - t0) * 100
    stop_writers(procs)
    # From the writers' start to the last reading stored: includes their start-up (~1-2 s, the
    # same for 1 or 4), which a backlog of BACKLOG_S seconds of the fleet makes small.
    rate = count / (done - t0)
    return Row(f"(c) catch-up, {n} writer(s)", n, round(rate), totals["sent"], count,
               totals["sent"] - count, round(done - t0, 1), round(writer_cpu, 1), 0.0)


def main() -> str:
    from wattbus.embedded import write_broker

    from tests.support.servers import ROOT as TEST_ROOT
    from tests.support.servers import TEST_ADMIN, Mosquitto, VictoriaMetrics

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="wattbus-fleet-") as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "mq").mkdir()
        (tmp / "vm").mkdir()
        broker, vm = Mosquitto(tmp / "mq"), VictoriaMetrics(tmp / "vm")
        # A central broker: the project ACL plus the shipped central ACL (influx-writer reads sites/#).
        broker.files = write_broker(TEST_ROOT, tmp / "mq", broker.port, anonymous=False, extra_users=(TEST_ADMIN,),
                                    extra_acl=f"\nuser {TEST_ADMIN}\ntopic readwrite #\n\n"
                                    + (TEST_ROOT / "mosquitto" / "acl.central").read_text(), persistence=False)
        broker.start()
        vm.start()
        try:
            rows.append(broker_stage(broker))
            for n in (1, 2, 4):
                rows.append(writer_stage(broker, vm.url, tmp, n))
            for n in (1, 2, 4):
                rows.append(catch_up_stage(broker, vm.url, tmp, n))
        finally:
            broker.stop()
            vm.stop()
    FIGURES.mkdir(parents=True, exist_ok=True)
    (FIGURES / "fleet.json").write_text(json.dumps({"sites": SITES, "devices": DEVICES, "seconds": SECONDS,
                                                    "rows": [asdict(r) for r in rows]}, indent=1))
    lines = [f"{SITES} sites x {DEVICES} devices at 1 Hz = {SITES * DEVICES:,} readings/s "
             f"({SITES * DEVICES * 4:,} points/s) for {SECONDS} s through one Mosquitto, QoS 1; loss = sent - "
             "delivered (a) or stored in the database (b); drain = from the last publish until all arrived; "
             "CPU in % of one core over the whole run; readings/s: offered (a, b) or achieved (c). Every stage "
             "publishes the bridged topics sites/<site>/wattbus/v1/...; the writers subscribe to "
             f"{SUBSCRIPTION} and tag each point with its site.", "",
             "| stage | readings/s | sent | delivered/stored | loss | drain (c: catch-up time) | writers CPU | "
             "broker CPU |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r.stage} | {r.offered_per_s:,.0f} | {r.sent:,} | {r.delivered:,} | {r.loss} | {r.drain_s:.1f} s | "
              f"{r.writer_cpu_pct:.1f} % | {r.broker_cpu_pct:.1f} % |" for r in rows]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "publish":
        print(json.dumps(publisher(*json.loads(sys.argv[2]))))
    else:
        main()
