"""The grid-import allowance is a hard limit over a rolling window; the broken-sky phase choice."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from wattbus_sim.house import House
from wattbus_sim.house_bus import HouseBus
from wattbus_surplus_controller.config import LoadpointConfig
from wattbus_surplus_controller.model import ChargerView, LoadpointChoices
from wattbus_surplus_controller.sky import SkyWatch
from wattbus_surplus_controller.strategy import Loadpoint
from wattbus_surplus_controller.window import ImportWindow

from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto

from .test_closed_loop import MODULE, write_config


def test_import_window_books_and_forgets() -> None:
    window = ImportWindow(600.0)
    window.book(10.0, 3600.0, 2.0)  # 3.6 kW for 2 s = 2 Wh
    window.book(12.0, 0.0, 2.0)  # export books nothing
    window.book(14.0, -500.0, 2.0)
    assert window.used_wh(14.0) == pytest.approx(2.0)
    window.book(300.0, 1800.0, 10.0)
    assert window.used_wh(300.0) == pytest.approx(7.0)
    assert window.used_wh(610.0) == pytest.approx(5.0)  # the first slice left the window
    assert window.used_wh(900.0) == 0.0


def lp_3p(**cfg: object) -> Loadpoint:
    lp_cfg = LoadpointConfig(id="garage", charger="house-sim/house-wallbox", enable_delay_s=0, settle_s=0,
                             **cfg)  # type: ignore[arg-type]
    return Loadpoint(lp_cfg, LoadpointChoices("pv", lp_cfg.min_current_a, lp_cfg.max_current_a))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_strategy_cuts_before_the_window_allowance_is_used(seed: int) -> None:
    """Open loop with a worst-case plant: every watt the car draws beyond the surplus is imported
    (no battery) for two readings after a cut, as a slow charger would. The metered import in any
    600 s window stays within the window allowance (60 Wh by default) while shadows come and go."""
    rng = random.Random(seed)
    # a ride allowance far above the window's: the ride alone would overshoot, the window must act
    lp = lp_3p(import_allowance_wh=200, disable_delay_s=3600, restart_delay_s=60, min_off_s=60)
    draws: list[float] = [0.0, 0.0]
    booked: list[tuple[float, float]] = []
    guarded = 0
    surplus = 6000.0
    for i in range(4 * 3600 // 2):
        now = i * 2.0
        if rng.random() < 0.03:
            surplus = rng.choice([6000.0, 4500.0, 1200.0, 300.0])
        draw = draws[-2]  # the charger follows the setting two readings late
        import_w = max(0.0, draw - surplus)
        booked.append((now, import_w * 2.0 / 3600.0))
        s = lp.decide(now, surplus + 0.0, ChargerView(power_w=draw, state="charging"), import_w=import_w)
        draws.append(lp.expected_power_w() if s.enabled else 0.0)
        guarded += "import allowance used in 600 s" in s.reason
    worst = max(sum(wh for t, wh in booked if start <= t < start + 600.0) for start, _ in booked)
    assert 0 < worst <= lp.cfg.window_allowance_wh == 60.0
    assert guarded > 0  # the hard limit, not the ride-through budget alone, had to act


def test_sky_watch_tells_broken_from_steady() -> None:
    steady, broken = SkyWatch(), SkyWatch()
    for t in range(0, 1800, 10):
        steady.note(float(t), 6000.0)
        broken.note(float(t), 6000.0 if (t // 200) % 2 == 0 else 800.0)  # 200 s shadows
    assert not steady.broken(4140.0)
    assert broken.broken(4140.0)
    grey = SkyWatch()
    for t in range(0, 1800, 10):
        grey.note(float(t), 900.0)
    assert not grey.broken(4140.0)  # all below: an overcast day, not a broken one


def broken_sky_run(policy: str, room: bool) -> Loadpoint:
    """30 min of 200 s shadows (6 kW sun, 0.8 kW shade) with the battery's room fixed."""
    lp = lp_3p(phase_dwell_s=0, phase_up_delay_s=0, broken_sky_phases=policy)
    view = ChargerView(power_w=0.0, state="charging")
    for t in range(0, 1800, 2):
        lp.battery_room = room
        lp.decide(float(t), 6000.0 if (t // 200) % 2 == 0 else 800.0, view)
    return lp


def test_broken_sky_charges_on_1p_only_while_the_battery_has_room() -> None:
    lp = broken_sky_run("1p_with_room", room=True)
    assert lp.prefer_1p() and lp.setting.phases == 1
    lp.battery_room = False  # the battery is full: what 1p leaves would be exported
    assert not lp.prefer_1p()


def test_broken_sky_1p_when_full_keeps_3p_while_the_battery_has_room() -> None:
    # with room the battery carries the 3p shadows; once full it cannot, and 1p rides them cheaper
    assert not broken_sky_run("1p_when_full", room=True).prefer_1p()
    full = broken_sky_run("1p_when_full", room=False)
    assert full.prefer_1p() and full.setting.phases == 1
    assert not broken_sky_run("auto", room=True).prefer_1p()
    assert not broken_sky_run("auto", room=False).prefer_1p()


async def test_closed_loop_import_never_exceeds_the_window_allowance(
        broker: Mosquitto, tmp_path: Path, start_service: Callable[..., Any]) -> None:
    """A house without a battery on the broken-clouds day: every shadow imports unless the
    controller cuts. One simulated hour in lockstep; the worst 10-minute import while charging
    stays within the 60 Wh window allowance, and the allowance was really exercised."""
    config = write_config(tmp_path, "readings")  # the defaults: 60 Wh in any 600 s
    controller = start_service(MODULE, "--config", str(config), env=broker.env("surplus-controller"))
    sim_bus = await started_bus(broker, "house-sim", "allowance")
    house = House.from_profile("broken", "11:30", with_heater=False)
    house.battery = None
    adapter = HouseBus(house, sim_bus, meter_interval_s=2, speed=0, lockstep_loadpoint="garage",
                       lockstep_timeout_s=15)
    adapter.start()
    await until(lambda: "connected to broker" in controller.output(), 20, "controller connected")
    await adapter.run(house.time_s + 3600)
    metrics = adapter.metrics
    assert adapter.lockstep_misses <= 1, controller.output()
    assert metrics.ev_wh > 1000, controller.output()
    assert metrics.import_while_charging_wh > 5.0  # shadows did make it import: the limit mattered
    assert metrics.worst_window_wh <= 60.0, (metrics.worst_window_wh, controller.output()[-3000:])
    await sim_bus.stop()
