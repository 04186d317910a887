"""The simulated house's physics: energy balance, charger behaviour, profiles as data."""

from __future__ import annotations

import itertools

import pytest
from wattbus_sim.house import House
from wattbus_sim.house_ev import Charger, ChargerTiming, Ev
from wattbus_sim.house_profiles import DATA_DIR, ProfileError, available, load_profile


@pytest.mark.parametrize("name", available())
def test_every_profile_loads_and_runs_a_balanced_day(name: str) -> None:
    house = House.from_profile(name, "00:00")
    peak = 0.0
    while house.time_s < 86_399:
        house.step(1.0)
        peak = max(peak, house.pv_power_w())
        battery = house.battery.power_w() if house.battery else 0.0
        balance = house.load_power_w() + house.charger.power_w() + house.relay_power_w() - house.pv_power_w()
        assert house.grid_power_w() == pytest.approx(balance - battery, abs=1e-6)
    assert 0 < peak <= house.profile.pv_peak_w
    assert house.battery is not None and 0 <= house.battery.soc_pct() <= 100


def test_profiles_are_distinct_days() -> None:
    energy = {}
    for name in ("clear", "broken", "overcast"):
        house = House.from_profile(name, "04:00", with_heater=False)
        house.step(17 * 3600)
        energy[name] = house.pv_energy_wh
    assert energy["clear"] > energy["broken"] > energy["overcast"] > 0


def test_bad_profile_is_rejected_with_file_and_field(tmp_path: object) -> None:
    from pathlib import Path
    bad = Path(str(tmp_path)) / "bad.json"
    bad.write_text('{"name": "x", "pv_peak_w": -5, "sunrise_h": 6, "sunset_h": 20, "base_load_w": 300}')
    with pytest.raises(ProfileError, match=r"bad\.json.*pv_peak_w"):
        load_profile(bad)
    with pytest.raises(ProfileError, match="known"):
        load_profile("no-such-day")
    assert (DATA_DIR / "house_day_clear.json").exists()


def charger_with_car() -> Charger:
    charger = Charger(ChargerTiming())
    charger.plug(Ev(capacity_wh=60_000, soc_pct=50))
    return charger


def run(charger: Charger, seconds: int) -> list[float]:
    powers = []
    for _ in range(seconds):
        charger.step(1.0)
        powers.append(charger.power_w())
    return powers


def test_charger_starts_after_a_delay_and_ramps_to_the_offer() -> None:
    charger = charger_with_car()
    charger.set_phases(1)
    charger.set_current_a(10)
    charger.set_enabled(True)
    powers = run(charger, 20)
    assert powers[0] == 0.0  # the car needs time to start
    assert powers[-1] == pytest.approx(10 * 230)
    assert all(b >= a for a, b in itertools.pairwise(powers))  # a ramp, no overshoot
    assert charger.state() == "charging" and charger.charge_starts == 1


def test_charger_refuses_below_six_amps_and_caps_at_the_car() -> None:
    charger = charger_with_car()
    with pytest.raises(ValueError, match="6-32 A"):
        charger.set_current_a(5)
    charger.set_current_a(32)
    charger.set_enabled(True)
    run(charger, 30)
    assert charger.current_a() == 16.0  # the car's onboard charger limit
    assert charger.power_w() == pytest.approx(3 * 16 * 230)


def test_phase_switch_while_charging_pauses_the_car() -> None:
    charger = charger_with_car()
    charger.set_current_a(8)
    charger.set_enabled(True)
    run(charger, 20)
    assert charger.power_w() == pytest.approx(3 * 8 * 230)
    charger.set_phases(1)
    paused = run(charger, int(charger.timing.phase_switch_pause_s))
    assert max(paused) == 0.0
    run(charger, 15)
    assert charger.power_w() == pytest.approx(8 * 230)
    assert charger.phase_switches == 1 and charger.charge_starts == 2


def test_full_car_stops_charging() -> None:
    charger = Charger(ChargerTiming())
    charger.plug(Ev(capacity_wh=1_000, soc_pct=99.5))
    charger.set_enabled(True)
    run(charger, 600)
    assert charger.state() == "complete" and charger.power_w() == 0.0


def test_battery_covers_the_house_within_its_limits() -> None:
    house = House.from_profile("clear", "12:00", with_heater=False)
    house.step(1.0)
    assert house.battery is not None
    assert house.grid_power_w() == pytest.approx(min(0.0, -(house.surplus_w() - house.battery.max_charge_w)), abs=1)
    house.charger.set_current_a(16)
    house.charger.set_enabled(True)
    house.step(30)
    assert house.charger.power_w() == pytest.approx(3 * 16 * 230)
