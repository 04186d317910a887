"""The closed loop through the real device protocols.

One simulated house (wattbus_sim.house_devices) answers as a go-e Charger (HTTP API v2), a Shelly
Pro 3EM grid meter and a Shelly Plus 1PM heater relay on loopback; the real goe-shelly-bridge
process polls them onto the real broker, and the real surplus-controller process regulates the
go-e from the Shelly's grid readings. Nothing talks to the house except over HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Bus
from wattbus_sim.house import House
from wattbus_sim.house_devices import HouseDevices, feed_sml

from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto, free_port

BRIDGE = "goe-shelly-bridge"
GOE_SERIAL, METER_MAC, HEATER_MAC = "204571", "08F9E0E5A001", "B8D61A8BA002"
CHARGER = f"{BRIDGE}/goe-{GOE_SERIAL}"
METER = f"{BRIDGE}/shelly-{METER_MAC.lower()}-em"
HEATER = f"{BRIDGE}/shelly-{HEATER_MAC.lower()}"
SML_ID, INVERTER_ID = "dzg-1dzg0060694612", "fronius-34119777"  # DZG server id; SunSpec common model serial


def write_config(tmp_path: Path, ports: dict[str, int]) -> Path:
    """Both services in one file, as in the embedded demo; delays shortened so a test takes seconds."""
    path = tmp_path / "wattbus.toml"
    path.write_text(f"""
[{BRIDGE}]
poll_interval_s = 0.5
status_interval_s = 5

[[{BRIDGE}.devices]]
url = "http://127.0.0.1:{ports['goe']}"
max_current_a = 16
min_switch_interval_s = 0
min_phase_switch_interval_s = 0

[[{BRIDGE}.devices]]
url = "http://127.0.0.1:{ports['meter']}"
password = "house-secret"

[[{BRIDGE}.devices]]
url = "http://127.0.0.1:{ports['heater']}"
min_switch_interval_s = 0

[site]
grid = "{METER}"

[[site.loadpoints]]
id = "garage"
charger = "{CHARGER}"
mode = "pv"
max_current_a = 16

[surplus-controller]
state_file = "{tmp_path}/surplus-state.json"
status_interval_s = 5
stale_after_s = 20

[surplus-controller.tuning.garage]
enable_delay_s = 2
raise_hold_s = 2
settle_s = 4
min_off_s = 5
resync_s = 10

[[site.relays]]
id = "water-heater"
device = "{HEATER}"
power_w = 2000
on_threshold_w = 200
min_on_s = 5
min_off_s = 5
""")
    return path


class Watch:
    """What the bus shows: the controller's loadpoint state and the bridge's charger readings."""

    def __init__(self) -> None:
        self.state: m.LoadpointState | None = None
        self.charger: m.ChargerReading | None = None
        self.grid: m.MeterReading | None = None

    def attach(self, bus: Bus) -> None:
        bus.subscribe(topics.loadpoint_state("garage"), m.LoadpointState, self._state)
        bus.subscribe(topics.device_reading(*CHARGER.split("/")), m.Reading, self._reading)
        bus.subscribe(topics.device_reading(*METER.split("/")), m.Reading, self._reading)

    def _state(self, msg: Any) -> None:
        self.state = msg.payload

    def _reading(self, msg: Any) -> None:
        if isinstance(msg.payload, m.ChargerReading):
            self.charger = msg.payload
        elif isinstance(msg.payload, m.MeterReading):
            self.grid = msg.payload


@pytest.fixture
async def house_devices() -> AsyncIterator[HouseDevices]:
    # clear day, car plugged in from 06:30, no battery (nothing here publishes its charge power);
    # the go-e stopped (frc=1) as in the demo, so only the controller's SetCharging can start it
    house = House.from_profile("clear", "11:20")
    house.battery = None
    devices = HouseDevices(house, goe_serial=GOE_SERIAL, meter_mac=METER_MAC, heater_mac=HEATER_MAC,
                           meter_password="house-secret", goe_force=1)
    await devices.start(0, 0, 0)
    clock = asyncio.create_task(devices.run(speed=2.0, until_s=house.time_s + 6 * 3600))
    yield devices
    clock.cancel()
    await asyncio.gather(clock, return_exceptions=True)
    await devices.stop()


async def test_pv_mode_charges_the_car_from_the_sun_through_goe_and_shelly(
        broker: Mosquitto, tmp_path: Path, start_service: Callable[..., Any], house_devices: HouseDevices) -> None:
    house, goe = house_devices.house, house_devices.goe
    config = write_config(tmp_path, house_devices.ports)
    bridge = start_service("wattbus_goe_shelly_bridge", "--config", str(config), env=broker.env(BRIDGE))
    controller = start_service("wattbus_surplus_controller", "--config", str(config),
                               env=broker.env("surplus-controller"))
    watcher = await started_bus(broker, "influx-writer", "closed-loop-devices")
    watch = Watch()
    watch.attach(watcher)

    def logs() -> str:
        return f"--- bridge\n{bridge.output()[-4000:]}\n--- controller\n{controller.output()[-4000:]}"

    try:
        assert not house.charger.enabled and goe.frc == 1
        # the Shelly's grid reading reaches the bus with the house's value (digest auth passed)
        await until(lambda: watch.grid is not None and watch.grid.power_w is not None, 30, "Pro 3EM grid reading")
        # pv mode: the controller starts the car and regulates it so the house does not import
        await until(lambda: watch.state is not None and watch.state.mode == "pv" and watch.state.charging
                    and watch.state.set_current_a is not None, 60, f"charging in pv mode\n{logs()}")

        def from_the_sun() -> bool:
            state = watch.state
            return (state is not None and state.set_current_a is not None and house.charger.power_w() > 0
                    and house.charger.enabled and house.grid_power_w() < 250.0)
        await until(from_the_sun, 60, f"car charging without grid import (grid {house.grid_power_w():.0f} W)\n{logs()}")
        assert house.surplus_w() > 0 and house.pv_power_w() > house.charger.power_w() * 0.5

        # SetChargeCurrent reached the house over HTTP, and the bridge's read-back shows it on the bus
        def current_agrees() -> bool:
            state, reading = watch.state, watch.charger
            return (state is not None and reading is not None and state.set_current_a is not None
                    and goe.amp == state.set_current_a == house.charger.offered_a == reading.set_current_a)
        await until(current_agrees, 30, f"go-e amp = controller target = bridge read-back\n{logs()}")
        assert goe.sets > 0 and goe.frc == 2, "the controller's commands arrived as /api/set writes"
        assert watch.charger is not None and watch.charger.forced == "on" and watch.charger.state == "charging"
        assert 6 <= (watch.state.set_current_a if watch.state else 0) <= 16
        ev_wh = house.charger.session_energy_wh

        # a person switches the loadpoint off: frc=1 reaches the go-e, the freed surplus heats water
        person = await started_bus(broker, "http-api", "closed-loop-devices")
        result = await person.request(topics.loadpoint_command("garage"), m.SetLoadpointMode(mode="off"))
        assert result.status == "ok", result
        await until(lambda: not house.charger.enabled and house.charger.power_w() == 0, 30, f"car stopped\n{logs()}")
        await until(lambda: watch.charger is not None and watch.charger.forced == "off", 20, "bridge sees frc=off")
        assert goe.frc == 1
        await until(lambda: house.relays["heater"].on, 60, f"heater relay switched on via Switch.Set\n{logs()}")
        assert house.charger.session_energy_wh > ev_wh > 0
        await person.stop()
    finally:
        await watcher.stop()
    assert "Traceback" not in bridge.output() and "Traceback" not in controller.output(), logs()


async def test_the_house_as_sml_meter_and_sunspec_inverter_read_by_the_real_readers(
        broker: Mosquitto, tmp_path: Path, start_service: Callable[..., Any]) -> None:
    """The optional faces: the grid meter as SML on a pty (sml-reader) and the PV as a SunSpec
    inverter on Modbus TCP (sunspec-bridge). The house clock stands still, so values are exact."""
    house = House.from_profile("clear", "12:30", with_heater=False)
    house.battery = None
    devices = HouseDevices(house, goe_serial=GOE_SERIAL, meter_mac=METER_MAC)
    await devices.start(0, 0, None)
    port = free_port()
    await devices.start_sunspec(port)
    link = tmp_path / "house-sml"
    stop = asyncio.Event()
    sml = asyncio.create_task(feed_sml(house, link, 0.5, 60694612, stop))
    config = tmp_path / "readers.toml"
    config.write_text(f"""
[sml-reader]
[[sml-reader.meters]]
key = "house-grid"
format = "sml"
port = "{link}"

[sunspec-bridge]
poll_interval_s = 0.5
adopt = false
[[sunspec-bridge.devices]]
host = "127.0.0.1"
port = {port}
unit_ids = [1]
""")
    watcher = await started_bus(broker, "influx-writer", "house-faces")
    seen: dict[str, m.ReadingBase] = {}
    watcher.subscribe(f"{topics.PREFIX}/device/+/+/reading", m.Reading,
                      lambda msg: seen.__setitem__(msg.payload.device_id, msg.payload))
    await until(lambda: link.exists(), 10, "SML pty link")
    reader = start_service("wattbus_sml_reader", "--config", str(config), env=broker.env("sml-reader"))
    bridge = start_service("wattbus_sunspec_bridge", "--config", str(config), env=broker.env("sunspec-bridge"))
    grid_w = round(house.grid_power_w(), 1)
    try:
        await until(lambda: isinstance(seen.get(SML_ID), m.MeterReading), 45,
                    f"SML reading\n{reader.output()[-3000:]}")
        await until(lambda: isinstance(seen.get(INVERTER_ID), m.InverterReading), 45,
                    f"SunSpec reading\n{bridge.output()[-3000:]}")
    finally:
        stop.set()
        await asyncio.gather(sml, return_exceptions=True)
        await watcher.stop()
        await devices.stop()
    meter, inverter = seen[SML_ID], seen[INVERTER_ID]
    assert isinstance(meter, m.MeterReading) and isinstance(inverter, m.InverterReading)
    assert grid_w < 0, "12:30 on a clear day exports"
    assert meter.power_w == pytest.approx(grid_w, abs=0.01)
    assert meter.energy_export_wh is not None and meter.energy_export_wh >= 1_234_500.0
    assert inverter.power_w == pytest.approx(round(house.pv_power_w()), abs=1.0)
