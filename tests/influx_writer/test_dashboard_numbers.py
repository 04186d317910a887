"""Each dashboard panel's number equals what the bus carried: the writer process on the real broker
(ACL), a house's devices published with their metas, real InfluxDB 1.x, and the query text taken
from grafana/dashboards/*.json run for a known day.

The house: a grid meter and a sub-meter that writes after it (the last-writer trap), a Fronius-like
inverter with a lifetime total but no energy_today_wh, an ECU gateway whose two microinverters are
sub-devices (parent_id), a battery and a charger. The grid meter is named in [site]; PV,
battery and charger are found by kind, as http-api does.
"""

from __future__ import annotations

import itertools
import json
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Bus

from tests.influx_writer.helpers import PUBLISHER, StatusWatch, warm_up, write_config, writer_env
from tests.support.bus_helpers import started_bus, until
from tests.support.servers import ROOT, InfluxDB1, Mosquitto

DB = "dash_numbers"
# A whole UTC day two days back: the helpers' warm-up readings (two hours back) stay outside it.
DAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
STEPS = 25  # readings per device, 06:00 to 18:00 every 30 minutes
WINDOW = (f"time >= '{DAY.isoformat().replace('+00:00', 'Z')}' AND "
          f"time < '{(DAY + timedelta(days=1)).isoformat().replace('+00:00', 'Z')}'")

META_KINDS = {"dash-grid": "meter", "dash-sub": "meter", "dash-fronius": "inverter", "dash-ecu": "gateway",
              "dash-mi1": "inverter", "dash-mi2": "inverter", "dash-bat": "battery", "dash-wb": "charger"}
PARENTS = {"dash-mi1": "dash-ecu", "dash-mi2": "dash-ecu"}


def house(step: int) -> list[m.ReadingBase]:
    """The readings at one step; the sub-meter's comes after the grid meter's, one second later."""
    at = DAY + timedelta(hours=6, minutes=30 * step)
    sun = 1.0 - abs(step - 12) / 13  # a day's bell, 0.08 .. 1
    mi1, mi2 = round(300 * sun, 1), round(280 * sun, 1)
    fronius = round(4800 * sun, 1)
    return [
        m.MeterReading(device_id="dash-grid", timestamp=at, power_w=1490.0 - 60 * step,
                       energy_import_wh=2_000_000.0 + 400 * step, energy_export_wh=900_000.0 + 250 * step),
        m.MeterReading(device_id="dash-sub", timestamp=at + timedelta(seconds=1), power_w=650.0 + step,
                       energy_import_wh=50_000.0 + 80 * step),
        m.InverterReading(device_id="dash-fronius", timestamp=at, power_w=fronius,
                          energy_total_wh=31_000_000.0 + 1200.0 * step * sun + 50 * step, energy_today_wh=None),
        # the ECU's own total, read at another instant than its inverters: not their sum to the watt
        m.GatewayReading(device_id="dash-ecu", timestamp=at, power_w=mi1 + mi2 + 7.0,
                         energy_total_wh=7_000_000.0 + 140 * step),
        m.InverterReading(device_id="dash-mi1", timestamp=at, power_w=mi1, energy_total_wh=3_000_000.0 + 72 * step),
        m.InverterReading(device_id="dash-mi2", timestamp=at, power_w=mi2, energy_total_wh=4_000_000.0 + 68 * step),
        m.BatteryReading(device_id="dash-bat", timestamp=at, power_w=-800.0 + 40 * step, soc_pct=20.0 + 2 * step,
                         energy_charge_wh=10_000.0 + 300 * step, energy_discharge_wh=9_000.0 + 20 * step),
        m.ChargerReading(device_id="dash-wb", timestamp=at, power_w=3680.0 if 8 <= step <= 16 else 0.0,
                         energy_total_wh=123_000.0 + (900.0 * (min(step, 16) - 7) if step >= 8 else 0.0)),
    ]


READINGS = [r for step in range(STEPS) for r in house(step)]


def values(device: str, name: str) -> list[tuple[datetime, float]]:
    return [(r.timestamp, getattr(r, name)) for r in READINGS if r.device_id == device]


def last(device: str, name: str = "power_w") -> float:
    return values(device, name)[-1][1]


def spread(device: str, name: str) -> float:
    seen = [v for _t, v in values(device, name)]
    return max(seen) - min(seen)


def integral_wh(device: str) -> float:
    """Trapezoids between the points, in Wh: what InfluxQL's integral(power_w, 1h) is."""
    points = values(device, "power_w")
    return sum((a + b) / 2 * (tb - ta).total_seconds() / 3600 for (ta, a), (tb, b) in itertools.pairwise(points))


def hourly_mean(device: str, name: str = "power_w") -> dict[datetime, float]:
    buckets: dict[datetime, list[float]] = {}
    for t, v in values(device, name):
        buckets.setdefault(t.replace(minute=0, second=0), []).append(v)
    return {t: sum(vs) / len(vs) for t, vs in buckets.items()}


def panel_query(dashboard: str, title: str, ref: str = "A") -> str:
    doc = json.loads((ROOT / "grafana" / "dashboards" / f"{dashboard}.json").read_text())
    panel = next(p for p in doc["panels"] if p["title"] == title)
    query: str = next(t["query"] for t in panel["targets"] if t["refId"] == ref)
    return query


def run(server: InfluxDB1, dashboard: str, title: str, ref: str = "A") -> dict[str, dict[datetime, float]]:
    """The panel's query for the known day: {series (device_id tag or ''): {time: value}}, nulls left out."""
    query = (panel_query(dashboard, title, ref).replace("$timeFilter", WINDOW).replace("$__interval", "1h")
             .replace("$tz", "UTC"))
    url = f"{server.url}/query?" + urllib.parse.urlencode({"db": DB, "q": query, "epoch": "s"})
    with urllib.request.urlopen(url, timeout=10) as resp:
        result = json.load(resp)["results"][0]
    assert "error" not in result, f"{dashboard}:{title}:{ref}: {result['error']}"
    out: dict[str, dict[datetime, float]] = {}
    for series in result.get("series", []):
        rows = out.setdefault(series.get("tags", {}).get("device_id", ""), {})
        for t, v in series["values"]:
            if v is not None:
                rows[datetime.fromtimestamp(t, UTC)] = v
    return out


def one(result: dict[str, dict[datetime, float]]) -> float:
    assert list(result) == [""] and len(result[""]) == 1, result
    return next(iter(result[""].values()))


def publish_metas(bus: Bus, clear: bool = False) -> None:
    for device, kind in META_KINDS.items():
        meta = m.DeviceMeta(device_id=device, kind=kind, source=PUBLISHER, protocol="simulated",
                            parent_id=PARENTS.get(device))
        assert bus.publish(topics.device_meta(PUBLISHER, device), b"" if clear else meta, retain=True)


def approx(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(1.0, abs(b))


async def test_every_panel_number_matches_the_bus(broker: Mosquitto, influxdb: InfluxDB1, tmp_path: Path,
                                                  start_service: Callable[..., Any]) -> None:
    conf = write_config(tmp_path, "w", url=influxdb.url, api="v1", database=DB, create_database=True,
                        instance="dash")
    conf.write_text(conf.read_text() + f'[site]\ngrid = "{PUBLISHER}/dash-grid"\n')
    pub = await started_bus(broker, PUBLISHER, "dash")
    admin = await started_bus(broker, "test-admin", "watch-dash")
    watch = StatusWatch()
    watch.attach(admin)
    publish_metas(pub)  # retained, before the writer starts: it takes them in before the first reading
    try:
        writer = start_service("wattbus_influx_writer", "--config", str(conf), env=writer_env(broker))
        base = await warm_up(pub, watch, "dash")
        for reading in READINGS:
            assert pub.publish(topics.device_reading(PUBLISHER, reading.device_id), reading)
        await until(lambda: watch.counter("received", "dash") >= base + len(READINGS)
                    and watch.counter("written", "dash") >= watch.counter("points", "dash"), 30, "readings stored")
        check_panels(influxdb)
        assert watch.counter("dead_lettered", "dash") == 0
        assert writer.stop() == 0, writer.output()
    finally:
        publish_metas(pub, clear=True)  # the shared broker: other tests must not see this house
        await pub.stop()
        await admin.stop()


def check_panels(db: InfluxDB1) -> None:
    pv_top = ("dash-fronius", "dash-ecu")
    # power flow "now" (the day's last readings): the grid meter, not the sub-meter that wrote last
    assert one(run(db, "power-flow", "Grid (+ import / - export)")) == last("dash-grid")
    assert last("dash-sub") != last("dash-grid")
    assert approx(one(run(db, "power-flow", "PV production")), sum(last(d) for d in pv_top))
    assert one(run(db, "power-flow", "Battery (+ discharge / - charge)")) == last("dash-bat")
    assert one(run(db, "power-flow", "EV charging")) == last("dash-wb")
    hourly = {d: hourly_mean(d) for d in META_KINDS}
    pv_hourly = {t: sum(hourly[d][t] for d in pv_top) for t in hourly["dash-fronius"]}
    flow = run(db, "power-flow", "Power flow", "B")[""]
    assert flow.keys() == pv_hourly.keys() and all(approx(flow[t], pv_hourly[t]) for t in flow)
    assert run(db, "power-flow", "Power flow", "A")[""] == hourly["dash-grid"]
    assert run(db, "power-flow", "Sub-meters") == {"dash-sub": hourly["dash-sub"]}
    assert run(db, "pv", "PV production (PV producers summed)")[""].keys() == pv_hourly.keys()
    assert set(run(db, "pv", "PV production (PV producers summed)", "B")) == set(pv_top)
    assert set(run(db, "pv", "Inverters inside a gateway or inverter (sub-devices)")) == {"dash-mi1", "dash-mi2"}
    # per day: one bar for the known day
    per_day = {("Grid import per day", "A"): spread("dash-grid", "energy_import_wh"),
               ("Grid export per day", "A"): spread("dash-grid", "energy_export_wh"),
               ("PV yield per day", "A"): sum(spread(d, "energy_total_wh") for d in pv_top),
               ("Battery charge / discharge per day", "A"): spread("dash-bat", "energy_charge_wh"),
               ("Battery charge / discharge per day", "B"): spread("dash-bat", "energy_discharge_wh"),
               ("EV energy per day", "A"): spread("dash-wb", "energy_total_wh"),
               ("PV energy per day from power (check)", "A"): sum(integral_wh(d) for d in pv_top)}
    for (title, ref), expected in per_day.items():
        got = run(db, "energy-per-day", title, ref)
        assert got.keys() == {""} and list(got[""]) == [DAY], (title, got)
        assert approx(got[""][DAY], expected), (title, ref, got[""][DAY], expected)
    sub_day = {"dash-sub": {DAY: spread("dash-sub", "energy_import_wh")}}
    assert run(db, "energy-per-day", "Sub-meters per day") == sub_day
    # battery and EV: only the devices in those roles
    assert run(db, "battery", "State of charge") == {"dash-bat": hourly_mean("dash-bat", "soc_pct")}
    assert set(run(db, "ev-charging", "Charging power")) == {"dash-wb"}
    surplus = run(db, "ev-charging", "PV surplus vs charging", "A")[""]
    assert surplus == {t: -v for t, v in hourly["dash-grid"].items()}
    assert run(db, "ev-charging", "PV surplus vs charging", "B")[""] == hourly["dash-wb"]


def test_house_is_known_by_the_checks() -> None:
    """The expectations above are not vacuous: the sub-devices would change the PV sum, the Fronius
    reports no daily counter, and the sub-meter's import is not the grid's."""
    assert all(r.energy_today_wh is None for r in READINGS if isinstance(r, m.InverterReading))
    assert last("dash-mi1") + last("dash-mi2") > 0
    assert last("dash-fronius") + last("dash-mi1") + last("dash-mi2") != last("dash-fronius") + last("dash-ecu")
    assert spread("dash-sub", "energy_import_wh") != spread("dash-grid", "energy_import_wh")
