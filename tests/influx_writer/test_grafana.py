"""Every provisioned dashboard query runs on the real InfluxDB 1.x against points the writer made."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from wattbus_influx_writer import lineproto
from wattbus_influx_writer.config import Config
from wattbus_influx_writer.sink import Outcome, Sink

from tests.influx_writer.helpers import decode, influxql, recorded_readings
from tests.support.servers import ROOT, InfluxDB1

DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
QUERIES = [(f"{p.stem}:{panel['title']}:{t['refId']}", t["query"])
           for p in DASHBOARDS for panel in json.loads(p.read_text())["panels"] for t in panel["targets"]]
MEASUREMENTS = {plan.measurement: plan for plan in lineproto.PLANS.values()}


def test_every_dashboard_is_provisioned() -> None:
    names = {p.stem for p in DASHBOARDS}
    assert {"power-flow", "energy-per-day", "pv", "battery", "ev-charging"} <= names
    for path in DASHBOARDS:
        doc = json.loads(path.read_text())
        assert doc["uid"].startswith("wattbus-") and doc["panels"], path.name
    datasource = (ROOT / "grafana" / "provisioning" / "datasources" / "wattbus.yaml").read_text()
    assert "uid: wattbus-influxql" in datasource


@pytest.mark.parametrize(("where", "query"), QUERIES, ids=[q[0] for q in QUERIES])
async def test_dashboard_query_runs_on_influxdb(where: str, query: str, influxdb: InfluxDB1, tmp_path: Path) -> None:
    for field, measurement in re.findall(r'\w+\("(\w+)"(?:, \w+)?\)(?: AS "\w+")? FROM "(\w+)"', query):
        if measurement == lineproto.VIEW_MEASUREMENT:
            known = {"power_w", *lineproto.VIEW_TOTALS}
        else:
            plan = MEASUREMENTS[measurement.removesuffix("_phase")]
            known = {name for name, _key, _enc in plan.scalars} | {"voltage_v", "current_a", "power_w"}
        assert field in known, f"{where}: {measurement} has no field {field}"
    config = Config(url=influxdb.url, database="grafana", spool_dir=str(tmp_path / "s"),
                    dead_letter_file=str(tmp_path / "d"))
    async with Sink(config) as sink:
        assert (await sink.create_database()).outcome is Outcome.OK
        body = "".join(line for _name, payload in recorded_readings()
                       for line in lineproto.encode(decode(payload), "recorded"))
        assert (await sink.write(body.encode())).outcome is Outcome.OK
    concrete = query.replace("$timeFilter", "time > now() - 3650d").replace("$__interval", "1h").replace("$tz", "UTC")
    influxql(influxdb, concrete, "grafana")  # raises with the server's message on a bad query
