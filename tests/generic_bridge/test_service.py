"""The generic-bridge process against the simulators on the real broker (shipped ACL): readings in SI
units, a selector that stops matching counted and shown (the process keeps running), a relay switched
with its interval limit and read back, MeterHub's water_vto, and a bad description refused at start."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Bus, Message

from tests.conftest import ServiceProcess
from tests.support.bus_helpers import started_bus, subscriptions_active, until
from tests.support.servers import TEST_ADMIN, Mosquitto, SimulatorProcess, free_port, wait_port

SOURCE = "generic-bridge"
DATA = Path(__file__).parent / "data"


@dataclass
class Stack:
    water: SimulatorProcess
    head: SimulatorProcess
    relay: SimulatorProcess
    sdm: SimulatorProcess
    bridge: ServiceProcess
    api_port: int
    config: Path


@pytest.fixture(scope="module")
def stack(broker: Mosquitto, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    run = tmp_path_factory.mktemp("generic-bridge")
    sims = [SimulatorProcess(run / f"{name}.log", "generic_http", "--device", name)
            for name in ("ai-on-the-edge", "tasmota-sml", "relay")]
    sims.append(SimulatorProcess(run / "sdm.log", "sunspec", "--profile", "sdm630"))
    water, head, relay, sdm = sims
    api_port = free_port()
    config = run / "wattbus.toml"
    polled = {"water": ("ai-on-the-edge", water), "utility-meter": ("tasmota-sml", head),
              "pump": ("shelly-relay-http", relay), "sdm": ("sdm630-modbus", sdm)}
    entries = [f'[[generic-bridge.devices]]\nid = "{ident}"\ntemplate = "{template}"\nhost = "127.0.0.1"\n'
               f"port = {sim.port}\ninterval_s = 0.5\n" for ident, (template, sim) in polled.items()]
    entries.append('[[generic-bridge.devices]]\nid = "hichi"\ntemplate = "tasmota-sml-mqtt"\n'
                   'vars = { topic = "hichi", meter = "Strom", power = "Power_cur" }\n')
    entries.append('[[generic-bridge.devices]]\nid = "tesla"\ntemplate = "teslamate-mqtt"\nvars = { car = "7" }\n')
    # A Tasmota plug's relay state, a plain payload ("ON"/"OFF") on stat/<topic>/POWER, described inline.
    entries.append('[[generic-bridge.devices]]\nid = "plug"\ndescription = { kind = "relay", source = { type = "mqtt", '
                   'topic = "stat/plug/POWER", payload = "plain" }, values = [{ field = "on" }] }\n')
    config.write_text("[generic-bridge]\nstatus_interval_s = 1\n" + "".join(entries)
                      + f'[http-api]\nports = [{api_port}]\ninstance = "t{api_port}"\n'
                        'trusted_networks = ["127.0.0.1/32"]\n')
    bridge = ServiceProcess("wattbus_generic_bridge", ["--config", str(config)], broker.env(SOURCE), run / "bridge.log")
    api = ServiceProcess("wattbus_http_api", ["--config", str(config)], broker.env("http-api"), run / "api.log")
    wait_port(api_port, 30)
    yield Stack(water, head, relay, sdm, bridge, api_port, config)
    for proc in (bridge, api):
        proc.stop()
    for sim in sims:
        sim.stop()


def http_json(url: str, method: str = "GET") -> Any:
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=5) as resp:
        return json.loads(resp.read())


class Seen:
    def __init__(self) -> None:
        self.readings: dict[str, list[m.ReadingBase]] = {}
        self.metas: dict[str, m.DeviceMeta] = {}
        self.status: m.ServiceStatus | None = None

    def on_reading(self, msg: Message[bytes]) -> None:
        reading = msgspec.json.decode(msg.payload, type=m.Reading)
        self.readings.setdefault(reading.device_id, []).append(reading)

    def on_meta(self, msg: Message[bytes]) -> None:
        meta = msgspec.json.decode(msg.payload, type=m.DeviceMeta)
        self.metas[meta.device_id] = meta

    def on_status(self, msg: Message[bytes]) -> None:
        self.status = msgspec.json.decode(msg.payload, type=m.ServiceStatus)

    def last(self, device_id: str) -> Any:
        return self.readings.get(device_id, [None])[-1]


async def watching(broker: Mosquitto) -> tuple[Bus, Seen]:
    bus = await started_bus(broker, TEST_ADMIN)
    seen = Seen()
    bus.subscribe(f"wattbus/v1/device/{SOURCE}/+/reading", bytes, seen.on_reading)
    bus.subscribe(f"wattbus/v1/device/{SOURCE}/+/meta", bytes, seen.on_meta)
    bus.subscribe(topics.service_status(SOURCE, "main"), bytes, seen.on_status)
    await subscriptions_active(bus)
    return bus, seen


async def test_readings_arrive_in_si_units(broker: Mosquitto, stack: Stack) -> None:
    bus, seen = await watching(broker)
    try:
        # The head publishes every TelePeriod; until the bridge has subscribed, a message is missed.
        await publish_until(bus, "tele/hichi/SENSOR", (DATA / "tasmota_sml_sensor.json").read_bytes(),
                            lambda: seen.last("hichi") is not None)
        wanted = ("water", "utility-meter", "hichi", "pump", "sdm")
        await until(lambda: all(seen.last(d) is not None for d in wanted), 20,
                    f"a reading from each of {wanted}: {stack.bridge.output()[-2000:]}")
        water, grid, hichi, pump, sdm = (seen.last(d) for d in wanted)
        assert isinstance(water, m.MeterReading) and water.water_m3 == pytest.approx(1130.154, abs=0.1)
        assert grid.energy_import_wh == pytest.approx(3_985_744, abs=50)  # the head's kWh, in Wh
        assert grid.power_w == 513 and grid.energy_export_wh == pytest.approx(18_804_181, abs=50)
        assert hichi.energy_import_wh == pytest.approx(9_982_813) and hichi.power_w == 398
        assert isinstance(pump, m.RelayReading) and pump.on is False and pump.power_w == 0
        assert pump.energy_wh == pytest.approx(2_418_520 / 60, abs=1)  # watt-minutes -> Wh
        assert isinstance(sdm, m.MeterReading) and len(sdm.phases) == 3
        assert sdm.frequency_hz == pytest.approx(50, abs=1) and sdm.energy_import_wh and sdm.energy_import_wh > 1000
        assert sdm.power_w == pytest.approx(sum(p.power_w or 0 for p in sdm.phases), abs=1)
        await until(lambda: {"water", "hichi", "pump", "sdm"} <= set(seen.metas), 10, "metas")
        assert [seen.metas[d].protocol for d in ("water", "hichi", "sdm")] == ["http", "mqtt", "modbus"]
        assert seen.metas["pump"].capabilities == ["set_relay"] and seen.metas["water"].capabilities == []
        assert all("error" not in seen.last(d).extra for d in wanted)
    finally:
        await bus.stop()


async def publish_until(bus: Bus, topic: str, payload: bytes, arrived: Any) -> None:
    """Publish (as a device does, again and again) until the bridge's reading shows it."""
    for _ in range(100):
        bus.publish(topic, payload)
        if arrived():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no reading after publishing {payload!r} on {topic}")


async def test_plain_mqtt_payloads(broker: Mosquitto, stack: Stack) -> None:
    bus, seen = await watching(broker)
    try:
        await publish_until(bus, "stat/plug/POWER", b"ON", lambda: getattr(seen.last("plug"), "on", None) is True)
        await publish_until(bus, "stat/plug/POWER", b"OFF", lambda: getattr(seen.last("plug"), "on", None) is False)
        bus.publish("stat/plug/POWER", b"dimmed")  # not a relay state: null and shown, the bridge goes on
        await until(lambda: "error" in seen.last("plug").extra, 10, "the plain payload's error")
        assert seen.last("plug").on is None and "'dimmed' is not on/off" in seen.last("plug").extra["error"]
        await publish_until(bus, "stat/plug/POWER", b"ON", lambda: getattr(seen.last("plug"), "on", None) is True)
    finally:
        await bus.stop()


async def test_teslamate_topics_become_a_vehicle_reading(broker: Mosquitto, stack: Stack) -> None:
    """TeslaMate's per-value topics (car 7 here) on the shipped ACL: one vehicle reading with them all."""
    bus, seen = await watching(broker)
    try:
        values = {topic.replace("/cars/1/", "/cars/7/"): payload.encode()
                  for topic, payload in json.loads((DATA / "teslamate_car1.json").read_text()).items()}
        for topic, payload in values.items():
            bus.publish(topic, payload)
        await publish_until(bus, "teslamate/cars/7/battery_level", b"63",
                            lambda: getattr(seen.last("tesla"), "soc_pct", None) == 63
                            and seen.last("tesla").connected is not None)
        tesla = seen.last("tesla")
        assert isinstance(tesla, m.VehicleReading) and tesla.limit_soc_pct == 80 and tesla.connected is True
        assert tesla.range_m == pytest.approx(301_450) and tesla.charge_state == "charging"
        await until(lambda: "tesla" in seen.metas, 10, "the vehicle's meta")
        assert (seen.metas["tesla"].kind, seen.metas["tesla"].protocol) == ("vehicle", "mqtt")
    finally:
        await bus.stop()


async def test_probe_reads_an_entry_before_it_is_saved(broker: Mosquitto, stack: Stack) -> None:
    bus = await started_bus(broker, TEST_ADMIN)
    service = topics.service_command(SOURCE, "main")
    try:
        entry: dict[str, Any] = {"id": "new-head", "template": "tasmota-sml", "host": "127.0.0.1",
                                 "port": stack.head.port, "vars.meter": "SML"}
        result = await bus.request(service, m.ProbeDevice(entry=entry), timeout=15)
        assert result.status == "ok", result.message
        assert [d.device_id for d in result.devices] == ["new-head"] and result.devices[0].protocol == "http"
        assert isinstance(result.readings[0], m.MeterReading) and result.readings[0].power_w == 513
        bad = await bus.request(service, m.ProbeDevice(entry={**entry, "vars.meter": "Strom"}), timeout=15)
        assert bad.status == "failed" and "$.StatusSNS.Strom.Total_in matched nothing" in bad.message
        invalid = await bus.request(service, m.ProbeDevice(entry={"id": "x", "template": "ai-on-the-edge"}),
                                    timeout=15)
        assert invalid.status == "invalid" and "uses {host}, which has no value" in invalid.message
    finally:
        await bus.stop()


async def test_probe_listens_for_an_mqtt_devices_first_message(broker: Mosquitto, stack: Stack) -> None:
    bus = await started_bus(broker, TEST_ADMIN)
    service = topics.service_command(SOURCE, "main")
    topic = f"tele/probe-{stack.api_port}/SENSOR"  # this test's own head
    entry: dict[str, Any] = {"id": "new-hichi", "template": "tasmota-sml-mqtt", "interval_s": 1,
                             "vars.topic": topic.split("/")[1], "vars.meter": "Strom", "vars.power": "Power_cur"}
    try:
        silent = await bus.request(service, m.ProbeDevice(entry=entry), timeout=15)
        assert (silent.status, silent.message) == ("failed", f"no message on {topic} within 1 s")
        bus.publish(topic, (DATA / "tasmota_sml_sensor.json").read_bytes(), retain=True)
        result = await bus.request(service, m.ProbeDevice(entry=entry), timeout=15)
        assert result.status == "ok", result.message
        assert [d.device_id for d in result.devices] == ["new-hichi"] and result.devices[0].protocol == "mqtt"
        assert isinstance(result.readings[0], m.MeterReading) and result.readings[0].power_w == 398
    finally:
        bus.publish(topic, b"", retain=True)
        await bus.stop()


async def test_meterhub_shows_the_water_meter_as_water_vto(broker: Mosquitto, stack: Stack) -> None:
    bus, seen = await watching(broker)
    try:
        await until(lambda: seen.last("water") is not None, 20, "a water reading")
        url = f"http://127.0.0.1:{stack.api_port}/"
        for _ in range(100):
            doc = await asyncio.to_thread(http_json, url)
            if doc.get("water_vto") is not None:
                break
            await asyncio.sleep(0.1)
        litres = seen.last("water").water_m3 * 1000
        assert isinstance(doc["water_vto"], int) and abs(doc["water_vto"] - litres) < 5  # 4.2 l/min flows on
    finally:
        await bus.stop()


async def test_a_selector_that_stops_matching_is_counted_and_shown(broker: Mosquitto, stack: Stack) -> None:
    bus, seen = await watching(broker)
    firmware = f"http://127.0.0.1:{stack.head.port}/sim/firmware"
    try:
        await until(lambda: seen.last("utility-meter") is not None, 20, "a Tasmota reading")
        await asyncio.to_thread(http_json, f"{firmware}?prefix=Strom", "POST")  # the SML script was changed
        await until(lambda: "error" in seen.last("utility-meter").extra, 10, "the error on the reading")
        broken = seen.last("utility-meter")
        assert broken.energy_import_wh is None and broken.power_w is None  # missing, not 0, not the old value
        assert "$.StatusSNS.SML.Total_in matched nothing" in broken.extra["error"]
        assert broken.extra["selector_misses"] >= 3
        await until(lambda: seen.status is not None and seen.status.counters.get("selector_misses", 0) >= 3, 10,
                    "selector_misses in the service status")
        assert stack.bridge.proc.poll() is None, "the bridge stopped"
        await asyncio.to_thread(http_json, f"{firmware}?prefix=SML", "POST")
        await until(lambda: seen.last("utility-meter").energy_import_wh is not None, 10, "values again")
        assert "error" not in seen.last("utility-meter").extra
        assert seen.last("water").water_m3 is not None  # the other devices never noticed
    finally:
        await bus.stop()


async def test_relay_switch_is_limited_and_read_back(broker: Mosquitto, stack: Stack) -> None:
    bus = await started_bus(broker, TEST_ADMIN)
    command_topic = topics.device_command(SOURCE, "pump")
    relay_url = f"http://127.0.0.1:{stack.relay.port}/relay/0"
    try:
        result = await bus.request(command_topic, m.SetRelay(on=True), timeout=15)
        assert (result.status, result.applied) == ("ok", {"on": True, "channel": 0}), result.message
        assert (await asyncio.to_thread(http_json, relay_url))["ison"] is True  # the device itself says so
        off = await bus.request(command_topic, m.SetRelay(on=False), timeout=15)
        assert off.status == "refused" and "minimum interval is 30 s" in off.message
        assert (await asyncio.to_thread(http_json, relay_url))["ison"] is True  # nothing was written
        again = await bus.request(command_topic, m.SetRelay(on=True), timeout=15)
        assert again.status == "ok"  # already on: no switch needed, so no interval applies
        other = await bus.request(topics.device_command(SOURCE, "water"), m.SetRelay(on=True), timeout=15)
        assert other.status == "refused" and "accepts: none" in other.message
    finally:
        await bus.stop()


def test_a_bad_description_stops_the_start_with_key_and_reason(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[[generic-bridge.devices]]\nid = "water"\ntemplate = "ai-on-the-edge"\nhost = "192.0.2.1"\n'
                      'vars = { unit = "kWh" }\n')
    done = subprocess.run([sys.executable, "-m", "wattbus_generic_bridge", "--config", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "config [generic-bridge]" in done.stderr and "devices[0] (water) template 'ai-on-the-edge'" in done.stderr
    assert "values[0].unit: 'kWh' measures energy, but water_m3 is volume" in done.stderr
