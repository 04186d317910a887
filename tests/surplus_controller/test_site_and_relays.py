"""The site's available power (battery priority and assist) and surplus relays."""

from __future__ import annotations

import msgspec
import pytest
from wattbus_surplus_controller.config import Config, RelayConfig
from wattbus_surplus_controller.relays import RelayView, SurplusRelay
from wattbus_surplus_controller.site import Site


def site(**cfg: object) -> Site:
    config = msgspec.convert({"grid_meter": "house-sim/house-meter", "battery": "house-sim/house-battery",
                              "clock": "readings", **cfg}, Config)
    s = Site(config)
    s.sim_now = 100.0
    s.grid_at = s.battery_at = 100.0
    return s


def test_battery_charge_counts_as_surplus_and_discharge_against_it() -> None:
    s = site()
    s.grid_w, s.battery_w, s.battery_soc = 0.0, -2_000.0, 50.0
    assert s.available_w(100.0, consumers_w=1_500.0) == pytest.approx(3_500.0)
    s.battery_w = 800.0  # the battery feeds the EV: that is not surplus
    assert s.available_w(100.0, consumers_w=1_500.0) == pytest.approx(700.0)


def test_battery_priority_reserves_its_charge_power_and_assist_has_hysteresis() -> None:
    s = site(battery_priority_soc_pct=25, battery_assist_soc_pct=60, battery_assist_w=1_500, battery_assist_use="raise",
             battery_max_charge_w=3_000)
    s.grid_w, s.battery_w = 0.0, -1_000.0
    s.battery_soc = 20.0
    assert s.available_w(100.0, 0.0) == pytest.approx(1_000.0 - 3_000.0)
    s.battery_soc = 40.0
    assert s.available_w(100.0, 0.0) == pytest.approx(1_000.0)
    s.battery_soc = 60.0
    assert s.available_w(100.0, 0.0) == pytest.approx(2_500.0)
    s.battery_soc = 58.0  # within the hysteresis: still assisting
    assert s.available_w(100.0, 0.0) == pytest.approx(2_500.0)
    s.battery_soc = 56.5
    assert s.available_w(100.0, 0.0) == pytest.approx(1_000.0)


def test_stale_grid_or_battery_data() -> None:
    s = site(stale_after_s=10)
    assert s.available_w(100.0, 0.0) is None and "no reading" in (s.grid_problem(100.0) or "")
    s.grid_w, s.battery_w, s.battery_soc = -3_000.0, -500.0, 50.0
    assert s.available_w(105.0, 0.0) == pytest.approx(3_500.0)
    s.battery_at = 80.0  # a silent battery is ignored, not trusted
    assert s.available_w(105.0, 0.0) == pytest.approx(3_000.0)
    assert s.available_w(111.0, 0.0) is None and "silent for 11 s" in (s.grid_problem(111.0) or "")


def relay(**cfg: object) -> SurplusRelay:
    return SurplusRelay(RelayConfig(id="heater", device="house-sim/house-heater", power_w=2_000,
                                    **cfg))  # type: ignore[arg-type]


def test_relay_switches_on_surplus_and_respects_minimum_times() -> None:
    r = relay(min_on_s=300, min_off_s=300, on_threshold_w=200)
    view = RelayView()
    assert not r.decide(0, 2_100.0, view)  # 2000 W + 200 W threshold not covered
    assert r.decide(1, 2_300.0, view)
    assert r.decide(100, 500.0, view)  # importing, but the minimum on time holds it
    assert not r.decide(301, 500.0, view)
    assert not r.decide(400, 5_000.0, view)  # minimum off time
    assert r.decide(602, 5_000.0, view)


def test_relay_thermal_cut_and_stale_data_switch_off() -> None:
    r = relay(min_on_s=600, max_temperature_c=65)
    assert r.decide(0, 3_000.0, RelayView(temperature_c=50))
    assert not r.decide(10, 3_000.0, RelayView(temperature_c=65.5))  # at once, despite min_on_s
    assert "temperature" in r.reason
    r2 = relay(min_on_s=0)
    assert r2.decide(0, 3_000.0, RelayView())
    assert not r2.decide(1, None, RelayView()) and "stale" in r2.reason


def test_the_cloud_buffer_lends_back_only_what_the_battery_charged() -> None:
    s = site(battery_buffer_wh=100, battery_buffer_soc_pct=20, battery_buffer_when="always")
    s.grid_w = 0.0
    clock = [100.0]

    def battery(power_w: float, seconds: int, soc: float = 50.0) -> None:
        for _ in range(seconds // 10):  # a reading every 10 s, as a Modbus battery bridge polls
            clock[0] += 10.0
            s.note_battery(clock[0], power_w, soc)

    s.note_battery(clock[0], 2_000.0, 50.0)
    battery(2_000.0, 60)
    assert s.lendable_wh(clock[0]) == 0.0  # discharge before any charge: the morning SOC is not lent
    battery(-1_800.0, 100)  # 100 s charging at 1800 W puts 50 Wh in the buffer
    battery(2_000.0, 10)
    assert s.lendable_wh(clock[0]) == pytest.approx(50.0) and s.buffered_w(clock[0]) == 2_000.0
    battery(2_000.0, 90)  # 90 s at 2000 W discharge empties it
    assert s.lendable_wh(clock[0]) == 0.0 and s.buffered_w(clock[0]) == 0.0
    battery(-3_600.0, 200)  # 200 Wh of charge, capped at 100
    assert s.lendable_wh(clock[0]) == pytest.approx(100.0)
    battery(1_000.0, 10, soc=19.0)  # below battery_buffer_soc_pct: nothing to lend
    assert s.lendable_wh(clock[0]) == 0.0 and s.buffered_w(clock[0]) == 0.0
    assert site(battery_buffer_wh=0).lendable_wh(100.0) == 0.0


def test_house_counts_phase_switches_under_load_apart_from_idle_ones() -> None:
    from wattbus_sim.house import House

    house = House.from_profile("clear", "12:00", with_heater=False)
    charger = house.charger
    charger.set_phases(1)  # not charging yet: a relay move without load
    charger.set_enabled(True)
    house.step(30)
    assert charger.power_w() > 0
    charger.set_phases(3)  # under load: the car stops for the pause
    charger.set_phases(3)  # no change, no switch
    assert (charger.phase_switches, charger.phase_switches_charging) == (2, 1)


def test_the_cloud_buffer_can_lend_only_when_the_battery_has_no_room() -> None:
    """With room, what the car leaves is stored, not lost: borrowing it back would only cost the
    round trip. Nearly full, the surplus the car leaves would be exported: then the buffer lends."""
    s = site(battery_buffer_wh=500, battery_room_soc_pct=90, battery_buffer_when="no_room")
    s.grid_w = 0.0
    s.note_battery(100.0, -3_600.0, 60.0)
    s.note_battery(160.0, -3_600.0, 60.0)  # 60 Wh charged from the surplus
    s.note_battery(170.0, 2_000.0, 60.0)
    assert s.buffer_wh > 0 and s.lendable_wh(170.0) == 0.0 and s.buffered_w(170.0) == 0.0
    s.note_battery(171.0, 2_000.0, 95.0)
    assert s.lendable_wh(171.0) > 0 and s.buffered_w(171.0) == 2_000.0
