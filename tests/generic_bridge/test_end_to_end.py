"""Issue 28's "done when", end to end: an AI-on-the-edge water meter and a Tasmota SML head added by
config alone (the README's entries) reach the web UI (device list, in headless chromium), MeterHub's
JSON (`water_vto`), Home Assistant (a discovery entity HA's own code accepts) and InfluxDB (a stored
point). Every part is real: the simulators over HTTP, the services as processes, Mosquitto with the
shipped ACL, Debian's influxd, HA's discovery code in .venv-ha."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.clients.test_homeassistant import home_assistant_check
from tests.http_api.browser import Browser
from tests.http_api.test_browser import wait_js
from tests.influx_writer.helpers import influxql
from tests.support.bus_helpers import started_bus, subscriptions_active, until
from tests.support.servers import TEST_ADMIN, InfluxDB1, Mosquitto, SimulatorProcess, free_port, wait_port

# What the user writes (services/generic-bridge/README.md, "Config"), pointed at the simulators.
DEVICES = """
[[generic-bridge.devices]]
id = "e2e-water"
template = "ai-on-the-edge"
host = "127.0.0.1"
port = {water}
interval_s = 0.5

[[generic-bridge.devices]]
id = "e2e-utility-meter"
template = "tasmota-sml"
host = "127.0.0.1"
port = {head}
interval_s = 0.5
vars = {{ meter = "SML" }}
"""
SERVICES = """
[generic-bridge]
status_interval_s = 1
[http-api]
ports = [{api}]
instance = "e2e{api}"
trusted_networks = ["127.0.0.1/32"]
history_file = "{run}/history.sqlite3"
[site]
grid = "generic-bridge/e2e-utility-meter"  # the Tasmota head reads the grid meter
[integrations]
status_interval_s = 1
republish_delay_max_s = 0
[influx-writer]
url = "{influx}"
database = "e2e"
create_database = true
instance = "e2e"
share_group = "iw-e2e"
flush_interval_s = 0.2
spool_dir = "{run}/spool"
dead_letter_file = "{run}/dead-letter.jsonl"
"""


def http_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


async def test_water_meter_and_sml_head_reach_ui_meterhub_home_assistant_and_influxdb(
        broker: Mosquitto, influxdb: InfluxDB1, tmp_path: Path, start_service: Callable[..., Any]) -> None:
    water = SimulatorProcess(tmp_path / "water.log", "generic_http", "--device", "ai-on-the-edge")
    head = SimulatorProcess(tmp_path / "head.log", "generic_http", "--device", "tasmota-sml")
    api_port = free_port()
    config = tmp_path / "wattbus.toml"
    config.write_text(SERVICES.format(api=api_port, run=tmp_path, influx=influxdb.url)
                      + DEVICES.format(water=water.port, head=head.port))
    observer = await started_bus(broker, TEST_ADMIN, "e2e")  # stands in for Home Assistant
    discovery: dict[str, dict[str, Any]] = {}
    observer.subscribe("homeassistant/device/+/config", bytes,
                       lambda msg: discovery.update({msg.topic: json.loads(msg.payload)} if msg.payload else {}))
    await subscriptions_active(observer)
    services = [start_service(f"wattbus_{name}", "--config", str(config), env=broker.env(name.replace("_", "-")))
                for name in ("generic_bridge", "http_api", "integrations", "influx_writer")]
    browser = Browser(tmp_path / "chromium-profile")
    try:
        wait_port(api_port, 30)
        api = f"http://127.0.0.1:{api_port}"

        def listed() -> dict[str, Any]:
            return {d["ref"]: d for d in http_json(f"{api}/api/v1/devices")}
        refs = ("generic-bridge/e2e-water", "generic-bridge/e2e-utility-meter")
        await until(lambda: all((listed().get(r) or {}).get("reading") for r in refs), 20,
                    f"both devices in the device list: {services[0].output()[-2000:]}")
        devices = listed()
        water_m3 = devices[refs[0]]["reading"]["water_m3"]
        assert devices[refs[0]]["meta"]["kind"] == "meter" and water_m3 == pytest.approx(1130.154, abs=0.5)
        meter = devices[refs[1]]["reading"]
        assert meter["power_w"] == 513 and meter["energy_import_wh"] == pytest.approx(3_985_744, abs=50)
        assert meter["water_m3"] is None  # an electricity meter: no volume, null not 0

        # MeterHub's JSON: the water meter in litres (the simulated meter runs on at 4.2 l/min).
        doc = http_json(f"{api}/")
        assert isinstance(doc["water_vto"], int) and abs(doc["water_vto"] - water_m3 * 1000) < 10, doc

        # The web UI lists both: the water meter with its m³, the head with its power.
        await browser.connect()
        await browser.send("Page.navigate", url=f"{api}/ui/")
        row = "document.querySelector('#devices li[data-ref=\"{}\"]')"
        await wait_js(browser, f"{row.format(refs[0])}?.querySelector('[data-field=water_m3]') != null", "water in UI")
        await wait_js(browser, f"{row.format(refs[1])}?.textContent.includes('513 W')", "the head's power in UI")
        shown = await browser.eval(f"{row.format(refs[0])}.querySelector('[data-field=water_m3]').textContent")
        assert shown.startswith("water 1130.") and shown.endswith(" m³"), shown

        # Home Assistant: a water sensor for the Energy dashboard, accepted by HA's own discovery code.
        def water_config() -> tuple[str, dict[str, Any]] | None:
            return next(((t, d) for t, d in discovery.items() if "e2e-water" in d["dev"]["identifiers"][0]), None)
        await until(lambda: water_config() is not None, 20, f"HA discovery for e2e-water: {sorted(discovery)}")
        found = water_config()
        assert found is not None
        topic, doc = found
        sensor = doc["cmps"]["water_m3"]
        assert (sensor["p"], sensor["device_class"], sensor["state_class"], sensor["unit_of_measurement"]) == (
            "sensor", "water", "total_increasing", "m³")
        report = await asyncio.to_thread(home_assistant_check,
                                         {"water": [{"topic": topic, "payload": json.dumps(doc)}]})
        assert report["cases"]["water"]["problems"] == []
        entities = report["cases"]["water"]["entities"]
        assert any(e["unique_id"].endswith("_water_m3") for e in entities.values()), entities

        # InfluxDB: the water total stored as a field of the device's meter point.
        query = 'SELECT last("water_m3") FROM "meter" WHERE device_id = \'e2e-water\''
        await until(lambda: bool(influxql(influxdb, query, "e2e")), 20,
                    f"a stored water_m3 point: {services[3].output()[-2000:]}")
        stored = influxql(influxdb, query, "e2e")[0][1]
        assert stored == pytest.approx(water_m3, abs=0.5)
        for proc in services:
            assert proc.proc.poll() is None, proc.output()[-2000:]
    finally:
        await browser.close()
        await observer.stop()
        for sim in (water, head):
            sim.stop()
