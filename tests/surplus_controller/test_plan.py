"""The charge plan's arithmetic and decisions (plan.py), without a bus and without timing."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from wattbus import messages as m
from wattbus_surplus_controller.config import LoadpointConfig
from wattbus_surplus_controller.model import LoadpointChoices
from wattbus_surplus_controller.persist import StateFile
from wattbus_surplus_controller.plan import (
    Planner,
    VehicleView,
    energy_needed_wh,
    latest_start,
    needed_power_w,
    plan_current_a,
    set_plan,
    state_fields,
    target_time,
)
from wattbus_surplus_controller.strategy import Loadpoint

DAY = datetime(2026, 12, 7, 0, 0)  # local wall time, as the controller passes it
FULL_3P_16A = 16 * 230.0 * 3  # 11,040 W


def at(hhmm: str) -> datetime:
    return DAY.replace(hour=int(hhmm[:2]), minute=int(hhmm[2:]))


def cfg(**extra: object) -> LoadpointConfig:
    return LoadpointConfig(id="garage", charger="house-sim/house-wallbox", **extra)  # type: ignore[arg-type]


def settings(soc: int | None = 80, by: str | None = "0700", minimum: int | None = None,
             mode: str = "pv") -> LoadpointChoices:
    return LoadpointChoices(mode, 6.0, 16.0, soc, by, minimum)  # type: ignore[arg-type]


@pytest.mark.parametrize(("soc", "target", "capacity", "efficiency", "wh"), [
    (40, 80, 60_000, 0.9, 40 / 100 * 60_000 / 0.9),  # 26.7 kWh from the grid for 24 kWh in the battery
    (80, 80, 60_000, 0.9, 0.0),
    (90, 80, 60_000, 0.9, 0.0),  # above the target: nothing, never negative
    (0, 100, 75_000, 1.0, 75_000),
])
def test_energy_needed(soc: float, target: float, capacity: float, efficiency: float, wh: float) -> None:
    assert energy_needed_wh(soc, target, capacity, efficiency) == pytest.approx(wh)


@pytest.mark.parametrize(("energy_wh", "power_w", "margin_s", "start"), [
    (22_080, 11_040, 0, "0500"),  # two hours at full power before 07:00
    (22_080, 11_040, 1800, "0430"),  # ... and the margin before that
    (11_040, 11_040, 600, "0550"),
    (0, 11_040, 1800, "0630"),
])
def test_latest_start(energy_wh: float, power_w: float, margin_s: float, start: str) -> None:
    assert latest_start(at("0700"), energy_wh, power_w, margin_s) == at(start)


@pytest.mark.parametrize(("now", "hhmm", "expected"), [
    ("0300", "0700", at("0700")),
    ("0700", "0700", at("0700")),  # the very minute: still today's
    ("0701", "0700", at("0700") + timedelta(days=1)),  # passed: tomorrow's
    ("2330", "0015", at("0015") + timedelta(days=1)),
])
def test_target_time_is_the_next_such_time(now: str, hhmm: str, expected: datetime) -> None:
    assert target_time(at(now), hhmm) == expected


@pytest.mark.parametrize(("energy_wh", "seconds_left", "margin_s", "power_w"), [
    (11_000, 3 * 3600, 3600, 5_500),  # 11 kWh in the two hours left before the margin
    (11_000, 3600 + 1800, 1800, 11_000),
    (1_000, 1800, 1800, 60_000),  # past the margin: at least a minute left, so the cap decides
])
def test_needed_power(energy_wh: float, seconds_left: float, margin_s: float, power_w: float) -> None:
    assert needed_power_w(energy_wh, seconds_left, margin_s) == pytest.approx(power_w)


def test_without_a_plan_there_is_no_status() -> None:
    decision = Planner(cfg()).decide(at("0300"), settings(None, None), VehicleView(50.0, 60_000), FULL_3P_16A)
    assert not decision.active and decision.status is None


@pytest.mark.parametrize(("lp", "vehicle", "status"), [
    (cfg(vehicle="generic-bridge/tesla"), None, "no SoC from vehicle"),
    (cfg(vehicle="generic-bridge/tesla"), VehicleView(None, 60_000), "no SoC from vehicle"),
    (cfg(), None, "no vehicle configured for this loadpoint"),
    (cfg(vehicle="generic-bridge/tesla"), VehicleView(50.0),
     "no battery capacity from vehicle: set vehicle_capacity_wh"),
])
def test_without_soc_or_capacity_the_plan_is_unavailable_and_says_so(
        lp: LoadpointConfig, vehicle: VehicleView | None, status: str) -> None:
    decision = Planner(lp).decide(at("0630"), settings(), vehicle, FULL_3P_16A)
    assert not decision.active and decision.status == status


def test_before_the_latest_start_the_mode_decides_and_the_start_is_shown() -> None:
    planner = Planner(cfg(vehicle="generic-bridge/tesla", plan_margin_s=1800))
    # 40 -> 80 % of 60 kWh at 90 %: 26.7 kWh, 2.42 h at 11.04 kW, + 30 min: start 04:05
    decision = planner.decide(at("0300"), settings(), VehicleView(40.0, 60_000), FULL_3P_16A)
    assert not decision.active and decision.start is not None
    assert decision.start.strftime("%H:%M") == "04:05"
    assert decision.status == "plan: 80 % by 07:00; from the grid from 04:05 unless the sun gets there first"


def test_from_the_latest_start_the_plan_charges_at_the_power_needed_until_the_target() -> None:
    planner = Planner(cfg(vehicle="generic-bridge/tesla", plan_margin_s=1800))
    taken = planner.decide(at("0406"), settings(), VehicleView(40.0, 60_000), FULL_3P_16A)  # start 04:05:04
    assert taken.active and taken.power_w == pytest.approx(FULL_3P_16A, rel=0.01)
    assert taken.status == "plan: charging from the grid from 04:06 to reach 80 % by 07:00"
    # the car charged faster than planned: the plan keeps the charge, at the lower power now needed
    ahead = planner.decide(at("0530"), settings(), VehicleView(70.0, 60_000), FULL_3P_16A)
    assert ahead.active and ahead.power_w == pytest.approx(10 / 100 * 60_000 / 0.9)  # 6.7 kWh in the hour left
    assert ahead.start == at("0406")
    assert planner.decide(at("0540"), settings(), VehicleView(80.0, 60_000), FULL_3P_16A).status == "plan met"
    assert not planner.decide(at("0541"), settings(), VehicleView(79.5, 60_000), FULL_3P_16A).active  # no re-take


def test_a_car_not_plugged_in_waits_and_the_plan_starts_afresh() -> None:
    planner = Planner(cfg(vehicle="generic-bridge/tesla", vehicle_capacity_wh=60_000))
    assert planner.decide(at("0630"), settings(), VehicleView(50.0), FULL_3P_16A).active
    away = planner.decide(at("0631"), settings(), VehicleView(50.0), FULL_3P_16A, plugged=False)
    assert not away.active and away.status == "plan: waiting for the car to be plugged in"
    back = planner.decide(at("0640"), settings(), VehicleView(50.0), FULL_3P_16A)
    assert back.active and back.start == at("0640")  # taken over anew, not from 06:30


def test_the_cars_own_limit_caps_the_target() -> None:
    decision = Planner(cfg(vehicle="generic-bridge/tesla", vehicle_capacity_wh=60_000)).decide(
        at("0630"), settings(90), VehicleView(50.0, None, 70.0), FULL_3P_16A)
    assert decision.active and decision.status == "plan: charging from the grid from 06:30 to reach 70 % " \
                                                  "(the car's own limit) by 07:00"


def test_below_the_minimum_soc_it_charges_at_full_power() -> None:
    decision = Planner(cfg(vehicle="generic-bridge/tesla")).decide(
        at("1200"), settings(None, None, 30), VehicleView(20.0), FULL_3P_16A)
    assert decision.active and decision.power_w == FULL_3P_16A
    assert decision.status == "plan: charging at full power to the minimum 30 %"
    met = Planner(cfg(vehicle="generic-bridge/tesla")).decide(
        at("1200"), settings(None, None, 30), VehicleView(31.0), FULL_3P_16A)
    assert not met.active and met.status == "plan: minimum 30 % reached"


@pytest.mark.parametrize(("power_w", "surplus_w", "phases", "amps"), [
    (11_040, None, "auto", 16.0),
    (5_000, None, "auto", 8.0),  # 5 kW on 3p: 7.2 A, rounded up (the plan must not fall short)
    (5_000, 9_000, "auto", 14.0),  # more sun than the plan needs: it takes the sun
    (1_000, None, "auto", 6.0),  # never below the minimum
    (5_000, None, 1, 16.0),  # a 1p loadpoint: 21.7 A capped at 16
])
def test_plan_current(power_w: float, surplus_w: float | None, phases: object, amps: float) -> None:
    lp = Loadpoint(cfg(phases=phases), settings())
    assert plan_current_a(lp, power_w, surplus_w) == amps


def test_set_plan_takes_the_whole_plan_and_refuses_half_a_target() -> None:
    chosen = settings(None, None)
    assert set_plan(chosen, m.SetLoadpointPlan(soc_pct=80, time="0700", min_soc_pct=20)) is None
    assert (chosen.plan_soc_pct, chosen.plan_time, chosen.plan_min_soc_pct) == (80, "0700", 20)
    assert set_plan(chosen, m.SetLoadpointPlan(soc_pct=80)) == \
        "give soc_pct and time together (or neither, to clear the target)"
    assert chosen.plan_time == "0700"  # unchanged by the refused command
    assert set_plan(chosen, m.SetLoadpointPlan()) is None and chosen.plan_soc_pct is None


@pytest.mark.parametrize(("mode", "active", "suffix"), [
    ("pv", True, ""), ("minpv", True, ""),
    ("off", False, " (mode off: the plan does not charge)"),
    ("now", False, " (mode now charges at full power anyway)"),
])
def test_the_plan_charges_only_in_the_surplus_modes(mode: str, active: bool, suffix: str) -> None:
    lp = cfg(vehicle="generic-bridge/tesla", vehicle_capacity_wh=60_000)
    chosen = settings(mode=mode)
    decision = Planner(lp).decide(at("0630"), chosen, VehicleView(50.0), FULL_3P_16A)
    fields = state_fields(lp, chosen, VehicleView(50.0), decision)
    assert fields["plan_active"] is active and fields["vehicle_id"] == "tesla" and fields["vehicle_soc_pct"] == 50.0
    assert fields["plan_status"] == "plan: charging from the grid from 06:30 to reach 80 % by 07:00" + suffix


def test_the_plan_survives_a_restart_in_the_state_file(tmp_path: Path) -> None:
    store = StateFile(str(tmp_path / "state.json"))
    store.save({"garage": settings(80, "0700", 20)})
    stored, problem = store.load()
    assert problem is None
    saved = stored["garage"]
    assert (saved.mode, saved.plan_soc_pct, saved.plan_time, saved.plan_min_soc_pct) == ("pv", 80, "0700", 20)
    # a file written before the plan existed still loads, without a plan
    (tmp_path / "old.json").write_text('{"garage": {"mode": "now", "min_current_a": 6, "max_current_a": 16}}')
    old, problem = StateFile(str(tmp_path / "old.json")).load()
    assert problem is None and old["garage"].mode == "now" and not old["garage"].plan_set  # the config's plan applies
    assert saved.plan_set  # written by this version: the plan a person set (or cleared) wins
