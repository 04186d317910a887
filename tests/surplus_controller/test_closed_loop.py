"""The controller as a real process on the real broker, closing the loop through the house-sim."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Bus
from wattbus_sim.house import House
from wattbus_sim.house_bus import HouseBus

from tests.support.bus_helpers import started_bus, until
from tests.support.house_site import HOUSE_SITE
from tests.support.servers import Mosquitto

MODULE = "wattbus_surplus_controller"


def write_config(tmp_path: Path, clock: str, **extra: str) -> Path:
    lines = "\n".join(f"{k} = {v}" for k, v in extra.items())
    path = tmp_path / "wattbus.toml"
    path.write_text(HOUSE_SITE + f"""
[surplus-controller]
clock = "{clock}"
state_file = "{tmp_path}/state.json"
command_replies = "result_topic"
status_interval_s = 5
{lines}
[surplus-controller.tuning.garage]
enable_delay_s = 10
""")
    return path


async def test_closed_loop_charges_from_the_sun_and_a_restart_keeps_the_mode(
        broker: Mosquitto, tmp_path: Path, start_service: Callable[..., Any]) -> None:
    config = write_config(tmp_path, "readings")
    env = broker.env("surplus-controller")
    controller = start_service(MODULE, "--config", str(config), env=env)
    sim_bus = await started_bus(broker, "house-sim", "closed-loop")
    house = House.from_profile("clear", "11:00", with_heater=False)
    adapter = HouseBus(house, sim_bus, meter_interval_s=2, speed=0, lockstep_loadpoint="garage",
                       lockstep_timeout_s=15)
    adapter.start()
    await until(lambda: "connected to broker" in controller.output(), 20, "controller connected")
    await adapter.run(house.time_s + 120)
    # the very first round may race the controller's subscription; every later one is in lockstep
    assert adapter.lockstep_misses <= 1, controller.output()
    assert house.charger.enabled and house.charger.power_w() > 0, controller.output()
    state = adapter.last_state
    assert state is not None and state.mode == "pv" and state.charging and state.strategy == "wattbus"
    assert 6 <= (state.set_current_a or 0) <= 16
    # what a person sees: the session since the car was plugged in, and in one word why it charges
    assert state.status in ("charging_from_surplus", "charging_at_minimum"), state
    assert state.session_duration_s is not None and 0 < state.session_duration_s <= 130
    assert state.session_energy_wh is not None and state.session_energy_wh > 0

    person = await started_bus(broker, "http-api", "closed-loop")
    result = await person.request(topics.loadpoint_command("garage"), m.SetLoadpointMode(mode="off"))
    assert result.status == "ok" and result.applied["mode"] == "off"
    bad = await person.request(topics.loadpoint_command("garage"),
                               m.SetLoadpointLimits(min_current_a=14, max_current_a=8))
    assert bad.status == "invalid" and "above max_current_a" in bad.message
    await until(lambda: not house.charger.enabled, 10, "charger disabled by mode off")

    assert controller.stop() == 0
    again = start_service(MODULE, "--config", str(config), env=env)
    adapter.last_state = None
    await until(lambda: "connected to broker" in again.output(), 20, "restarted controller")
    await adapter.run(house.time_s + 20)
    assert adapter.last_state is not None and adapter.last_state.mode == "off", again.output()
    assert not house.charger.enabled
    await person.stop()
    await sim_bus.stop()


async def watched_house(broker: Mosquitto, instance: str, speed: float
                        ) -> tuple[Bus, Bus, list[m.LoadpointState], House, HouseBus]:
    """The simulated house on the bus in real time x speed, and a watcher collecting the garage's states."""
    sim_bus = await started_bus(broker, "house-sim", instance)
    watcher = await started_bus(broker, "influx-writer", instance)
    states: list[m.LoadpointState] = []
    watcher.subscribe(topics.loadpoint_state("garage"), m.LoadpointState, lambda msg: states.append(msg.payload))
    house = House.from_profile("clear", "11:00", with_heater=False)
    adapter = HouseBus(house, sim_bus, meter_interval_s=1, speed=speed)
    adapter.start()
    return sim_bus, watcher, states, house, adapter


async def test_silent_grid_meter_leads_to_the_safe_state_and_an_alert(
        broker: Mosquitto, tmp_path: Path, start_service: Callable[..., Any]) -> None:
    config = write_config(tmp_path, "wall", stale_after_s="3", stale_action='"stop"')
    controller = start_service(MODULE, "--config", str(config), env=broker.env("surplus-controller"))
    sim_bus, watcher, states, house, adapter = await watched_house(broker, "stale", 4)
    runner = asyncio.create_task(adapter.run(house.time_s + 3600))
    try:
        await until(lambda: house.charger.enabled, 30, "charging from the sun")
        adapter.meter_dropout = True
        await until(lambda: bool(states) and states[-1].alert is not None, 20, "stale alert")
        await until(lambda: not house.charger.enabled, 10, "safe state: stopped")
        assert "grid meter house-sim/house-meter silent" in (states[-1].alert or "")
        assert "safe state" in states[-1].reason
        adapter.meter_dropout = False
        await until(lambda: states[-1].alert is None, 20, "alert cleared when the meter is back")
    finally:
        runner.cancel()
    assert "grid data stale" in controller.output()
    await watcher.stop()
    await sim_bus.stop()
