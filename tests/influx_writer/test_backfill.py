"""`wattbus-influx-writer backfill-roles` on Debian's real influxd: points stored by a writer without
role tags get their `site_role` twins from the site's roles today (`[site]`) and the retained device
metas on the bus (a gateway's inverters are its parts, not PV of their own); a dry run writes
nothing, a second run changes nothing."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from wattbus import messages as m
from wattbus import topics
from wattbus_influx_writer.lineproto import LineEncoder

from tests.influx_writer.helpers import influxql, writer_env
from tests.support.bus_helpers import started_bus, until
from tests.support.servers import InfluxDB1, Mosquitto

DB = "backfill27"
SRC = "house-sim"
DAY1 = (datetime.now(UTC) - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
STEPS = 2 * 24 * 6  # two UTC days, a reading every 10 minutes
# device id -> (kind, parent): the grid meter, a sub-meter, a gateway with two micro inverters, a battery
DEVICES = {"bf-meter": ("meter", None), "bf-sub": ("meter", "bf-meter"), "bf-ecu": ("gateway", None),
           "bf-inv1": ("inverter", "bf-ecu"), "bf-inv2": ("inverter", "bf-ecu"), "bf-battery": ("battery", None)}
COUNTED = {"bf-meter": "grid", "bf-ecu": "pv", "bf-battery": "battery"}


def old_points() -> str:
    """What a writer before role tags stored: no role, no parent, no site_role."""
    encoder = LineEncoder(roles=None)
    lines: list[str] = []
    for i in range(STEPS):
        at = DAY1 + timedelta(minutes=10 * i)
        lines += encoder.encode(m.MeterReading(device_id="bf-meter", timestamp=at, power_w=500.0,
                                               energy_import_wh=1000.0 + 100.0 * i, energy_export_wh=50.0), SRC)
        lines += encoder.encode(m.MeterReading(device_id="bf-sub", timestamp=at, power_w=80.0,
                                               energy_import_wh=10.0 * i), SRC)
        lines += encoder.encode(m.GatewayReading(device_id="bf-ecu", timestamp=at, power_w=600.0,
                                                 energy_total_wh=5000.0 + 100.0 * i), SRC)
        for inv in ("bf-inv1", "bf-inv2"):
            lines += encoder.encode(m.InverterReading(device_id=inv, timestamp=at, power_w=300.0,
                                                      energy_total_wh=2500.0 + 50.0 * i), SRC)
        lines += encoder.encode(m.BatteryReading(device_id="bf-battery", timestamp=at, power_w=-200.0,
                                                 soc_pct=50.0), SRC)
    return "".join(lines)


async def backfill(conf: Path, broker: Mosquitto, *extra: str) -> subprocess.CompletedProcess[str]:
    day1 = DAY1.date()
    return await asyncio.to_thread(  # the test's bus keeps running meanwhile
        subprocess.run, [sys.executable, "-m", "wattbus_influx_writer", "--config", str(conf), "backfill-roles",
                           "--since", day1.isoformat(), "--until", (day1 + timedelta(days=2)).isoformat(), *extra],
        env={**os.environ, **writer_env(broker)}, capture_output=True, text=True, timeout=120)


def site_role_counts(server: InfluxDB1) -> dict[tuple[str, str], int]:
    out = {}
    url = f"{server.url}/query?db={DB}&q=" + urllib.request.quote(
        'SELECT count("power_w") FROM "site_role" GROUP BY "device_id", "role"')
    with urllib.request.urlopen(url, timeout=10) as resp:
        doc = json.load(resp)
    for series in doc["results"][0].get("series", []):
        out[(series["tags"]["device_id"], series["tags"]["role"])] = int(series["values"][0][1])
    return out


async def test_backfill_roles(private_broker: Mosquitto, influxdb: InfluxDB1, tmp_path: Path) -> None:
    influxql(influxdb, f'CREATE DATABASE "{DB}"', DB)
    body = old_points().encode()
    request = urllib.request.Request(f"{influxdb.url}/write?db={DB}", data=body, method="POST")
    urllib.request.urlopen(request, timeout=30).close()
    conf = tmp_path / "wattbus.toml"
    conf.write_text(f'[influx-writer]\nurl = "{influxdb.url}"\ndatabase = "{DB}"\n'
                    f'[site]\ngrid = "{SRC}/bf-meter"\n')  # PV and battery found by kind
    bus = await started_bus(private_broker, SRC)
    try:
        for device_id, (kind, parent) in DEVICES.items():
            bus.publish(topics.device_meta(SRC, device_id), m.DeviceMeta(
                device_id=device_id, kind=kind, source=SRC, protocol="simulated", parent_id=parent), retain=True)
        seen: set[str] = set()
        watcher = await started_bus(private_broker, "influx-writer", "watch")
        watcher.subscribe(topics.ALL_META, bytes, lambda msg: seen.add(msg.topic))
        await until(lambda: len(seen) >= len(DEVICES), 10, "the retained metas on the broker")
        await watcher.stop()

        dry = await backfill(conf, private_broker, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        day_lines = [line for line in dry.stdout.splitlines() if line.startswith(str(DAY1.year))]
        # per day: 6 devices' 144 points read, the 3 counted devices' 144 each to write
        assert day_lines == [f"{(DAY1 + timedelta(days=n)).date()}: 864 points without roles, 432 site_role points "
                             "to write (dry run)" for n in (0, 1)], dry.stdout
        assert site_role_counts(influxdb) == {}, "a dry run wrote points"

        first = await backfill(conf, private_broker)
        assert first.returncode == 0, first.stderr
        print(first.stdout.strip().splitlines()[-1])
        counts = site_role_counts(influxdb)
        assert counts == {(device, role): STEPS for device, role in COUNTED.items()}, counts
        # the sub-meter and the gateway's micro inverters have none: the dashboards do not count them twice
        second = await backfill(conf, private_broker)
        assert second.returncode == 0 and site_role_counts(influxdb) == counts, second.stdout
        day2 = DAY1 + timedelta(days=1)
        span = f"time >= '{day2.isoformat()}' AND time < '{(day2 + timedelta(days=1)).isoformat()}'"
        rows = influxql(influxdb, f'SELECT spread("energy_import_wh") FROM "site_role" WHERE "role" = \'grid\' '
                                  f"AND {span}", DB)
        assert rows[0][1] == 100.0 * (6 * 24 - 1), rows  # a day's import read from the backfilled points
        assert second.stdout.splitlines()[-1].startswith(f"done: {STEPS * len(DEVICES)} points without roles read, "
                                                         f"{STEPS * len(COUNTED)} site_role points written")
    finally:
        for device_id in DEVICES:
            bus.publish(topics.device_meta(SRC, device_id), b"", retain=True)
        await bus.stop()

    refused = subprocess.run([sys.executable, "-m", "wattbus_influx_writer", "--config", str(conf), "backfill-roles",
                              "--since", "2026-13-01"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "2026-13-01" in refused.stderr, refused.stderr
