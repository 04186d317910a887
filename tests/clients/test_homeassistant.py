"""Home Assistant's own code checks every discovery config wattbus sends for the demo's devices.

The demo's bus (data/ha_demo_bus.jsonl: metas, availabilities, loadpoint states and one reading
per device, recorded from `make run` by record_ha_demo.py) is replayed to a real Mosquitto with
the shipped ACL; the real integrations service turns it into discovery configs; those go through
HA's MQTT discovery code and each platform's schema (ha_discovery_check.py) in .venv-ha, HA's own
Python 3.13 venv that `make test` builds from homeassistant.txt.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from wattbus import codec, topics
from wattbus import messages as m
from wattbus.bus import Message
from wattbus_integrations.hass_discovery import HassDiscoverySettings, config_topic, device_config, messages, object_id

from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
HA_PYTHON = ROOT / ".venv-ha" / "bin" / "python"
CHECKER = HERE / "ha_discovery_check.py"
BUS = [json.loads(line) for line in (HERE / "data" / "ha_demo_bus.jsonl").read_text().splitlines()]
PREFIX = "homeassistant"


def pinned_version() -> str:
    pins = dict(line.split("==", 1) for line in (HERE / "homeassistant.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    return pins["homeassistant"]


def home_assistant_check(cases: dict[str, list[dict[str, str]]]) -> dict[str, Any]:
    if not HA_PYTHON.exists():
        pytest.fail(f"{HA_PYTHON} is missing: `make .venv-ha/.installed` builds it (make test does)")
    done = subprocess.run([str(HA_PYTHON), str(CHECKER)], input=json.dumps({"prefix": PREFIX, "cases": cases}),
                          capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout)
    return report


async def replayed_configs(broker: Mosquitto, tmp_path: Path, start_service: Callable[..., Any]) -> dict[str, str]:
    """The retained discovery configs the integrations service publishes for the recorded bus."""
    devices = {msg["topic"].rsplit("/", 1)[0] for msg in BUS if msg["topic"].endswith("/meta")}
    loadpoints = {msg["topic"] for msg in BUS if msg["topic"].startswith("wattbus/v1/loadpoint/")}
    admin = await started_bus(broker, "test-admin", "ha-replay")
    configs: dict[str, str] = {}

    def seen(msg: Message[bytes]) -> None:
        configs[msg.topic] = msg.payload.decode()

    try:
        admin.subscribe(f"{PREFIX}/#", bytes, seen)
        status: list[bytes] = []
        admin.subscribe(topics.service_status("integrations", "main"), bytes, lambda msg: status.append(msg.payload))
        for msg in BUS:
            if msg["retain"]:
                admin.publish(msg["topic"], msg["payload"].encode(), retain=True)
        config = tmp_path / "wattbus.toml"
        config.write_text("[integrations]\nstatus_interval_s = 1\nrepublish_delay_max_s = 0\nstale_grace_s = 1\n")
        proc = start_service("wattbus_integrations", "--config", str(config), env=broker.env("integrations"))
        await until(lambda: any(codec.decode(s, m.ServiceStatus).counters.get("messages_in", 0) for s in status),
                    30, "the integrations service's status")
        for msg in BUS:
            if not msg["retain"]:
                admin.publish(msg["topic"], msg["payload"].encode())
        wanted = len(devices) + len(loadpoints)
        await until(lambda: len([p for t, p in configs.items() if p and t.endswith("/config")]) >= wanted, 30,
                    f"discovery configs for all {wanted} devices and loadpoints")
        assert proc.proc.poll() is None, proc.output()
        return {t: p for t, p in configs.items() if p and t.startswith(f"{PREFIX}/device/")}
    finally:
        await admin.stop()


def per_entity(configs: dict[str, str]) -> list[dict[str, str]]:
    """The same configs in the per-entity form (discovery_per_entity = true), as the service splits them."""
    settings = HassDiscoverySettings(prefix=PREFIX, per_entity=True)
    return [{"topic": topic, "payload": json.dumps(doc)} for device_topic, payload in sorted(configs.items())
            for topic, doc in messages(settings, device_topic.split("/")[2], json.loads(payload)).items()]


def volume_meters() -> list[dict[str, str]]:
    """Configs for a water meter (AI-on-the-edge) and a gas meter (a Tasmota SML head), both on the
    generic-bridge, which the recorded demo has none of: the m³ totals of HA's Energy dashboard."""
    settings = HassDiscoverySettings(prefix=PREFIX)
    out = []
    for device_id, model, fields in (("water", "AI-on-the-edge", {"water_m3"}),
                                     ("gas", "Tasmota SML", {"gas_m3"})):
        meta = m.DeviceMeta(device_id=device_id, kind="meter", source="generic-bridge", protocol="http", model=model)
        config = device_config(settings, meta, "meter", fields)
        out.append({"topic": config_topic(settings, object_id(device_id)), "payload": codec.encode(config).decode()})
    return out


def vehicle() -> list[dict[str, str]]:
    """A car as TeslaMate reports it through the generic-bridge (not in the recorded demo): SoC,
    range, charge limit, plug and charging state, capacity."""
    settings = HassDiscoverySettings(prefix=PREFIX)
    meta = m.DeviceMeta(device_id="tesla", kind="vehicle", source="generic-bridge", protocol="mqtt",
                        manufacturer="Tesla", model="via TeslaMate")
    fields = set(m.VehicleReading.__struct_fields__) - {"device_id", "timestamp", "extra"}
    config = device_config(settings, meta, "vehicle", fields)
    return [{"topic": config_topic(settings, object_id("tesla")), "payload": codec.encode(config).decode()}]


def broken(configs: dict[str, str]) -> list[dict[str, str]]:
    """The demo's configs with three faults HA's code must catch (the check is not vacuous)."""
    docs = {t: json.loads(p) for t, p in configs.items()}
    charger_topic = next(t for t, d in docs.items() if "charge_current" in d["cmps"])
    meter_topic = next(t for t, d in docs.items() if "energy_import_wh" in d["cmps"] and t != charger_topic)
    docs[meter_topic]["dev"]["name"] = docs[charger_topic]["dev"]["name"]  # two devices, one name
    docs[meter_topic]["cmps"]["energy_import_wh"]["unit_of_measurement"] = "A"  # no energy unit
    docs[charger_topic]["cmps"]["power_w"]["state_tpoic"] = "typo"  # HA drops unknown options
    return [{"topic": t, "payload": json.dumps(d)} for t, d in docs.items()]


async def test_home_assistant_accepts_every_demo_config_with_distinct_entity_ids(
        private_broker: Mosquitto, tmp_path: Path, start_service: Callable[..., Any]) -> None:
    configs = await replayed_configs(private_broker, tmp_path, start_service)
    demo = [{"topic": t, "payload": p} for t, p in sorted(configs.items())]
    report = home_assistant_check({"demo": demo, "per_entity": per_entity(configs), "broken": broken(configs),
                                   "volumes": volume_meters(), "vehicle": vehicle()})
    assert report["ha_version"] == pinned_version()

    result = report["cases"]["demo"]
    assert result["problems"] == []
    docs = [json.loads(p) for p in configs.values()]
    components = sum(len(d["cmps"]) for d in docs)
    # Every component became an entity under the id HA derives from its names: none got _2.
    assert len(result["entities"]) == components > 300
    names = [d["dev"]["name"] for d in docs]
    assert len(set(names)) == len(names), sorted(n for n in names if names.count(n) > 1)
    parents = {msg["topic"].split("/")[-2]: json.loads(msg["payload"]).get("parent_id")
               for msg in BUS if msg["topic"].endswith("/meta")}
    for doc in docs:  # a sub-device is named after its parent's name, not the parent's raw id
        parent = parents.get(doc["dev"]["identifiers"][0].removeprefix("wattbus-"))
        assert parent is None or parent not in doc["dev"]["name"], doc["dev"]["name"]

    # The per-entity form (HA before 2024.11) passes too and gives every entity the same id.
    assert report["cases"]["per_entity"]["problems"] == []
    assert set(report["cases"]["per_entity"]["entities"]) == set(result["entities"])

    # The charge current number offers what the bridge accepts (its configured 16 A), not 6-32 A.
    readings = {codec.decode_reading(msg["payload"]).device_id: codec.decode_reading(msg["payload"])
                for msg in BUS if msg["topic"].endswith("/reading")}
    numbers = {e["unique_id"]: e for e in result["entities"].values() if e["unique_id"].endswith("_charge_current")}
    chargers = [r for r in readings.values() if isinstance(r, m.ChargerReading)]
    assert chargers and len(numbers) == len(chargers)
    for reading in chargers:
        entity = numbers[f"wattbus-{reading.device_id}_charge_current"]
        assert (entity["min"], entity["max"]) == (reading.extra["limit_min_current_a"],
                                                  reading.extra["limit_max_current_a"]) == (6, 16)

    # Water and gas totals (m³), absent from the demo, are sensors HA takes without a complaint.
    volumes = report["cases"]["volumes"]
    assert volumes["problems"] == []
    assert {e["unique_id"] for e in volumes["entities"].values()} >= {"wattbus-water_water_m3",
                                                                      "wattbus-gas_gas_m3"}

    # A vehicle's values (issue 27) are entities HA takes, the loadpoint shows its SoC and plan.
    cars = report["cases"]["vehicle"]
    assert cars["problems"] == []
    assert {e["unique_id"] for e in cars["entities"].values()} == {
        f"wattbus-tesla_{f}" for f in ("soc_pct", "range_m", "capacity_wh", "limit_soc_pct", "connected",
                                       "charge_state")}
    assert {"wattbus-loadpoint-garage_vehicle_soc_pct", "wattbus-loadpoint-garage_plan_status"} <= {
        e["unique_id"] for e in result["entities"].values()}
    # Its charge plan is set from HA: two numbers and a text (MQTT discovery has no time entity).
    made = {(e["unique_id"], e["platform"]) for e in result["entities"].values()}
    assert {(f"wattbus-loadpoint-garage_{key}", platform) for key, platform in (
        ("plan_soc", "number"), ("plan_time", "text"), ("plan_min_soc", "number"))} <= made

    problems = "\n".join(report["cases"]["broken"]["problems"])
    assert "(HA would make it _2)" in problems
    assert "'energy_import_wh': HA warns: The unit of measurement `A` is not valid" in problems
    assert "HA ignores sensor options ['state_tpoic']" in problems
