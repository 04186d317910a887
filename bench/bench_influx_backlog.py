"""Backlog drain: the influx-writer against a bare paho subscriber of the same MQTT version.

A backlog of READINGS readings (MeterReadings with 3 phases, published by `mosquitto_pub` at QoS
1) waits in a persistent session's shared subscription while its consumer is away; then the
consumer starts and works it off. Both consumers use MQTT 5 with the same session settings (clean
start off, session expiry, receive maximum 20 000, `$share/<group>/...`, QoS 1):

  (a) a bare paho subscriber (`loop_forever`, paho's automatic PUBACK): it only counts;
  (b) the writer (paho with manual acknowledgements, decoding, line protocol, PUBACKs after the
      batch is stored): done when the last reading is in the database, and loss = readings
      missing from the database (counted exactly) afterwards.

Rate = readings / (consumer connected -> last reading received (a) or stored (b)); "from start"
counts from the process start instead. CPU = the consumer's CPU seconds per 10 000 readings
during the drain. A MQTT 3.1.1 paho row is a reference only (Mosquitto gives 3.1.1 clients
max_inflight_messages = 100 in flight; the writer needs MQTT 5's receive maximum to hold
acknowledgements for whole batches).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from wattbus import topics

from bench.bench_influx import cpu_s, payloads, pid, publish
from tests.influx_writer.helpers import victoria_count
from tests.support.servers import ROOT, TEST_ADMIN, Mosquitto, VictoriaMetrics

READINGS = int(os.environ.get("WATTBUS_BACKLOG_READINGS", "200000"))
RECEIVE_MAXIMUM = 20000
PUBLISH_PART = 10000
PAIRS = int(os.environ.get("WATTBUS_BACKLOG_PAIRS", "3"))
PUBLISHER = "house-sim"


def _client(client_id: str, version: int) -> mqtt.Client:
    if version == 5:
        return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311, clean_session=False)


def _connect(client: mqtt.Client, port: int, version: int) -> None:
    client.username_pw_set(TEST_ADMIN, os.environ["BENCH_PASSWORD"])
    if version == 5:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        client.connect("127.0.0.1", port, clean_start=False, properties=props)
    else:
        client.connect("127.0.0.1", port)


def bare_main(argv: list[str]) -> int:
    """(a): `--bare PORT TOPIC COUNT CLIENT_ID VERSION [--prepare]`. --prepare creates the session
    and subscription and leaves; otherwise: print the wall time at CONNACK, then the wall time of
    the last message and the count, after COUNT messages or 15 s without one (a loss)."""
    port, topic, count, client_id, version = int(argv[0]), argv[1], int(argv[2]), argv[3], int(argv[4])
    client = _client(client_id, version)
    got = 0
    last = time.time()

    def watchdog() -> None:
        while time.time() - last < 15:
            time.sleep(1)
        client.disconnect()

    def on_connect(c: mqtt.Client, _u: object, _f: object, _rc: object, _p: object) -> None:
        print(f"connected {time.time()}", flush=True)
        if "--prepare" in argv:
            c.subscribe(topic, qos=1)

    def on_subscribe(c: mqtt.Client, *_args: object) -> None:
        c.disconnect()

    def on_message(c: mqtt.Client, _u: object, _msg: mqtt.MQTTMessage) -> None:
        nonlocal got, last
        got += 1
        last = time.time()
        if got == count:
            c.disconnect()

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    _connect(client, port, version)
    threading.Thread(target=watchdog, daemon=True).start()
    client.loop_forever()
    print(f"done {last} {got}", flush=True)
    return 0


@dataclass
class Row:
    name: str
    rate: float
    rate_from_start: float
    cpu_per_10k: float
    loss: int | None = None
    broker_per_10k: float = 0.0
    database_per_10k: float = 0.0


def _backlog(broker: Mosquitto, device: str, data: list[bytes]) -> None:
    """Publish READINGS readings of `device` (the template's device id replaced) and wait for the broker."""
    body = [p.replace(b'"bench-template"', json.dumps(device).encode()) for p in data]
    # In parts: one mosquitto_pub fed much more than ~35 000 lines lost the rest (measured here).
    for start in range(0, len(body), PUBLISH_PART):
        assert publish(broker, device, body[start:start + PUBLISH_PART]).wait(600) == 0, "mosquitto_pub failed"


def _others(servers: tuple[Mosquitto, VictoriaMetrics]) -> tuple[float, float]:
    """CPU seconds the broker and the database have used so far."""
    return cpu_s(pid(servers[0])), cpu_s(pid(servers[1]))


def bare_run(servers: tuple[Mosquitto, VictoriaMetrics], data: list[bytes], version: int) -> Row:
    broker = servers[0]
    device = f"bare{version}-{time.monotonic_ns()}"
    topic = topics.shared(f"bench-{device}", topics.device_reading(PUBLISHER, device))
    args = [sys.executable, "-m", "bench.bench_influx_backlog", "--bare", str(broker.port), topic, str(READINGS),
            f"bench-{device}", str(version)]
    env = {**os.environ, "BENCH_PASSWORD": broker.files.password(TEST_ADMIN)}
    subprocess.run([*args, "--prepare"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=60)
    _backlog(broker, device, data)
    started = time.time()
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    connected = float(proc.stdout.readline().split()[1])
    cpu0, others0 = cpu_s(proc.pid), _others(servers)
    line = proc.stdout.readline()
    cpu, others = cpu_s(proc.pid) - cpu0, _others(servers)
    done, got = float(line.split()[1]), int(line.split()[2])
    proc.wait(30)
    name = f"(a) bare paho subscriber, MQTT {'5' if version == 5 else '3.1.1'}"
    return Row(name, got / (done - connected), got / (done - started), cpu * 10_000 / got, READINGS - got,
               (others[0] - others0[0]) * 10_000 / got, (others[1] - others0[1]) * 10_000 / got)


def _vm_has(vm: VictoriaMetrics, device: str) -> bool:
    urllib.request.urlopen(f"{vm.url}/internal/force_flush", timeout=10).close()
    query = urllib.parse.urlencode({"match[]": f'{{__name__="meter_power_w",device_id="{device}"}}', "start": "0"})
    with urllib.request.urlopen(f"{vm.url}/api/v1/export?{query}", timeout=10) as resp:
        return bool(resp.read().strip())


def _watch_log(proc: subprocess.Popen[str], connected: list[float]) -> None:
    """Read the writer's JSON log to its end (a full pipe would stall it); note when it connected."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if not connected and '"ingest session open"' in line:  # the CONNACK: the backlog flows from here
            connected.append(datetime.fromisoformat(json.loads(line)["ts"]).timestamp())


def writer_run(servers: tuple[Mosquitto, VictoriaMetrics], tmp: Path, data: list[bytes]) -> Row:
    broker, vm = servers
    tag = f"w{time.monotonic_ns()}"
    device, sentinel, warm = f"bench-{tag}", f"bench-{tag}-last", f"bench-{tag}-warm"
    conf = tmp / f"{tag}.toml"
    # Its own topics only: a session kept after the run must not queue the other runs' backlogs.
    filters = json.dumps([topics.device_reading(PUBLISHER, d) for d in (device, sentinel, warm)])
    conf.write_text(f'[influx-writer]\ninstance = "{tag}"\nshare_group = "bench-{tag}"\nurl = "{vm.url}"\n'
                    f'api = "v2"\nbucket = "bench"\norg = "home"\ndrain_on_stop = "never"\n'
                    f'subscriptions = {filters}\n'
                    f'receive_maximum = {RECEIVE_MAXIMUM}\nspool_dir = "{tmp}/{tag}/spool"\n'
                    f'dead_letter_file = "{tmp}/{tag}/dead.jsonl"\n')
    env = {**broker.env("influx-writer"), "PATH": "/usr/bin:/bin", "WATTBUS_LOG_FORMAT": "json"}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    command = [sys.executable, "-m", "wattbus_influx_writer", "--config", str(conf), "--log-level", "INFO"]
    # First run: the session and its subscription (a warm-up reading stored), then away.
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not _vm_has(vm, warm):
        assert time.monotonic() < deadline, "the writer stored no warm-up reading"
        publish(broker, warm, payloads(warm, 1)).wait(10)
        time.sleep(0.5)
    first.terminate()
    assert first.wait(30) == 0
    _backlog(broker, device, data)
    publish(broker, sentinel, payloads(sentinel, 1)).wait(10)  # after the backlog: stored last
    started = time.time()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    connected: list[float] = []
    reader = threading.Thread(target=_watch_log, args=(proc, connected), daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    while not connected:
        assert time.monotonic() < deadline and proc.poll() is None, "the writer did not connect"
        time.sleep(0.01)
    cpu0, others0 = cpu_s(proc.pid), _others(servers)
    deadline = time.monotonic() + 600
    while not _vm_has(vm, sentinel):
        assert time.monotonic() < deadline, "the backlog was not stored within 600 s"
        time.sleep(0.05)
    done = time.time()
    cpu, others = cpu_s(proc.pid) - cpu0, _others(servers)
    proc.terminate()
    proc.wait(30)
    reader.join(10)
    stored = victoria_count(vm, "meter_power_w", device_id=device)
    return Row("(b) influx-writer -> VictoriaMetrics (v2 API)", READINGS / (done - connected[0]),
               READINGS / (done - started), cpu * 10_000 / READINGS, READINGS - stored,
               (others[0] - others0[0]) * 10_000 / READINGS, (others[1] - others0[1]) * 10_000 / READINGS)


def main(argv: list[str] | None = None) -> str:
    rows: list[Row] = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "mq").mkdir()
        (tmp / "vm").mkdir()
        broker, vm = Mosquitto(tmp / "mq"), VictoriaMetrics(tmp / "vm")
        with broker.files.conf.open("a") as conf:  # room for the backlog and a warm-up on top
            conf.write(f"\nmax_queued_messages {READINGS * 2}\n")
        for server in (broker, vm):
            server.start()
        data = payloads("bench-template", READINGS)
        try:
            # Interleaved, so drift on a shared machine hits both consumers alike.
            for pair in range(1, PAIRS + 1):
                rows.append(bare_run((broker, vm), data, 5))
                rows.append(writer_run((broker, vm), tmp, data))
                rows[-2].name += f", pair {pair}"
                rows[-1].name += f", pair {pair}"
            rows.append(bare_run((broker, vm), data, 4))
        finally:
            for server in (broker, vm):
                server.stop()
    bare = [r.rate for r in rows if "MQTT 5" in r.name]
    writer = [r.rate for r in rows if r.name.startswith("(b)")]
    lines = [
        f"{READINGS:,} MeterReadings (3 phases, 4 points each) waiting in the consumer's persistent session; "
        f"MQTT 5, receive maximum {RECEIVE_MAXIMUM:,}, QoS 1, shared subscription. rate = readings / (connected -> "
        "last received (a) or stored (b)); from start = from the process start; loss = readings not received (a) "
        f"or missing in the database afterwards (b). Machine: {os.cpu_count()} cores, load average "
        f"{load_before:.1f} before and {os.getloadavg()[0]:.1f} after (other work shares it). CPU columns: CPU "
        "seconds per 10 000 readings during the drain of the consumer (all its threads), the broker and "
        "VictoriaMetrics (which only works for (b)).",
        "",
        "| run | readings/s | from start | loss | consumer CPU | broker CPU | database CPU |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(f"| {r.name} | {r.rate:,.0f} | {r.rate_from_start:,.0f} | {'' if r.loss is None else r.loss} | "
          f"{r.cpu_per_10k:.2f} | {r.broker_per_10k:.2f} | {r.database_per_10k:.2f} |" for r in rows),
        "",
        f"writer / bare MQTT 5 paho: {statistics.mean(writer) / statistics.mean(bare):.2f}x (means); per pair "
        + ", ".join(f"{w / b:.2f}x" for w, b in zip(writer, bare, strict=True)) + ".",
    ]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    if sys.argv[1:2] == ["--bare"]:
        sys.exit(bare_main(sys.argv[2:]))
    main(sys.argv[1:])
