"""The charge plan on the real broker: the controller process, the simulated house in lockstep (simulated
time, a grey dawn without surplus) and a car whose SoC rises with the energy the wallbox gives it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
from wattbus import messages as m
from wattbus import topics
from wattbus_sim.house import House
from wattbus_sim.house_bus import HouseBus
from wattbus_sim.house_profiles import EvSpec, load_profile

from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto
from tests.surplus_controller.test_closed_loop import write_config

MODULE = "wattbus_surplus_controller"
CAR = "house-car"
CAPACITY_WH = 20_000.0


class HouseWithCar(HouseBus):
    """The house's readings, then the car's own: its SoC as its telematics would report it."""

    def publish_readings(self) -> datetime:
        ts = super().publish_readings()
        ev = self.house.charger.ev
        self.bus.publish(topics.device_reading("house-sim", CAR), m.VehicleReading(
            device_id=CAR, timestamp=ts, soc_pct=None if ev is None else round(ev.soc_pct, 1),
            capacity_wh=CAPACITY_WH, connected=ev is not None), qos=self.reading_qos)
        return ts


async def test_the_plan_charges_from_the_grid_in_time_and_stops_at_the_target(
        broker: Mosquitto, tmp_path: Path, start_service: Callable[..., Any]) -> None:
    config = write_config(tmp_path, "readings")  # its loadpoint tuning table comes last: the margin goes there
    with_car = config.read_text().replace('charger = "house-sim/house-wallbox"\n',
                                          f'charger = "house-sim/house-wallbox"\nvehicle = "house-sim/{CAR}"\n')
    config.write_text(with_car + "plan_margin_s = 600\n")
    # local time = the simulation's UTC: the plan's 07:00 is the house's 07:00
    controller = start_service(MODULE, "--config", str(config), env={**broker.env("surplus-controller"), "TZ": "UTC"})
    day = msgspec.structs.replace(load_profile("overcast"), battery=None, appliances=[],
                                  ev=EvSpec(capacity_wh=CAPACITY_WH, soc_pct=50, connected_from="00:00",
                                            connected_until="23:59"))
    house = House.from_profile(day, "05:50", with_heater=False)
    sim_bus = await started_bus(broker, "house-sim", "plan")
    adapter = HouseWithCar(house, sim_bus, meter_interval_s=5, speed=0, lockstep_loadpoint="garage",
                           lockstep_timeout_s=15)
    person = await started_bus(broker, "http-api", "plan")
    states: list[tuple[float, m.LoadpointState, float]] = []  # (house time, state, car SoC)

    def seen(msg: Any) -> None:
        if house.charger.ev is not None:
            states.append((house.time_s, msg.payload, house.charger.ev.soc_pct))

    try:
        adapter.start()
        await until(lambda: "connected to broker" in controller.output(), 20, "controller connected")
        await adapter.run(house.time_s + 20)  # the controller has seen the car
        half = await person.request(topics.loadpoint_command("garage"), m.SetLoadpointPlan(soc_pct=80))
        assert half.status == "invalid" and "soc_pct and time together" in half.message
        result = await person.request(topics.loadpoint_command("garage"),
                                      m.SetLoadpointPlan(soc_pct=80, time="0700"))
        assert result.status == "ok" and (result.applied["plan_soc_pct"], result.applied["plan_time"]) == (80, "0700")
        person.subscribe(topics.loadpoint_state("garage"), m.LoadpointState, seen)
        await adapter.run(7 * 3600.0)
        # the plan a person set survives a restart (state file), over the config's (none here)
        assert controller.stop() == 0
        again = start_service(MODULE, "--config", str(config), env={**broker.env("surplus-controller"), "TZ": "UTC"})
        adapter.last_state = None
        await until(lambda: "connected to broker" in again.output(), 20, "restarted controller")
        await adapter.run(house.time_s + 20)
        assert adapter.last_state is not None and adapter.last_state.plan_soc_pct == 80, again.output()[-2000:]
        assert adapter.last_state.plan_time == "0700" and adapter.last_state.plan_status == "plan met"
    finally:
        await person.stop()
        await sim_bus.stop()
    assert adapter.lockstep_misses <= 1, controller.output()[-3000:]

    # 50 -> 80 % of 20 kWh at 90 %: 6.7 kWh, 36 min at 11 kW, + 10 min margin: from 06:13 at the latest
    before = [s for t, s, _ in states if t < 6 * 3600 + 10 * 60]
    assert before and not any(s.plan_active or s.charging for s in before), before[-1]
    assert before[-1].plan_status == ("plan: 80 % by 07:00; from the grid from 06:13 unless the sun gets "
                                      "there first"), before[-1].plan_status
    assert before[-1].vehicle_id == CAR and before[-1].vehicle_soc_pct == 50
    took = next((t, s) for t, s, _ in states if s.plan_active)
    assert 6 * 3600 + 13 * 60 <= took[0] <= 6 * 3600 + 15 * 60, took
    assert took[1].plan_status is not None and took[1].plan_status.startswith(
        "plan: charging from the grid from 06:1") and took[1].plan_status.endswith("to reach 80 % by 07:00")
    charging = [s for _, s, _ in states if s.plan_active and s.charging]
    assert charging and all(s.status == "charging_by_plan" for s in charging), charging[-1]
    assert max(s.power_w or 0 for s in charging) > 10_000  # the grid gives the car what the plan needs
    met_at = next(t for t, _, soc in states if soc >= 80)
    assert met_at < 7 * 3600, f"80 % reached at {met_at / 3600:.2f} h, after the plan's 07:00"
    assert states[-1][1].plan_status == "plan met" and not states[-1][1].plan_active
    assert states[-1][2] < 82, f"it charged on to {states[-1][2]:.1f} % without sun"  # stopped near the target
    assert not house.charger.enabled
