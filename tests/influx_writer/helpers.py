"""Shared pieces of the influx-writer tests: readings, config files, status, read-back queries."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from wattbus import codec, topics
from wattbus import messages as m
from wattbus.bus import Bus, Message

from tests.support.servers import InfluxDB1, Mosquitto, VictoriaMetrics

PUBLISHER = "house-sim"  # may publish readings under wattbus/v1/device/house-sim/#
DATA = Path(__file__).parent / "data"
# Recent enough for VictoriaMetrics' default one-month retention (older samples are dropped silently).
BASE_TIME = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)


def meter_readings(count: int, device: str = "meter-1", start: int = 0) -> list[m.MeterReading]:
    """Distinct timestamps (1 ms apart) so every reading is its own point in the database."""
    return [m.MeterReading(device_id=device, timestamp=BASE_TIME + timedelta(milliseconds=i),
                           power_w=float(i % 5000) - 2500.0, energy_import_wh=1e6 + i)
            for i in range(start, start + count)]


async def warm_up(pub: Bus, watch: StatusWatch, instance: str, timeout: float = 30.0) -> int:
    """Publish warm-up readings until the writer's subscription is live (the broker drops what is
    published before a first subscription); returns the writer's `received` count by then."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    i = 0
    while watch.counter("received", instance) == 0:
        assert loop.time() < deadline, f"writer {instance} received nothing within {timeout} s"
        reading = m.MeterReading(device_id=f"warmup-{instance}", timestamp=BASE_TIME - timedelta(seconds=i),
                                 power_w=1.0)
        pub.publish(topics.device_reading(PUBLISHER, reading.device_id), reading)
        i += 1
        await asyncio.sleep(0.3)
    await asyncio.sleep(1.5)  # stragglers of the warm-up reach the next status heartbeat
    received = watch.counter("received", instance)
    while watch.counter("received", instance) != received or watch.counter("written", instance) < received:
        received = watch.counter("received", instance)
        await asyncio.sleep(1.2)
    return received


def publish(bus: Bus, readings: list[m.MeterReading]) -> None:
    for reading in readings:
        assert bus.publish(topics.device_reading(PUBLISHER, reading.device_id), reading)


def write_config(tmp: Path, name: str, **section: Any) -> Path:
    """A TOML config with an [influx-writer] section; spool and dead letters under tmp/name."""
    values: dict[str, Any] = {"status_interval_s": 1, "flush_interval_s": 0.2, "retry_min_s": 0.5,
                              "retry_max_s": 2, "spool_fsync": False,
                              "spool_dir": str(tmp / name / "spool"),
                              "dead_letter_file": str(tmp / name / "dead-letter.jsonl")}
    values.update(section)
    # A stopped writer's persistent session stays in its share group and keeps taking its turn of
    # the messages (queued for its return), so tests on the shared broker use a group each.
    values.setdefault("share_group", f"iw-{values.get('instance', name)}")
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in values.items())
    path = tmp / f"{name}.toml"
    path.write_text(f"[influx-writer]\n{body}\n")
    return path


class StatusWatch:
    """The writer instances' retained ServiceStatus heartbeats, by instance.

    `only`: the instances a test started; the retained statuses of earlier tests' writers (whose
    `written` counts points, which may be more than readings) stay out of its sums."""

    def __init__(self, only: set[str] | None = None) -> None:
        self.latest: dict[str, m.ServiceStatus] = {}
        self.only = only

    def attach(self, bus: Bus) -> None:
        bus.subscribe(status_filter(), m.ServiceStatus, self._seen)

    def _seen(self, msg: Message[m.ServiceStatus]) -> None:
        if self.only is None or msg.payload.instance in self.only:
            self.latest[msg.payload.instance] = msg.payload

    def counter(self, name: str, instance: str | None = None) -> int:
        statuses = [s for i, s in self.latest.items() if instance in (None, i)]
        return sum(s.counters.get(name, 0) for s in statuses)


def status_filter() -> str:
    return f"{topics.PREFIX}/service/influx-writer/+/status"


def influxql(server: InfluxDB1, query: str, db: str) -> list[list[Any]]:
    url = f"{server.url}/query?" + urllib.parse.urlencode({"db": db, "q": query, "epoch": "ns"})
    with urllib.request.urlopen(url, timeout=10) as resp:
        doc = json.load(resp)
    result = doc["results"][0]
    if "error" in result:
        raise AssertionError(f"InfluxQL {query!r}: {result['error']}")
    return [row for series in result.get("series", []) for row in series["values"]]


def influx_count(server: InfluxDB1, db: str, device: str, field: str = "power_w", measurement: str = "meter") -> int:
    try:
        rows = influxql(server, f'SELECT count("{field}") FROM "{measurement}" WHERE device_id = \'{device}\'', db)
    except OSError:
        return -1
    return int(rows[0][1]) if rows else 0


def victoria_export(server: VictoriaMetrics, metric: str) -> list[dict[str, Any]]:
    urllib.request.urlopen(f"{server.url}/internal/force_flush", timeout=10).close()
    query = urllib.parse.urlencode({"match[]": f'{{__name__="{metric}"}}', "start": "0"})
    with urllib.request.urlopen(f"{server.url}/api/v1/export?{query}", timeout=10) as resp:
        return [json.loads(line) for line in resp.read().splitlines() if line.strip()]


def victoria_count(server: VictoriaMetrics, metric: str, **labels: str) -> int:
    series = [s for s in victoria_export(server, metric)
              if all(s["metric"].get(k) == v for k, v in labels.items())]
    return sum(len(s["timestamps"]) for s in series)


def recorded_readings() -> list[tuple[str, bytes]]:
    """(name, payload) for every recorded reading payload under data/readings/."""
    return [(p.stem, p.read_bytes()) for p in sorted((DATA / "readings").glob("*.json"))]


def decode(payload: bytes) -> m.Reading:
    return codec.decode_reading(payload)


def writer_env(broker: Mosquitto) -> dict[str, str]:
    return broker.env("influx-writer")
